"""``bulkport verify JOB.toml``: does the target hold exactly what the source holds?

Independent of any mirror state or journal: both portals are listed afresh, each target
record is matched to its source record by the ownership mark alone, and every pair is
compared on the mapped fields, the organization, the resources and the file sizes (and
hashes, where both portals state one). Records made by hand on the target carry no mark and
are not compared. Exit 0 when everything matches, 1 when anything differs, 2 when the check
itself could not run.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson

from bulkport.config import JobConfig
from bulkport.errors import ConfigError, MappingError, abort_reason
from bulkport.jobs.migrate import make_client
from bulkport.portals import registry
from bulkport.portals.base import MirrorTarget, Role, Source
from bulkport.redact import redact
from bulkport.report import Report
from bulkport.store import StateStore

EXIT_MATCH, EXIT_DIFFERENT, EXIT_ABORTED = 0, 1, 2
VERIFY_KINDS = ("migrate", "mirror")  # the jobs with a source and a target to compare
log = logging.getLogger("bulkport")


@dataclass
class Verdict:
    """What a comparison found."""

    at_source: int = 0
    on_target: int = 0
    hidden: int = 0  # copies the mirror hid (on_delete = "private") or kept on purpose
    missing: list[str] = field(default_factory=list)  # source records with no copy
    extra: list[str] = field(default_factory=list)  # copies whose source record is gone
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # source records

    @property
    def matches(self) -> bool:
        return not (self.missing or self.extra or self.differing or self.unreadable)

    def lines(self) -> list[str]:
        """One line per difference."""
        return ([f"missing on the target: {name}" for name in self.missing]
                + [f"on the target only: {name}" for name in self.extra]
                + [f"differs: {name}: {', '.join(what)}" for name, what in self.differing]
                + [f"unreadable at the source: {name}: {why}" for name, why in self.unreadable])


def check_verifiable(job: JobConfig) -> None:
    """Raise a ConfigError unless ``job`` has a source and a target to compare."""
    if job.kind not in VERIFY_KINDS:
        raise ConfigError(f"{job.path}: verify compares the source and target of a "
                          f"{' or '.join(VERIFY_KINDS)} job; this is a {job.kind} job")


def _record_name(record: Any, default: str) -> str:
    if isinstance(record, dict):
        return str(record.get("name") or record.get("dataset_id") or default)
    return default


async def verify(job: JobConfig) -> Verdict:
    """Compare the job's source and target.

    Raises:
        ConfigError: the target cannot be listed by ownership mark.
        BulkportError: a portal could not be read (the comparison is incomplete).
    """
    # The adapter wants a journal for its writes; verify writes nothing, so a throw-away
    # store in memory does, and the job's state is left alone (another run may hold it).
    with StateStore(None) as unused:
        return await _verify(job, unused)


async def _verify(job: JobConfig, unused: StateStore) -> Verdict:
    assert job.source is not None and job.target is not None
    verdict = Verdict()
    async with make_client(job) as client:
        registry.require(registry.of(job.target), Role.MIRROR_TARGET, f"{job.path}: [target]",
                         why=" that verify can list by ownership mark")
        source = registry.open_source(job.source, client, job.options)
        target = registry.open_mirror_target(job.target, client, job.options, unused.journal,
                                             Report(job.name, "verify"))
        await target.check()
        await source.check()
        copies: dict[str, list[Any]] = {}
        for sid, record in await target.owned_records():
            copies.setdefault(sid, []).append(record)
        verdict.on_target = sum(len(v) for v in copies.values())

        send, receive = anyio.create_memory_object_stream[Any](100)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: source.produce(send, page_concurrency=job.options.page_concurrency))
            async with receive:
                async for raw in receive:
                    verdict.at_source += 1
                    _compare(source, target, raw, copies, verdict)
    on_delete = job.options.on_delete if job.kind == "mirror" else "delete"
    for sid, records in sorted(copies.items()):
        for record in records:
            if on_delete == "keep" or (on_delete == "private" and target.is_hidden(record)):
                verdict.hidden += 1
            else:
                verdict.extra.append(_record_name(record, sid))
    return verdict


def _compare(source: Source, target: MirrorTarget, raw: Any, copies: dict[str, list[Any]],
             verdict: Verdict) -> None:
    try:
        ds = source.to_pivot(raw)
    except MappingError as error:
        name = raw.get("name") if isinstance(raw, dict) else None
        verdict.unreadable.append((str(name or "?"), str(error)))
        return
    records = copies.pop(ds.source_id, None)
    if not records:
        verdict.missing.append(ds.name)
        return
    found = target.differences(ds, records[0])
    if len(records) > 1:
        found.append(f"{len(records)} copies on the target")
    if found:
        verdict.differing.append((_record_name(records[0], ds.name), found))


def run_verify(job: JobConfig, *, report_path: Path | None = None, quiet: bool = False,
               shown: int = 50, out: Any = None, as_json: bool = False) -> int:
    """Run :func:`verify`, print what differs (as one JSON object with ``as_json``),
    optionally write a JSON report.

    Returns:
        0 when source and target match, 1 when they differ, 2 when the check failed.
    """
    out = out or sys.stdout
    report = Report(job.name, "verify")
    try:
        verdict = anyio.run(verify, job)
    except Exception as exc:
        report.aborted = abort_reason(exc)
        if report.aborted is None:
            raise
        report.finish()
        if report_path is not None:
            report.write(report_path)
        log.info("verify %s: could not compare: %s", job.name, report.aborted)  # file only
        print(f"verify {job.name}: could not compare: {report.aborted}", file=sys.stderr)
        if as_json:
            print(orjson.dumps({"job": job.name, "matches": None, "exit_code": EXIT_ABORTED,
                                "error": redact(report.aborted)}).decode(), file=out)
        return EXIT_ABORTED
    report.finish()
    lines = verdict.lines()
    for line in lines:
        report.acted("difference", detail=line)
    report.details.update(at_source=verdict.at_source, on_target=verdict.on_target,
                          hidden=verdict.hidden)
    if report_path is not None:
        report.write(report_path)
    head = (f"verify {job.name}: {verdict.at_source:,} datasets at the source, "
            f"{verdict.on_target:,} copies on the target"
            + (f" ({verdict.hidden:,} hidden)" if verdict.hidden else ""))
    log.info("%s: %s", head, "they match" if verdict.matches else f"{len(lines):,} difference(s)")
    code = EXIT_MATCH if verdict.matches else EXIT_DIFFERENT
    if as_json:
        print(orjson.dumps({"job": job.name, "matches": verdict.matches, "exit_code": code,
                            "at_source": verdict.at_source, "on_target": verdict.on_target,
                            "hidden": verdict.hidden,
                            "differences": [redact(line) for line in lines]}).decode(), file=out)
        return code
    if verdict.matches:
        if not quiet:
            print(f"{head}: they match", file=out)
        return EXIT_MATCH
    print(f"{head}: {len(lines):,} difference(s)", file=out)
    for line in lines[:shown]:
        print(f"  {redact(line)}", file=out)
    if len(lines) > shown:
        print(f"  … and {len(lines) - shown:,} more" + (" (see the report)" if report_path
                                                           else " (--report F lists them all)"),
              file=out)
    return EXIT_DIFFERENT
