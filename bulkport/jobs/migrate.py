"""The ``migrate`` job: every dataset of a source portal, with its files, into a target."""

from __future__ import annotations

from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkport import watchdog
from bulkport.breaker import Breaker
from bulkport.config import JobConfig
from bulkport.errors import RetriableError, SkippableError
from bulkport.http import HttpClient, Limits, RetryPolicy, Timeouts
from bulkport.model import Dataset
from bulkport.portals import registry
from bulkport.portals.base import Source, Written
from bulkport.progress import ProgressBar
from bulkport.queue import pipeline
from bulkport.report import Report, failure_reason
from bulkport.store import StateStore, transaction
from bulkport.transfer import FileTransfer, transfer_limit

DATASET_ENTRY = "dataset"  # journal: source id → name and fingerprint of what was written
DATASET, FILE = "dataset", "file"  # history: what the actions are about


def make_client(job: JobConfig) -> HttpClient:
    options = job.options
    return HttpClient(
        limits=Limits(connections_per_host=options.connections,
                      requests_per_second=options.rate_limit or None),
        retry=RetryPolicy(attempts=max(1, options.retries)),
        timeouts=Timeouts(connect=options.connect_timeout, read=options.read_timeout),
        activity=watchdog.current(),
    )


def record_plan(report: Report, action: str, label: str, **context: Any) -> None:
    """A dry run's verdict on one dataset, counted as the real run would count it when
    nothing is to be written."""
    if action == "unchanged":
        report.count("datasets_unchanged")
    else:
        report.planned(action, label, **context)


def raw_label(raw: Any) -> str:
    """How messages name a raw record before (or without) its mapping."""
    if isinstance(raw, dict):
        return f"dataset {raw.get('name') or raw.get('id') or '?'}"
    return "dataset ?"


def raw_id(raw: Any) -> str | None:
    """A raw record's source id, when it states one."""
    return str(raw["id"]) if isinstance(raw, dict) and raw.get("id") else None


def record_written(report: Report, source: Source, ds: Dataset, written: Written) -> None:
    """Keep in the run's history what became of ``ds`` and its files, and where they are."""
    report.record(DATASET, written.outcome, source_id=ds.source_id, source_url=source.page_url(ds),
                  target_id=written.key, target_url=written.url)
    resources = {r.source_id: r for r in ds.resources}
    for file in written.files:
        if file.action == "unchanged":  # those sent are counted by the FileTransfer
            report.count("files_unchanged")
        resource = resources.get(file.source_id)
        report.record(FILE, file.action, source_id=file.source_id, parent=ds.source_id,
                      source_url=source.file_url(ds, resource) if resource else None,
                      target_url=file.url)


def record_failed(report: Report, source_id: str | None, label: str,
                  error: BaseException) -> None:
    """A dataset that failed: in the report's failures and in the run's history."""
    report.fail(label, error)
    report.record(DATASET, "failed", source_id=source_id, reason=failure_reason(error))


async def migrate(job: JobConfig, *, store: StateStore, report: Report, dry_run: bool = False,
                  progress: bool = False, stop: anyio.Event | None = None) -> None:
    """Run a migration; everything it did or failed to do lands in ``report``.

    Raises:
        FatalError: the run had to stop (e.g. AuthError); finished work is journaled.
    """
    assert job.source is not None and job.target is not None
    transfers = transfer_limit(job, registry.of(job.source).held_connections)
    journal = store.journal
    async with make_client(job) as client:
        source = registry.open_source(job.source, client, job.options)
        target = registry.open_target(job.target, client, job.options, journal, report)
        transfer = FileTransfer(client, source, transfers, report)  # counts files sent
        await target.check()
        await source.check()
        bar = ProgressBar(client.activity, progress=progress, desc="datasets", unit="ds")

        async def produce(send: MemoryObjectSendStream[Any]) -> None:
            total = await source.produce(send, page_concurrency=job.options.page_concurrency,
                                         on_total=lambda n: setattr(bar, "total", n),
                                         on_page_error=lambda offset, error: report.fail(
                                             f"listing page at offset {offset}", error))
            report.count("datasets_listed_by_source", total)

        breaker = Breaker(job.options.max_repeated_failures)

        async def handle(raw: Any) -> None:
            label, source_id = raw_label(raw), raw_id(raw)
            try:
                ds = source.to_pivot(raw)
                label, source_id = f"dataset {ds.name}", ds.source_id
                fingerprint = ds.fingerprint()
                done = journal.get(DATASET_ENTRY, ds.source_id)
                if done is not None and done.get("hash") == fingerprint:
                    report.count("datasets_already_done")
                elif dry_run:
                    record_plan(report, await target.plan(ds), label,
                                files=sum(r.hosted for r in ds.resources))
                    breaker.success()
                else:
                    written = await target.upsert(ds, transfer)
                    with transaction(store.db):  # a kill -9 keeps both or neither
                        journal.record(DATASET_ENTRY, ds.source_id, name=ds.name,
                                       hash=fingerprint)
                        record_written(report, source, ds, written)
                    report.count(f"datasets_{written.outcome}")
                    breaker.success()
            except (SkippableError, RetriableError) as error:
                record_failed(report, source_id, label, error)
                breaker.failure(error)
            finally:
                bar.update()

        try:
            await pipeline(produce, handle, workers=job.options.workers, stop=stop)
        finally:
            bar.close()
            report.requests = dict(client.requests)
