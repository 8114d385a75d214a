"""DataPress API adapter: errors, the streamed catalogue export, and the source side.

The key goes in ``Authorization`` with no scheme and only to the portal's own origin (its
file downloads included). The API prefix is ``/api/v3`` (newer docs, official client) or
``/api`` (v4.0 docs): ``[source] prefix`` / ``[target] prefix``. The catalogue comes from
``datasets/export.json`` in one response, parsed as it arrives, so memory stays flat
whatever the catalogue size. It is also the only listing DataPress has: a mirror lists ids
and ``updatedAt`` from it, and reads single datasets with ``GET dataset/{id}``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

import anyio
import ijson  # type: ignore[import-untyped]  # ships no type information
from anyio.streams.memory import MemoryObjectSendStream

from bulkport.errors import (
    AuthError,
    BadResponse,
    NotFound,
    SkippableError,
    TransportError,
)
from bulkport.http import HttpClient, StreamResponse
from bulkport.idset import IdSet
from bulkport.model import Dataset, Resource
from bulkport.moments import parse_time
from bulkport.portals.base import QUIET, CheckSteps, Listing
from bulkport.portals.datapress.access import whose
from bulkport.portals.datapress.api import dataset_page, parse_error, refused_key, whoami
from bulkport.portals.datapress.mapping import datapress_to_dataset
from bulkport.portals.datapress.settings import DataPressSourceSettings
from bulkport.queue import pipeline
from bulkport.settings import Options

ID_WORKERS = 8  # datasets read by id at once (a handful: deletion candidates, missed changes)


async def iter_export(client: HttpClient, url: str) -> AsyncGenerator[Any, None]:
    """Every dataset of ``export.json``, parsed incrementally, one at a time.

    A reply cut mid-way (a dropped connection) is read again from the start, as the retry
    policy allows; the caller drops what it already had (by id).

    Raises:
        BadResponse: the body is not a JSON array.
        RetriableError: the export kept failing.
    """
    try:
        async for attempt in client.attempts():
            # Opening is retried by the client itself; a cut while reading starts over here.
            async with client.stream(url, errors=parse_error) as response:
                with attempt:
                    items: list[Any] = ijson.sendable_list()
                    # use_float: plain floats, not Decimal, so records serialise like any other
                    parser = ijson.items_coro(items, "item", use_float=True)
                    async for chunk in response.iter_chunks():
                        parser.send(chunk)
                        for item in items:
                            yield item
                        del items[:]
                    try:
                        parser.close()
                    except ijson.IncompleteJSONError as exc:
                        raise TransportError(
                            f"{url}: export ended before the catalogue did") from exc
                    for item in items:
                        yield item
    except ijson.JSONError as exc:
        raise BadResponse(f"{url}: export.json is not a JSON array of datasets "
                          f"({exc})") from None


class DataPressSource:
    """Reads a DataPress catalogue: ``whoami``, then ``export.json`` streamed, files streamed."""

    def __init__(self, settings: DataPressSourceSettings, client: HttpClient,
                 options: Options) -> None:
        self.client = client
        self.settings = settings
        self.api = settings.api
        self.fields = settings.fields
        self.licences = settings.licenses
        self._checked = False
        if settings.api_key:
            client.bind(settings.url, {settings.auth_header: settings.api_key})

    def describe(self) -> str:
        return f"DataPress {self.settings.url}"

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Fail on a wrong key before reading anything (no key: the public catalogue, which
        is asked ``whoami`` too when standalone: a run's export tells whether the site
        answers at that prefix).

        Checked once per run: an unknown key would otherwise read as an anonymous visitor's,
        and a listing without the private datasets would look like deletions to a mirror.

        Raises:
            AuthError: the site does not know the key.
            ConfigError: the URL and prefix lead to no DataPress API.
        """
        if self._checked:
            return
        steps.begin("key")
        reachable = f"reachable, DataPress API at {self.settings.prefix}"
        if self.settings.api_key:
            me = await whoami(self.client, self.api, "source")
            if me is None:
                raise refused_key(self.describe(), "source")
            steps.passed(f"{reachable}, {whose(me) if isinstance(me, dict) else 'key accepted'}")
        elif steps.standalone:
            await whoami(self.client, self.api, "source")
            steps.passed(f"{reachable}; no api_key: the public catalogue")
        self._checked = True

    async def _records(self) -> AsyncGenerator[Any, None]:
        """Every dataset of the export once (a cut export is read again from the start;
        the ids already sent are kept on disk, so memory stays flat)."""
        await self.check()
        records = iter_export(self.client, f"{self.api}/datasets/export.json")
        with IdSet() as sent:
            async with aclosing(records):  # a cancelled run closes the export at once
                async for record in records:
                    key = record.get("id") if isinstance(record, dict) else None
                    if isinstance(key, str) and not sent.add(key):
                        continue
                    yield record

    async def produce(self, send: MemoryObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None,
                      since: datetime | None = None) -> int:
        """Send every dataset of the export (raw dicts) into ``send``.

        The export is one response, so ``page_concurrency`` and ``on_page_error`` do not
        apply; the total is known at the end only.

        Args:
            since: send only the datasets whose ``updatedAt`` is at or after it (and those
                without one). DataPress has no filter: the whole export is read anyway,
                this only spares the writes downstream.

        Returns:
            The number of datasets sent.
        """
        async with send:
            count = 0
            records = self._records()
            async with aclosing(records):
                async for record in records:
                    if since is not None and _updated_before(record, since):
                        continue
                    await send.send(record)
                    count += 1
            if on_total is not None:
                on_total(count)
        return count

    async def list_ids(self, listing: Listing, *, page_concurrency: int,
                       ids: Collection[str] | None = None) -> None:
        """Add every dataset id of the export with its ``updatedAt`` to ``listing``; no
        record is kept.

        The export holds what the key may read (private datasets for their editors), the
        same records :meth:`produce` sends. A PATCH leaves ``updatedAt`` alone unless the
        editor sets it (DataPress's "silent update"): such a change is not seen here.

        Args:
            page_concurrency: unused (one response).
            ids: only those of these ids that still exist, by ``GET dataset/{id}`` each.

        Raises:
            BulkportError: the export failed or was cut (after its retries): a listing is
                complete or it is an error.
        """
        count = 0
        if ids is None:
            records = self._records()
            async with aclosing(records):
                async for record in records:
                    count += _list_one(listing, record)
        else:
            send, receive = anyio.create_memory_object_stream[Any](ID_WORKERS)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.produce_ids, send, ids)
                async with receive:
                    async for record in receive:
                        count += _list_one(listing, record)
        # The export announces no total: what it held is the total.
        listing.announced = count

    async def produce_ids(self, send: MemoryObjectSendStream[Any], ids: Collection[str]) -> None:
        """Send the datasets of ``ids`` that still exist (``GET dataset/{id}`` each, a few
        at a time), then close ``send``."""
        async def feed(out: MemoryObjectSendStream[str]) -> None:
            async with out:
                for dataset_id in sorted(set(ids)):  # the few ids asked about
                    await out.send(dataset_id)

        async def read(dataset_id: str) -> None:
            record = await self._get(dataset_id)
            if record is not None:
                await send.send(record)

        async with send:
            await self.check()
            await pipeline(feed, read, workers=ID_WORKERS)

    async def _get(self, dataset_id: str) -> Any:
        """One dataset, or None when it is gone (404) or hidden from this key (403: the
        export does not show it either)."""
        try:
            response = await self.client.request(
                "GET", f"{self.api}/dataset/{quote(dataset_id, safe='')}", errors=parse_error)
        except (NotFound, AuthError):
            return None
        return response.json()

    def to_pivot(self, raw: Any) -> Dataset:
        """Map one exported dataset (raises MappingError when it cannot be mapped)."""
        return datapress_to_dataset(raw, fields=self.fields, licences=self.licences)

    def page_url(self, ds: Dataset) -> str:
        """The dataset's public page, ``{site}/dataset/{id}`` (the export's ``webpage``)."""
        return dataset_page(self.settings.url, ds.source_id)

    def file_url(self, ds: Dataset, resource: Resource) -> str:
        """Where the file is read from: the resource's own URL, which visitors download."""
        return resource.url

    @asynccontextmanager
    async def open_file(self, resource: Resource) -> AsyncIterator[StreamResponse]:
        """Stream a hosted file; the key goes along only to the portal's own host.

        Raises:
            SkippableError: the key may not read this file (a 403 on one dataset is not a
                wrong key: that was checked with ``whoami``).
        """
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self.client.stream(resource.url, errors=parse_error))
            except AuthError as error:
                raise SkippableError(f"no permission to download it: {error}",
                                     error.status) from None
            yield response


def _updated(record: Any) -> str | None:
    value = record.get("updatedAt") if isinstance(record, dict) else None
    return value if isinstance(value, str) and value else None


def _updated_before(record: Any, since: datetime) -> bool:
    """Whether ``record`` was last updated before ``since`` (never, without a date)."""
    moment = parse_time(_updated(record))
    return moment is not None and moment < since


def _list_one(listing: Listing, record: Any) -> int:
    """Add one record to ``listing``; 1 when it had an id, else 0."""
    key = record.get("id") if isinstance(record, dict) else None
    if isinstance(key, str) and key:
        listing.add(key, _updated(record))
        return 1
    return 0
