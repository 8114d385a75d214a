"""The ``mirror`` job: keep a target an exact copy of a source, run after run.

The first run is a full migration. Each later run lists the source's ids and modified dates
only, reads in full what changed since the last successful run's watermark (minus a safety
margin) plus anything the listing shows new or changed, upserts that through the target
adapter (which skips unchanged fields and files), and deletes — or hides — what the source
dropped, if the guards allow it. Only records the mirror wrote itself are ever deleted: they
are in its state and still carry the ownership mark on the target.

Steps run in order: list → check the guards → upsert → remove → commit. The state file is
only replaced at the end, and the watermark only moves when every record succeeded.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkport.breaker import Breaker
from bulkport.checkpoint import Journal
from bulkport.config import JobConfig
from bulkport.errors import (
    FatalError,
    MirrorRefused,
    RetriableError,
    SkippableError,
    first_error,
)
from bulkport.jobs.migrate import make_client, record_plan
from bulkport.jobs.mirror_state import (
    Entry,
    Guards,
    MirrorState,
    Plan,
    march,
    refusal,
)
from bulkport.moments import canonical_time, parse_time
from bulkport.portals import registry
from bulkport.portals.base import Listing, MirrorSource, MirrorTarget
from bulkport.progress import ProgressBar
from bulkport.queue import pipeline
from bulkport.report import Report
from bulkport.transfer import FileTransfer, transfer_limit

REMOVED_COUNTS = {"deleted": "datasets_deleted", "hidden": "datasets_hidden",
                  "absent": "datasets_already_gone", "not_owned": "datasets_not_owned",
                  "kept": "datasets_kept"}
SHOWN = 20  # plan lines printed per action by a dry run


async def mirror(job: JobConfig, *, state_dir: Path, report: Report, dry_run: bool = False,
                 progress: bool = False, stop: anyio.Event | None = None, full: bool = False,
                 out: TextIO | None = None) -> None:
    """Run one mirror pass; what it did or refused lands in ``report``.

    Args:
        full: read every source record and upsert it even when its hash is unchanged
            (repairs a target edited by hand). Without a watermark (no run has succeeded
            yet) every record is read too, but those already written are skipped by hash.
        out: where a dry run prints its plan (None: not printed).

    Raises:
        MirrorRefused: a guard stopped the run before any write.
        FatalError: the run had to stop; finished work is journaled for the next run.
    """
    assert job.source is not None and job.target is not None
    transfers = transfer_limit(job, registry.of(job.source).held_connections)
    try:
        async with make_client(job) as client:
            with Journal(state_dir) as journal:
                state = MirrorState.load(state_dir, source=job.source.url, target=job.target.url)
                resumed = state.replay(journal)
                if resumed:
                    report.note(f"resumed an interrupted run: {resumed} datasets were done "
                                "already")
                source = registry.open_mirror_source(job.source, client, job.options)
                target = registry.open_mirror_target(job.target, client, job.options, journal,
                                                     report)
                for sid, entry in state.datasets.items():
                    target.remember(sid, entry.key)
                run = _Run(job, state, journal, source, target, report,
                           FileTransfer(client, source, transfers),
                           dry_run=dry_run, full=full, stop=stop)
                try:
                    await target.check()
                    await source.check()
                    await run.execute(state_dir, progress)
                finally:
                    report.requests = dict(client.requests)
    finally:
        if dry_run and out is not None:  # a refused dry run shows what it would delete
            print_plan(report, out)


class _Run:
    """One pass: the objects every step needs."""

    def __init__(self, job: JobConfig, state: MirrorState, journal: Journal,
                 source: MirrorSource, target: MirrorTarget, report: Report,
                 transfer: FileTransfer, *, dry_run: bool, full: bool,
                 stop: anyio.Event | None) -> None:
        assert job.source is not None
        self.options = job.options
        margin = job.source.safety_margin
        self.margin = job.options.safety_margin if margin is None else margin
        self.state, self.journal = state, journal
        self.source, self.target, self.transfer = source, target, transfer
        self.report, self.dry_run, self.full, self.stop = report, dry_run, full, stop
        self.seen: set[str] = set()  # source ids read in full during this run
        self.breaker = Breaker(job.options.max_repeated_failures)
        self.listing = Listing()

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def execute(self, state_dir: Path, progress: bool) -> None:
        """List, check the guards, upsert, remove, then commit (unless stopped or dry)."""
        held = len(self.state.datasets)
        plan = await self._plan()
        self.report.details.update(watermark_before=self.state.watermark, full=self.full,
                                   held_before=held)
        removals = set(plan.gone)
        if self.options.on_delete == "keep":
            plan.gone = set()  # nothing will be deleted: no guard to pass
        elif self.dry_run:
            action = "delete" if self.options.on_delete == "delete" else "hide"
            for sid in sorted(removals):
                self.report.planned(action, f"dataset {self.state.datasets[sid].key}")
        reason = refusal(plan, held, Guards(max_fraction=self.options.max_delete_fraction,
                                            max_count=self.options.max_delete_count))
        if reason is not None:
            raise MirrorRefused(reason)
        await self._upserts(plan, progress)
        if not self.stopped:
            await self._removals(removals - self.seen)
        if self.dry_run or self.stopped:
            return
        ok = not self.report.counts["failed"]
        watermark = (plan.watermark or self.state.watermark) if ok else self.state.watermark
        self.state.commit(state_dir, self.journal, watermark=watermark)
        self.report.details.update(watermark_after=watermark, held_after=len(self.state.datasets))

    async def _plan(self) -> Plan:
        """List the source (ids and dates only) and diff it with the state."""
        self.listing = await self._list()
        self.report.count("datasets_listed", len(self.listing.modified))
        plan = march(self.listing, self.state)
        if plan.gone and plan.listed:
            # A record deleted while the pages were read shifts the next pages: an id may
            # be missed. Only a second look by id makes it a deletion.
            found = await self._list(plan.gone)
            if found.modified:
                self.listing.modified.update(found.modified)
                plan = march(self.listing, self.state)
        return plan

    async def _list(self, ids: set[str] | None = None) -> Listing:
        try:
            return await self.source.list_ids(page_concurrency=self.options.page_concurrency,
                                              ids=ids)
        except Exception as exc:
            error = first_error(exc)
            if isinstance(error, FatalError):
                raise error from None
            if not isinstance(error, (SkippableError, RetriableError)):
                raise
            raise MirrorRefused(f"listing the source failed, so nothing was written or "
                                f"deleted: {error}") from None

    async def _upserts(self, plan: Plan, progress: bool) -> None:
        watermark = parse_time(self.state.watermark)
        # No watermark yet: every record is read (the first run is a full migration).
        since = (None if self.full or watermark is None
                 else watermark - timedelta(seconds=self.margin))
        self.report.details["since"] = since.isoformat() if since else None
        bar = ProgressBar(self.transfer.client.activity, progress=progress, desc="datasets",
                          unit="ds")

        async def changed(send: MemoryObjectSendStream[Any]) -> None:
            await self.source.produce(
                send, page_concurrency=self.options.page_concurrency, since=since,
                on_total=lambda n: setattr(bar, "total", n),
                on_page_error=lambda offset, error: self.report.fail(
                    f"reading changed datasets at offset {offset}", error))

        async def handle(raw: Any) -> None:
            await self._handle(raw)
            bar.update()

        try:
            await pipeline(changed, handle, workers=self.options.workers, stop=self.stop)
            rest = plan.fetch - self.seen  # listed as new or changed, missed by `since`
            if rest and not self.stopped:
                self.report.count("datasets_read_by_id", len(rest))
                await pipeline(lambda send: self.source.produce_ids(send, rest), handle,
                               workers=self.options.workers, stop=self.stop)
        finally:
            bar.close()

    async def _handle(self, raw: Any) -> None:
        label = "dataset ?"
        if isinstance(raw, dict):
            label = f"dataset {raw.get('name') or raw.get('id') or '?'}"
            if raw.get("id"):  # seen even if it cannot be mapped: read and reported once
                self.seen.add(str(raw["id"]))
        try:
            ds = self.source.to_pivot(raw)
            label = f"dataset {ds.name}"
            self.seen.add(ds.source_id)
            fingerprint = ds.fingerprint()
            modified = canonical_time(self.listing.modified.get(ds.source_id))
            held = self.state.datasets.get(ds.source_id)
            if held is not None and held.hash == fingerprint and not self.full:
                self.report.count("datasets_unchanged")
                if modified is not None and held.modified != modified:
                    self.state.datasets[ds.source_id] = replace(held, modified=modified)
                return
            if self.dry_run:
                record_plan(self.report, await self.target.plan(ds), label)
                self.breaker.success()
                return
            outcome = await self.target.upsert(ds, self.transfer)
            self.state.mirrored(self.journal, ds.source_id,
                                Entry(self.target.key_for(ds), fingerprint, modified))
            self.report.count(f"datasets_{outcome}")
            self.breaker.success()
        except (SkippableError, RetriableError) as error:
            self.report.fail(label, error)
            self.breaker.failure(error)

    async def _removals(self, gone: set[str]) -> None:
        """Delete or hide what the source dropped (all of it was checked by the guards)."""
        mode = self.options.on_delete
        if self.dry_run or not gone:
            return

        async def produce(send: MemoryObjectSendStream[str]) -> None:
            async with send:
                for sid in sorted(gone):
                    await send.send(sid)

        async def remove(sid: str) -> None:
            key = self.state.datasets[sid].key
            try:
                if mode == "keep":
                    outcome = "kept"
                elif mode == "private":
                    outcome = await self.target.hide(sid, key)
                else:
                    outcome = await self.target.delete(sid, key)
            except (SkippableError, RetriableError) as error:
                self.report.fail(f"removing dataset {key}", error)
                return
            if outcome == "not_owned":
                self.report.note(f"dataset {key} was left alone: it no longer carries the "
                                 "ownership mark (edited or replaced by hand?)")
            self.state.removed(self.journal, sid, outcome)
            self.report.count(REMOVED_COUNTS[outcome])

        await pipeline(produce, remove, workers=self.options.connections, stop=self.stop)


def print_plan(report: Report, out: TextIO) -> None:
    """What a dry run found: each action with the first few datasets it concerns."""
    by_action: dict[str, list[str]] = {}
    for item in report.plan:
        by_action.setdefault(item["action"], []).append(item["unit"])
    if not by_action:
        print("DRY RUN: nothing to create, update or delete.", file=out)
    for action, units in sorted(by_action.items()):
        total = report.counts[f"would_{action}"]
        print(f"DRY RUN: would {action} {total:,} dataset(s)", file=out)
        for unit in units[:SHOWN]:
            print(f"  {unit.removeprefix('dataset ')}", file=out)
        if total > SHOWN:
            print(f"  … and {total - SHOWN:,} more (the report lists them)", file=out)
