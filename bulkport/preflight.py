"""``bulkport check JOB``: ask each portal, read-only, whether a job can run.

The checks are the adapters' own ``check()``, the very ones a run makes before it reads or
writes anything, told that nothing follows them (``CheckSteps.standalone``: they then also
ask what a run learns from its first read) and asked to name each step they take, which
becomes a line. Nothing is written: the adapters get a throw-away state store in memory and
a report nobody reads, and their checks only read. A side that fails does not stop the
other side's check.

From Python::

    checks = anyio.run(check_job, load_job(Path("jobs/ckan-to-ods.toml")))
    failed = [c for c in checks if not c.ok]
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO

import anyio
import orjson

from bulkport.config import KINDS, JobConfig
from bulkport.errors import abort_reason
from bulkport.http import HttpClient
from bulkport.jobs.migrate import make_client
from bulkport.portals import registry
from bulkport.portals.base import CheckSteps, Role
from bulkport.redact import redact
from bulkport.report import Report
from bulkport.results import EXIT_ABORTED, EXIT_OK
from bulkport.settings import PortalSettings
from bulkport.store import StateStore

Checker = Callable[[CheckSteps], Awaitable[None]]  # an adapter's check, bound to its arguments


@dataclass(frozen=True)
class Check:
    """One step of a check and how it went."""

    side: str  # "job file", "source" or "target"
    step: str  # what was checked: "api", "key", "permissions", "organizations"...
    subject: str  # what it was checked on: the job file, or the portal ("CKAN https://…")
    ok: bool
    detail: str  # what was found, or why it failed (redacted: no key, no presigned URL)

    @property
    def check(self) -> str:
        """The check's name: ``"target key"`` (``"job file"``)."""
        return f"{self.side} {self.step}".rstrip()

    def line(self) -> str:
        """``ok    target CKAN https://…: key of sysadmin 'admin'``."""
        return f"{'ok' if self.ok else 'FAIL':<6}{self.side} {self.subject}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "ok": self.ok,
                "detail": self.detail}


class _Recorder(CheckSteps):
    """Keeps a :class:`Check` per step one side's check names."""

    standalone = True  # nothing reads after these checks

    def __init__(self, side: str, subject: str) -> None:
        self.side = side
        self.subject = redact(subject)
        self.step = "check"
        self.checks: list[Check] = []

    def begin(self, step: str) -> None:
        self.step = step

    def passed(self, detail: str) -> None:
        self._keep(True, detail)

    def failed(self, reason: str) -> None:
        self._keep(False, reason)

    def _keep(self, ok: bool, detail: str) -> None:
        self.checks.append(Check(self.side, self.step, self.subject, ok, redact(detail)))


def _opened(role: Role, job: JobConfig, client: HttpClient, store: StateStore,
            report: Report) -> tuple[str, Checker]:
    """Open the adapter a run opens for ``role``; its description and its check."""
    if role in (Role.SOURCE, Role.MIRROR_SOURCE):
        assert job.source is not None
        open_source = registry.open_source if role is Role.SOURCE else registry.open_mirror_source
        source = open_source(job.source, client, job.options)
        return source.describe(), source.check
    assert job.target is not None
    if role is Role.TOKENS:
        tokens = registry.open_tokens(job.target, client)
        users = job.token_filter.users if job.token_filter is not None else None
        return tokens.describe(), lambda steps: tokens.check(users, steps)
    open_target = registry.open_target if role is Role.TARGET else registry.open_mirror_target
    target = open_target(job.target, client, job.options, store.journal, report)
    return target.describe(), target.check


async def _check_side(side: str, role: Role, settings: PortalSettings, job: JobConfig,
                      client: HttpClient, store: StateStore, report: Report) -> list[Check]:
    """The lines of one side: a line per step passed, then the failed one, if any."""
    recorder = _Recorder(side, f"{registry.of(settings).title} {settings.url}")
    try:
        subject, check = _opened(role, job, client, store, report)
        recorder.subject = redact(subject)
        await check(recorder)
    except Exception as exc:
        reason = abort_reason(exc)
        if reason is None:  # not an error bulkport raises on purpose: a bug, shown as one
            raise
        recorder.failed(reason)
    else:
        if not recorder.checks:
            recorder.passed("nothing to ask before a run")
    return recorder.checks


def _job_file(job: JobConfig) -> Check:
    """The job file was read and checked before this runs (:func:`~bulkport.config.load_job`)."""
    return Check("job file", "", redact(str(job.path)), True,
                 f"{job.kind} job {job.name!r}, ${{VARS}} resolved")


async def check_job(job: JobConfig) -> list[Check]:
    """Ask the job's portals, read-only, what its run needs: the checks a run makes first,
    a step at a time, every side checked even when another failed.

    Returns:
        A :class:`Check` per step: the job file first, then the source's, the target's.

    Raises:
        Exception: only a bug; every error bulkport raises is a failed :class:`Check`.
    """
    checks = [_job_file(job)]
    source_role, target_role = KINDS[job.kind]
    report = Report(job.name, job.kind, dry_run=True)  # the adapters want one: never read
    with StateStore(None) as unused:  # in memory: no state directory is made
        async with make_client(job) as client:
            for side, role, settings in (("source", source_role, job.source),
                                         ("target", target_role, job.target)):
                if role is not None and settings is not None:
                    checks += await _check_side(side, role, settings, job, client, unused,
                                                report)
    return checks


def run_check(job: JobConfig, out: TextIO, *, as_json: bool = False) -> int:
    """``bulkport check``: print a line per check on ``out`` (with ``as_json``, one JSON
    object ``{"ok", "checks": [{"check", "subject", "ok", "detail"}]}``).

    Returns:
        0 when every check passed, 2 otherwise (the code a run stopped by it returns).
    """
    checks = anyio.run(check_job, job)
    ok = all(c.ok for c in checks)
    if as_json:
        print(orjson.dumps({"ok": ok, "checks": [c.to_json() for c in checks]}).decode(),
              file=out)
    else:
        for check in checks:
            print(check.line(), file=out)
    return EXIT_OK if ok else EXIT_ABORTED
