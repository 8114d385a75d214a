"""What ``bulkport history``, ``show`` and ``export`` print: a job's runs, one run's
actions, and the redirect map its migrations leave behind, read from its state store."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import orjson

from bulkport.errors import ConfigError
from bulkport.history import Action, History, Run
from bulkport.outputs import replacing
from bulkport.store import DATABASE, StateStore

REDIRECT_FORMATS = ("csv", "nginx")
NGINX_VARIABLE = "$bulkport_redirect"


def open_history(state_dir: Path) -> StateStore:
    """The state store of a job, opened to read while a run may be writing it.

    Raises:
        ConfigError: no run of this job has kept state there.
    """
    if not (state_dir / DATABASE).is_file():
        raise ConfigError(f"{state_dir}: no run recorded here (no {DATABASE}); run the job "
                          "first, or pass the --state-dir it ran with")
    return StateStore(state_dir, shared=True)


def _took(run: Run) -> str:
    if run.ended is None:
        return "running" if run.exit_code is None else "?"
    took = datetime.fromisoformat(run.ended) - datetime.fromisoformat(run.started)
    return f"{took.total_seconds():.0f}s"


def _outcome(run: Run) -> str:
    if run.exit_code is None:
        return "unfinished" if run.ended is None else "?"
    return {0: "ok", 1: "failed", 2: "aborted", 130: "interrupted"}.get(run.exit_code,
                                                                       str(run.exit_code))


def _counted(run: Run, most: int = 4) -> str:
    shown = [f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(run.counts.items(),
                                                               key=lambda kv: -kv[1])
             if v and k != "failed"][:most]
    if run.failures:
        shown.append(f"failed {run.failures:,}")
    return ", ".join(shown) or "-"


def _json_line(row: Run | Action, out: TextIO) -> None:
    print(orjson.dumps(dataclasses.asdict(row)).decode(), file=out)


def print_history(history: History, out: TextIO, *, as_json: bool = False) -> int:
    """One line per run, oldest first (with ``as_json``, one JSON object per line); return
    how many."""
    runs = history.runs()
    if as_json:
        for run in runs:
            _json_line(run, out)
        return len(runs)
    print(f"{'run':>4}  {'started (UTC)':<25}  {'kind':<13}  {'mode':<4}  {'outcome':<11}  "
          f"{'took':>6}  what", file=out)
    for run in runs:
        mode = "dry" if run.dry_run else "real"
        what = run.aborted if run.aborted and run.exit_code == 2 and not run.counts else _counted(run)
        print(f"{run.id:>4}  {run.started:<25}  {run.kind or '?':<13}  {mode:<4}  "
              f"{_outcome(run):<11}  {_took(run):>6}  {what}"
              f"{'  (actions pruned)' if run.pruned else ''}", file=out)
    return len(runs)


def chosen_run(history: History, run: int | None) -> Run:
    """Run ``run``, or the newest one."""
    found = history.get(run) if run is not None else history.last()
    if found is None:
        known = ", ".join(str(r.id) for r in history.runs()[-10:]) or "none"
        raise ConfigError(f"no run {run} in this job's history (runs: {known})" if run
                          is not None else "no run recorded in this job's history")
    return found


def print_run(history: History, run: Run, out: TextIO, *, actions: tuple[str, ...] = (),
              entities: tuple[str, ...] = (), as_json: bool = False) -> int:
    """A run's header and each action it recorded (filtered); return how many printed.
    With ``as_json``: JSON Lines, the run's row first, then one object per action."""
    if as_json:
        _json_line(run, out)
        shown = 0
        for action in history.actions(run.id, actions=actions, entities=entities):
            _json_line(action, out)
            shown += 1
        return shown
    mode = "dry run" if run.dry_run else "run"
    print(f"{mode} {run.id}: {run.kind} {run.name} started {run.started}, {_outcome(run)}"
          f"{f' ({run.aborted})' if run.aborted else ''}", file=out)
    if run.source:
        print(f"  from {run.source}", file=out)
    if run.target:
        print(f"  {'to' if run.source else 'on'} {run.target}", file=out)
    counts = history.action_counts(run.id)
    if counts:
        print("  " + ", ".join(f"{entity}s {action.replace('_', ' ')} {n:,}"
                               for (entity, action), n
                               in sorted(counts.items())), file=out)
    if run.pruned:
        print("  (its actions were pruned by [options] keep_reports)", file=out)
    shown = 0
    for action in history.actions(run.id, actions=actions, entities=entities):
        print(_action_line(action), file=out)
        shown += 1
    return shown


def _action_line(action: Action) -> str:
    source = action.source_url or action.source_id or "?"
    parts = [f"  {action.action:<9} {action.entity:<7} {source}"]
    if action.target_url or action.target_id:
        parts.append(f"→ {action.target_url or action.target_id}")
    details = {k: v for k, v in action.extra.items() if k in ("user", "name")}
    if details:
        parts.append(" ".join(f"{k}={v}" for k, v in details.items()))
    if action.reason:
        parts.append(f"({action.reason})")
    return " ".join(parts)


def redirect_format(path: Path, given: str | None) -> str:
    """The format to write ``path`` in: ``given``, else from its extension."""
    if given:
        return given
    if path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() in (".map", ".conf"):
        return "nginx"
    raise ConfigError(f"--redirects {path}: say the format with --format csv or --format "
                      "nginx (or name the file *.csv, *.map or *.conf)")


def write_redirects(history: History, path: Path, fmt: str) -> int:
    """Write the redirect map of the job's migrations to ``path``, streamed from the
    store; return its entries."""
    count = 0
    with replacing(path, label="--redirects") as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(out, lineterminator="\n")
        if fmt == "csv":
            writer.writerow(["type", "old_url", "new_url"])
        else:
            out.write(NGINX_HEADER)
        for entity, old, new in history.locations():
            if old == new:
                continue
            count += 1
            if fmt == "csv":
                writer.writerow([entity, old, new])
            else:
                parts = urlsplit(old)
                key = parts.path + (f"?{parts.query}" if parts.query else "")
                out.write(f"{_quote(key)} {_quote(new)};\n")
        out.flush()
        out.detach()  # replacing() closes the file once it is complete
    return count


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


NGINX_HEADER = f"""\
# Old URL (path and query) → new URL, one per dataset page and file. To use it, in the
# http block:   map $request_uri {NGINX_VARIABLE} {{ include THIS_FILE; }}
# and in the old site's server block:   if ({NGINX_VARIABLE}) {{ return 301 {NGINX_VARIABLE}; }}
"""
