"""Running a loaded job: its history row, the run itself, its reports.

The command line (:mod:`bulkport.cli`) and the Python API (:mod:`bulkport.api`) both run
jobs through :func:`run_job`; what they print or return comes from the report it writes.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

import anyio
import msgspec
import orjson

from bulkport import metrics, watchdog
from bulkport.config import JobConfig
from bulkport.errors import ConfigError, abort_reason
from bulkport.history import History
from bulkport.jobs.migrate import migrate
from bulkport.jobs.mirror import REMOVED_COUNTS, mirror
from bulkport.jobs.revoke import revoke_tokens
from bulkport.outputs import check_directory, check_distinct, check_output, write_atomically
from bulkport.report import REPORTS_DIR, Report, run_report_path
from bulkport.results import EXIT_ABORTED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, RunReport
from bulkport.store import DATABASE, StateStore, check_state_dir

REPORT_FILE = "report.json"  # in the state directory, unless --report says otherwise
HTML_FILE = "report.html"  # the latest HTML report, next to it


async def _watch_signals(stop: anyio.Event, cancel: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop taking work and drain. Second one: stop at once (the
    requests in flight are cancelled; what is journaled stays journaled)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                print(f"{signal.Signals(signum).name} again: stopping now", file=sys.stderr)
                cancel.cancel()
                return
            print(f"\n{signal.Signals(signum).name}: finishing the work in flight "
                  "(again to stop now)…", file=sys.stderr)
            stop.set()


async def execute(job: JobConfig, *, store: StateStore, report: Report, dry_run: bool,
                  progress: bool, out: TextIO | None = None, full: bool = False,
                  signals: bool = True) -> bool:
    """Run ``job``; return True when it was interrupted by a signal.

    Args:
        out: where a dry run prints its plan (None: nowhere).
        signals: stop on SIGINT/SIGTERM (only a program's main thread may; a notebook
            keeps its own handlers).

    Raises:
        Stalled: nothing moved for ``[options] stall_timeout`` seconds; the run was
            cancelled as by a second Ctrl-C.
    """
    stop = anyio.Event()
    activity = watchdog.Activity()
    try:
        with watchdog.using(activity), metrics.measuring(report.hosts):
            async with anyio.create_task_group() as tg:
                if signals:
                    tg.start_soon(_watch_signals, stop, tg.cancel_scope)
                tg.start_soon(watchdog.watch, activity, job.options.stall_timeout,
                              tg.cancel_scope)
                await _run_kind(job, store=store, report=report, dry_run=dry_run,
                                progress=progress, out=out, full=full, stop=stop)
                tg.cancel_scope.cancel()
    except Exception as exc:
        if activity.stalled is None:
            raise
        raise watchdog.Stalled(activity.stalled) from exc  # the stall caused what followed
    if activity.stalled is not None:
        raise watchdog.Stalled(activity.stalled)
    return stop.is_set()


async def _run_kind(job: JobConfig, *, store: StateStore, report: Report, dry_run: bool,
                    progress: bool, out: TextIO | None, full: bool, stop: anyio.Event) -> None:
    if job.kind == "migrate":
        await migrate(job, store=store, report=report, dry_run=dry_run,
                      progress=progress, stop=stop)
    elif job.kind == "mirror":
        await mirror(job, store=store, report=report, dry_run=dry_run,
                     progress=progress, stop=stop, full=full, out=out)
    elif job.kind == "revoke-tokens":
        await revoke_tokens(job, store=store, report=report, confirmed=not dry_run,
                            progress=progress, stop=stop, out=out)
    else:
        raise ConfigError(f"{job.path}: kind {job.kind!r} is not available in this version")


def run_job(job: JobConfig, *, state_dir: Path, report_path: Path | None = None,
            dry_run: bool = False, progress: bool = False, out: TextIO | None = None,
            csv_path: Path | None = None, full: bool = False,
            signals: bool = True) -> RunReport:
    """Run a loaded job, record it in the state's history, write its reports; return the
    report (:attr:`RunReport.exit_code` is the command line's).

    Every run, dry or refused, gets a row in the history and its own report in
    ``<state dir>/reports/``, as JSON and as a page to open in a browser (the newest also as
    ``<state dir>/report.json`` and ``report.html``, and at ``report_path`` when given);
    ``[options] keep_reports`` prunes the older ones.

    Raises:
        ConfigError: the run could not start (its state or outputs cannot be used, another
            run holds the state), or its reports could not be written.
    """
    check_paths(job, state_dir=state_dir, report_path=report_path, csv_path=csv_path)
    report = Report(job.name, job.kind, dry_run=dry_run)
    interrupted = False
    try:
        with StateStore(state_dir) as store:
            history = History(store)
            report.bind(history, history.begin(**_described(job), dry_run=dry_run,
                                               started=report.started))
            try:
                interrupted = anyio.run(lambda: execute(
                    job, store=store, report=report, dry_run=dry_run, progress=progress,
                    out=out, full=full, signals=signals))
            except Exception as exc:
                report.aborted = abort_reason(exc)
                if report.aborted is None:
                    raise
            finally:
                report.finish()
            if interrupted:
                report.aborted = "interrupted; run the same command again to resume"
            code = _exit_code(report, interrupted)
            path = _write_reports(report, state_dir, report_path, csv_path, history, code,
                                  keep=job.options.keep_reports)
    except ConfigError as error:
        if report.run is not None:
            raise
        _record_refused(job, state_dir, report, error, dry_run=dry_run)
        raise
    assert report.run is not None
    own = run_report_path(state_dir, report.started, report.run)  # the latest is replaced
    return RunReport.from_json(report.to_json(), exit_code=code, run=report.run,
                               summary=report.summary(), path=path,
                               html=own.with_suffix(".html"))


def _exit_code(report: Report, interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if report.aborted:
        return EXIT_ABORTED
    return EXIT_OK if report.ok else EXIT_FAILED


def _described(job: JobConfig) -> dict[str, Any]:
    """What the history keeps of a job: where it came from, what it joins, its options."""
    return {"job": str(job.path.resolve()), "name": job.name, "kind": job.kind,
            "source": job.source.url if job.source else None,
            "target": job.target.url if job.target else None,
            "options": msgspec.to_builtins(job.options)}


def _write_reports(report: Report, state_dir: Path, report_path: Path | None,
                   csv_path: Path | None, history: History, code: int, *, keep: int) -> Path:
    """Write the run's report (per run, as the latest, and where --report says; the first
    two also as an HTML page), end its history row, prune; return the path to show."""
    assert report.run is not None
    own = run_report_path(state_dir, report.started, report.run)
    history.end(report.run, exit_code=code, aborted=report.aborted, counts=report.counts,
                failures=report.counts["failed"], report=str(own))
    try:
        report.write(own, "report")
        report.write(state_dir / REPORT_FILE, "report")
        if report_path is not None:
            report.write(report_path, "--report")
        for old in history.prune(keep):
            Path(old).unlink(missing_ok=True)
            Path(old).with_suffix(".html").unlink(missing_ok=True)
        if csv_path is not None:
            report.write_csv(csv_path)
        _write_html(report, history, own.with_suffix(".html"), state_dir / HTML_FILE)
    except ConfigError:  # checked before the run, so a race or a full disk: say what was done
        print(report.summary(), file=sys.stderr)
        raise
    return report_path or own


def _write_html(report: Report, history: History, *paths: Path) -> None:
    """The HTML report, rendered from the JSON report's own data (the same numbers) and,
    for a mirror, the first datasets it removed, from the history (the JSON report only
    counts them)."""
    from bulkport.report_html import REMOVED_SHOWN, render  # only needed at the end

    data = orjson.loads(report.to_json())
    if report.kind == "mirror" and report.run is not None:
        removed = history.actions(report.run, actions=tuple(REMOVED_COUNTS),
                                  entities=("dataset",))
        data["removed"] = [{"outcome": a.action, "source_id": a.source_id,
                            "target_id": a.target_id, "target_url": a.target_url}
                           for a in itertools.islice(removed, REMOVED_SHOWN)]
    page = render(data).encode()
    for path in paths:
        write_atomically(path, page, label="HTML report")


def _record_refused(job: JobConfig, state_dir: Path, report: Report, error: ConfigError, *,
                    dry_run: bool) -> None:
    """A run refused before it started (another run holds the state) still gets its row."""
    try:
        with StateStore(state_dir, shared=True) as store:
            history = History(store)
            run = history.begin(**_described(job), dry_run=dry_run, started=report.started)
            history.end(run, exit_code=EXIT_ABORTED, aborted=str(error), counts={},
                        failures=0, report=None)
    except (ConfigError, sqlite3.Error):
        pass  # the state itself is what is wrong: the error already says so


def check_paths(job: JobConfig, *, state_dir: Path, report_path: Path | None,
                csv_path: Path | None) -> None:
    """Refuse, before any request, a state directory or output the run could not write.

    Raises:
        ConfigError: one line naming the path and what is wrong with it.
    """
    check_state_dir(state_dir)
    check_directory(state_dir / REPORTS_DIR, "reports folder")
    check_output(state_dir / REPORT_FILE, "report")
    check_output(state_dir / HTML_FILE, "HTML report")
    if report_path is not None:
        check_output(report_path, "--report")
    if csv_path is not None:
        check_output(csv_path, "--csv")
    check_distinct({"the job file": job.path, "the state database": state_dir / DATABASE,
                    "the HTML report": state_dir / HTML_FILE, "--report": report_path,
                    "--csv": csv_path})


