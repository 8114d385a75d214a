"""What a run hands back to its caller: the report, as the JSON file holds it, typed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# What the command line exits with (and RunReport.exit_code holds).
EXIT_OK, EXIT_FAILED, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class RunReport:
    """One run's report: what :func:`bulkport.run` returns and ``report.json`` holds.

    The fields are the JSON report's (redacted the same way), plus where it was written and
    the command line's exit code for it.
    """

    job: str
    kind: str
    dry_run: bool
    ok: bool
    aborted: str | None
    exit_code: int  # 0 done, 1 some records failed, 2 aborted, 130 interrupted
    run: int | None  # its number in the job's history
    started: str  # ISO 8601, UTC
    seconds: float
    counts: Counter[str]  # a count never made reads 0
    failures: list[dict[str, Any]]
    notes: Mapping[str, int]  # note → how many times
    summary: str  # the lines the command line prints
    path: Path | None = None  # the JSON report
    html: Path | None = None  # the HTML report next to it
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the whole JSON report

    @classmethod
    def from_json(cls, raw: bytes, *, exit_code: int, run: int | None, summary: str,
                  path: Path | None = None, html: Path | None = None) -> RunReport:
        data = orjson.loads(raw)
        return cls(job=data["job"], kind=data["kind"], dry_run=data["dry_run"], ok=data["ok"],
                   aborted=data["aborted"], exit_code=exit_code, run=run,
                   started=data["started"], seconds=data["seconds"],
                   counts=Counter(data["counts"]),
                   failures=data["failures"], notes=data["notes"], summary=summary, path=path,
                   html=html, data=data)

    def text(self) -> str:
        """What the command line prints of the run: its summary, then where its reports are."""
        lines = [self.summary, f"report: {self.path}"]
        if self.html is not None:
            lines.append(f"report page: {self.html}")
        return "\n".join(lines)

    def brief(self, failures: int = 10) -> dict[str, Any]:
        """The summary as JSON (``--json``): the counts, the first failures, the notes."""
        return {"job": self.job, "kind": self.kind, "run": self.run, "dry_run": self.dry_run,
                "ok": self.ok, "exit_code": self.exit_code, "aborted": self.aborted,
                "seconds": self.seconds, "counts": dict(self.counts),
                "failures": self.failures[:failures],
                "more_failures": max(0, self.counts.get("failed", 0) - failures),
                "notes": dict(self.notes), "report": str(self.path) if self.path else None,
                "html": str(self.html) if self.html else None}

    def __getitem__(self, key: str) -> Any:
        """``report["requests"]``: any part of the JSON report."""
        return self.data[key]
