"""What a run did: counts, failures with reasons, durations, requests per host.

The JSON report is for machines (and audits); :meth:`Report.summary` is the short human
version printed at the end of a run. Both go through the redactor.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from bulkport.metrics import FINISHED, HostStats, Timeline
from bulkport.outputs import replacing, write_atomically
from bulkport.redact import redact

if TYPE_CHECKING:
    from bulkport.history import History

MAX_LISTED = 10_000  # failures/notes kept in full; beyond, only counted
FAILURES_SHOWN, NOTES_SHOWN = 10, 5  # in the summary; the report has them all
REPORTS_DIR = "reports"  # in the state directory: one report per run


def failure_reason(error: BaseException | str) -> str:
    """How a report and the history word why a unit failed."""
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


class Report:
    """Collects the outcome of a run."""

    def __init__(self, job: str, kind: str, *, dry_run: bool = False) -> None:
        self.job = job
        self.kind = kind
        self.dry_run = dry_run
        self.counts: Counter[str] = Counter()
        self.failures: list[dict[str, Any]] = []
        self.notes: Counter[str] = Counter()  # e.g. "licence 'xyz' not mapped"
        self.plan: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []  # every item acted on, for audits: never capped
        self.requests: Mapping[str, int] = {}
        self.hosts = HostStats()  # retries and latency per host (the HTTP layer records them)
        self.timeline = Timeline()  # what finished when, in at most a few hundred buckets
        self.details: dict[str, Any] = {}  # job-specific facts (e.g. a mirror's watermark)
        self.aborted: str | None = None
        self.history: History | None = None  # where each record acted on is kept
        self.run: int | None = None
        self.started = datetime.now(timezone.utc)
        self._t0 = time.monotonic()
        self.seconds = 0.0

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n
        self.timeline.count(name, n)

    def fail(self, what: str, error: BaseException | str, **context: Any) -> None:
        """Record one failed unit (a dataset, a file) and why."""
        self.count("failed")
        if len(self.failures) < MAX_LISTED:
            self.failures.append({"unit": what, "reason": redact(failure_reason(error)),
                                  **context})

    def note(self, text: str) -> None:
        """Something kept or left out that the user should know (counted, not repeated)."""
        # Not redacted here (a dozen notes per dataset): to_json and summary redact it all.
        self.notes[text] += 1

    def planned(self, action: str, what: str, **context: Any) -> None:
        self.count(f"would_{action}")
        if len(self.plan) < MAX_LISTED:
            self.plan.append({"action": action, "unit": what, **context})

    def bind(self, history: History, run: int) -> None:
        """Keep each record acted on in ``history`` as run ``run``."""
        self.history, self.run = history, run

    def record(self, entity: str, action: str, **fields: Any) -> None:
        """Keep one dataset or file acted on in the run's history (see
        :meth:`bulkport.history.History.act`); not held in memory."""
        if self.history is not None and self.run is not None:
            self.history.act(self.run, entity, action, **fields)

    def acted(self, outcome: str, *, entity: str | None = None, **row: Any) -> None:
        """Record one item acted on (e.g. a token revoked) and its outcome in the report
        (an audit lists them all); with ``entity``, also in the run's history, by the row's
        ``id``."""
        self.counts[outcome] += 1
        if not outcome.endswith("_failed"):  # a failed act is in the timeline by fail()
            self.timeline.add(FINISHED)
        self.actions.append({**row, "outcome": outcome})
        if entity is not None:
            extra = {k: v for k, v in row.items() if k != "id" and v is not None}
            self.record(entity, outcome, source_id=str(row["id"]), **extra)

    def finish(self) -> None:
        self.seconds = time.monotonic() - self._t0

    @property
    def ok(self) -> bool:
        return not self.counts["failed"] and self.aborted is None

    def to_json(self) -> bytes:
        total_requests = sum(self.requests.values())
        data = {
            "job": self.job,
            "kind": self.kind,
            "run": self.run,  # its number in the job's history (bulkport show JOB RUN)
            "dry_run": self.dry_run,
            "ok": self.ok,
            "aborted": self.aborted,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round(self.seconds, 3),
            "counts": dict(sorted(self.counts.items())),
            "failures": self.failures,
            "notes": dict(self.notes.most_common()),
            "plan": self.plan,
            "actions": self.actions,
            "details": self.details,
            "requests": {"total": total_requests, "per_host": self.requests},
            "requests_per_second": round(total_requests / self.seconds, 1) if self.seconds else 0,
            "hosts": self.hosts.to_json(self.requests),
            "timeline": self.timeline.to_json(self.seconds),
        }
        return redact(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()).encode()

    def write(self, path: Path, label: str = "report") -> None:
        """Replace ``path`` with the JSON report (see :mod:`bulkport.outputs`)."""
        write_atomically(path, self.to_json(), label=label)

    def write_csv(self, path: Path, label: str = "--csv") -> None:
        """The acted-on items as CSV, one row each, columns in first-seen order."""
        columns = list(dict.fromkeys(key for row in self.actions for key in row))
        with replacing(path, label=label) as raw:
            f = io.TextIOWrapper(raw, newline="", encoding="utf-8")
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.actions:
                writer.writerow({k: redact(str(v)) if v is not None else "" for k, v in row.items()})
            f.flush()
            f.detach()  # replacing() closes the file once it is complete

    def summary(self) -> str:
        c = self.counts
        head = "DRY RUN: " if self.dry_run else ""
        parts = [f"{k.replace('_', ' ')} {_amount(k, v)}" for k, v in sorted(c.items())
                 if v and k != "failed"]
        failed = f", failed {c['failed']}" if c["failed"] else ""
        if self.aborted:  # the reason first: it is what the reader has to act on
            done = (", ".join(parts) or "nothing done") + failed
            lines = [f"{head}{self.kind} {self.job}: ABORTED: {self.aborted} (after "
                     f"{self.seconds:.1f}s: {done})"]
        else:
            status = "OK" if self.ok else "FAILED"
            done = (", ".join(parts) or "nothing to do") + failed
            lines = [f"{head}{self.kind} {self.job}: {status} in {self.seconds:.1f}s — {done}"]
        for failure in self.failures[:FAILURES_SHOWN]:
            lines.append(f"  failed {failure['unit']}: {failure['reason']}")
        if c["failed"] > FAILURES_SHOWN:
            more = c["failed"] - FAILURES_SHOWN
            lines.append(f"  … {more} more failure{'s' if more > 1 else ''} in the report")
        for text, n in self.notes.most_common(NOTES_SHOWN):
            lines.append(f"  note ({n}×): {text}")
        if len(self.notes) > NOTES_SHOWN:
            more = len(self.notes) - NOTES_SHOWN
            lines.append(f"  … {more} more note{'s' if more > 1 else ''} in the report")
        return redact("\n".join(lines))


def _amount(name: str, value: int) -> str:
    """A count as the summary shows it: bytes in a unit a person reads, exact beside it."""
    if not name.startswith("bytes") or value < 1000:
        return f"{value:,}"
    units = ("kB", "MB", "GB", "TB")
    power = min(len(units), (len(str(value)) - 1) // 3)  # 1 for thousands, 2 for millions…
    return f"{value / 1000 ** power:.1f} {units[power - 1]} ({value:,})"


def run_report_path(state_dir: Path, started: datetime, run: int) -> Path:
    """Run ``run``'s report under ``<state-dir>/reports/``, named after its start (UTC) and
    number, so that the names sort by time and no run replaces another's."""
    stem = started.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return state_dir / REPORTS_DIR / f"{stem}-run{run}.json"
