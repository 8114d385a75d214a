"""The ``mirror`` job: keep a target an exact copy of a source, run after run.

The first run is a full migration. Each later run lists the source's ids and modified dates
only, reads in full what changed since the last successful run's watermark (minus a safety
margin) plus anything the listing shows new or changed, upserts that through the target
adapter (which skips unchanged fields and files), and deletes — or hides — what the source
dropped, if the guards allow it. Only records the mirror wrote itself are ever deleted: they
are in its state and still carry the ownership mark on the target.

Steps run in order: list → check the guards → upsert → remove → commit. Each record's state
lands in the state store as it is written; the watermark only moves, at the commit, when
every record succeeded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TextIO

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkport.breaker import Breaker
from bulkport.config import JobConfig
from bulkport.errors import (
    FatalError,
    MirrorRefused,
    RetriableError,
    SkippableError,
    first_error,
)
from bulkport.jobs.migrate import (
    DATASET,
    make_client,
    raw_id,
    raw_label,
    record_failed,
    record_plan,
    record_written,
)
from bulkport.jobs.mirror_diff import Guards, Plan, StoredListing, march, refusal
from bulkport.jobs.mirror_state import Entry, MirrorState
from bulkport.moments import parse_time
from bulkport.portals import registry
from bulkport.portals.base import Listing, MemoryListing, MirrorSource, MirrorTarget
from bulkport.progress import ProgressBar
from bulkport.queue import pipeline
from bulkport.report import Report
from bulkport.store import StateStore, transaction
from bulkport.transfer import FileTransfer, transfer_limit

REMOVED_COUNTS = {"deleted": "datasets_deleted", "hidden": "datasets_hidden",
                  "absent": "datasets_already_gone", "not_owned": "datasets_not_owned",
                  "kept": "datasets_kept"}
SHOWN = 20  # plan lines printed per action by a dry run
LOOK_AGAIN_AT_MOST = 10_000  # deletion candidates re-listed by id (a request per 50)


async def mirror(job: JobConfig, *, store: StateStore, report: Report, dry_run: bool = False,
                 progress: bool = False, stop: anyio.Event | None = None, full: bool = False,
                 out: TextIO | None = None) -> None:
    """Run one mirror pass; what it did or refused lands in ``report``.

    Args:
        store: the job's state store (the mirror's state, journal and history).
        full: read every source record and upsert it even when its hash is unchanged
            (repairs a target edited by hand). Without a watermark (no run has succeeded
            yet) every record is read too, but those already written are skipped by hash.
        out: where a dry run prints its plan (None: not printed).

    Raises:
        ConfigError: the state belongs to a mirror of other portals.
        MirrorRefused: a guard stopped the run before any write.
        FatalError: the run had to stop; finished work is in the state for the next run.
    """
    assert job.source is not None and job.target is not None
    transfers = transfer_limit(job, registry.of(job.source).held_connections)
    try:
        async with make_client(job) as client:
            state = MirrorState.open(store, source=job.source.url, target=job.target.url)
            resumed = state.resumed()
            if resumed:
                report.note(f"resumed an interrupted run: {resumed} datasets were done "
                            "already")
            source = registry.open_mirror_source(job.source, client, job.options)
            target = registry.open_mirror_target(job.target, client, job.options,
                                                 store.journal, report)
            run = _Run(job, state, source, target, report,
                       FileTransfer(client, source, transfers, report),
                       dry_run=dry_run, full=full, stop=stop)
            try:
                await target.check()
                await source.check()
                await run.execute(progress)
            finally:
                report.requests = dict(client.requests)
    finally:
        if dry_run and out is not None:  # a refused dry run shows what it would delete
            print_plan(report, out)


async def list_source(source: MirrorSource, listing: Listing, *, page_concurrency: int,
                      ids: list[str] | None = None) -> None:
    """Fill ``listing`` from ``source`` (only ``ids``, when given).

    Raises:
        MirrorRefused: the listing failed (a partial listing is never diffed).
        FatalError: as the source raised it (a wrong key, ...).
    """
    try:
        await source.list_ids(listing, page_concurrency=page_concurrency, ids=ids)
    except Exception as exc:
        error = first_error(exc)
        if isinstance(error, FatalError):
            raise error from None
        if not isinstance(error, (SkippableError, RetriableError)):
            raise
        raise MirrorRefused(f"listing the source failed, so nothing was written or "
                            f"deleted: {error}") from None


async def look_again(source: MirrorSource, listing: StoredListing, *,
                     page_concurrency: int) -> int:
    """Ask ``source`` by id about the deletion candidates, a chunk at a time: a record
    deleted while the pages were read shifts the next pages, so an id may be missed. Those
    found join ``listing``; returns how many."""
    found = 0
    for chunk in listing.unlisted():
        again = MemoryListing()
        await list_source(source, again, page_concurrency=page_concurrency,
                          ids=[sid for sid, _ in chunk])
        for sid, modified in again.modified.items():
            listing.add(sid, modified)
        found += len(again)
    listing.flush()
    return found


class _Run:
    """One pass: the objects every step needs."""

    def __init__(self, job: JobConfig, state: MirrorState, source: MirrorSource,
                 target: MirrorTarget, report: Report, transfer: FileTransfer, *,
                 dry_run: bool, full: bool, stop: anyio.Event | None) -> None:
        assert job.source is not None
        self.options = job.options
        margin = job.source.safety_margin
        self.margin = job.options.safety_margin if margin is None else margin
        self.state = state
        self.source, self.target, self.transfer = source, target, transfer
        self.report, self.dry_run, self.full, self.stop = report, dry_run, full, stop
        self.breaker = Breaker(job.options.max_repeated_failures)
        self.listing = StoredListing(state.store)  # this run's: ids listed and ids read
        self.watermark = state.watermark  # the last successful run's

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def execute(self, progress: bool) -> None:
        """List, check the guards, upsert, remove, then commit (unless stopped or dry)."""
        held = self.state.held()
        self.report.details.update(watermark_before=self.watermark, full=self.full,
                                   held_before=held)
        plan = await self._plan(held)
        if not self.dry_run:
            self.state.claim()
        await self._upserts(progress)
        if not self.stopped:
            await self._removals()
        if self.dry_run or self.stopped:
            return
        ok = not self.report.counts["failed"]
        watermark = (plan.watermark or self.watermark) if ok else self.watermark
        self.state.commit(watermark=watermark)
        self.report.details.update(watermark_after=watermark, held_after=self.state.held())

    async def _plan(self, held: int) -> Plan:
        """List the source (ids and dates only), diff it with the state, check the guards
        (on counts, before any id is read back)."""
        page_concurrency = self.options.page_concurrency
        await list_source(self.source, self.listing, page_concurrency=page_concurrency)
        plan = march(self.listing)
        self.report.count("datasets_listed", plan.listed)
        deleting = self.options.on_delete != "keep"
        guards = Guards(max_fraction=self.options.max_delete_fraction,
                        max_count=self.options.max_delete_count)
        reason = refusal(plan, held, guards, deleting=deleting)
        # A page shift while listing can hide a few records: a refusal by a narrow margin
        # may be that, so the candidates get their second look unless they are many.
        if plan.gone and plan.listed and (reason is None or plan.gone <= LOOK_AGAIN_AT_MOST):
            if await look_again(self.source, self.listing, page_concurrency=page_concurrency):
                plan = march(self.listing)
                reason = refusal(plan, held, guards, deleting=deleting)
        if self.dry_run and deleting:
            action = "delete" if self.options.on_delete == "delete" else "hide"
            for chunk in self.listing.unlisted():
                for _, key in chunk:
                    self.report.planned(action, f"dataset {key}")
        if reason is not None:
            raise MirrorRefused(reason)
        return plan

    async def _upserts(self, progress: bool) -> None:
        watermark = parse_time(self.watermark)
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

        async def by_id(send: MemoryObjectSendStream[Any]) -> None:
            """What the listing shows new or changed that ``since`` missed."""
            async with send:
                for chunk in self.listing.unread():
                    self.report.count("datasets_read_by_id", len(chunk))
                    await self.source.produce_ids(send.clone(), chunk)

        async def handle(raw: Any) -> None:
            await self._handle(raw)
            bar.update()

        try:
            await pipeline(changed, handle, workers=self.options.workers, stop=self.stop)
            if not self.stopped:
                await pipeline(by_id, handle, workers=self.options.workers, stop=self.stop)
        finally:
            bar.close()

    async def _handle(self, raw: Any) -> None:
        label, source_id = raw_label(raw), raw_id(raw)
        if source_id is not None:  # read even if it cannot be mapped: read and reported once
            self.listing.mark_read(source_id)
        try:
            ds = self.source.to_pivot(raw)
            label = f"dataset {ds.name}"
            if ds.source_id != source_id:
                source_id = ds.source_id
                self.listing.mark_read(source_id)
            fingerprint = ds.fingerprint()
            modified = self.listing.modified(ds.source_id)
            held = self.state.get(ds.source_id)
            if held is not None and held.hash == fingerprint and not self.full:
                self.report.count("datasets_unchanged")
                if modified is not None and held.modified != modified and not self.dry_run:
                    self.state.touch(ds.source_id, modified)
                return
            if self.dry_run:
                record_plan(self.report, await self.target.plan(ds), label)
                self.breaker.success()
                return
            written = await self.target.upsert(ds, self.transfer)
            with transaction(self.state.db):  # a kill -9 keeps all of it or none
                self.state.mirrored(ds.source_id, Entry(written.key, fingerprint, modified),
                                    written.outcome)
                record_written(self.report, self.source, ds, written)
            self.report.count(f"datasets_{written.outcome}")
            self.breaker.success()
        except (SkippableError, RetriableError) as error:
            record_failed(self.report, source_id, label, error)
            self.breaker.failure(error)

    async def _removals(self) -> None:
        """Delete or hide what the source dropped (all of it was checked by the guards)."""
        mode = self.options.on_delete
        if self.dry_run:
            return

        async def produce(send: MemoryObjectSendStream[tuple[str, str]]) -> None:
            async with send:
                for chunk in self.listing.unlisted():
                    for item in chunk:
                        await send.send(item)

        async def remove(item: tuple[str, str]) -> None:
            sid, key = item
            try:
                if mode == "keep":
                    outcome = "kept"
                elif mode == "private":
                    outcome = await self.target.hide(sid, key)
                else:
                    outcome = await self.target.delete(sid, key)
            except (SkippableError, RetriableError) as error:
                record_failed(self.report, sid, f"removing dataset {key}", error)
                return
            if outcome == "not_owned":
                self.report.note(f"dataset {key} was left alone: it no longer carries the "
                                 "ownership mark (edited or replaced by hand?)")
            with transaction(self.state.db):
                self.state.removed(sid, outcome)
                self.report.record(DATASET, outcome, source_id=sid, target_id=key)
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
