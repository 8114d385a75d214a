"""Opendatasoft as a migration source (Automation API v1.0 and the explore API's export).

The dataset list (``GET /datasets/``, 1,000 per page) is fanned out page by page; each
dataset then has its resources and attachments listed, both at once, by a pool of workers
as wide as the per-host connection limit, so the listing never waits on one dataset at a
time. Files stream from the download endpoints (the original bytes); data that has no file
on the platform (FTP, cloud storage, federated or pushed datasets) streams from the explore
API's export, which has no row cap, unlike ``/records``. Remote (HTTP) files stay links.
The key goes as ``Authorization: apikey KEY`` to the portal's origin and nowhere else.

Where a visitor found each dataset and file (the old URLs of a redirect map) is kept beside
each pivot dataset (:mod:`bulkport.portals.ods.source_urls`). An attachment's public link
needs its id in the Explore API, which the Automation API does not give: so a published
dataset that has attachments costs one more request, the Explore API's list of them.

As a mirror source: the dataset list has no field selection and no date filter, so a cheap
listing still reads every page but keeps only each uid and its date (:func:`modified_of`),
and a pass since a date reads every page too but asks for the resources and attachments of
the datasets changed since then only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkport.errors import (
    AuthError,
    BadResponse,
    BulkportError,
    NotFound,
    RetriableError,
    SkippableError,
)
from bulkport.http import HttpClient, StreamResponse
from bulkport.idset import IdSet
from bulkport.model import Dataset, Resource
from bulkport.moments import parse_time
from bulkport.portals.base import QUIET, CheckSteps, Listing
from bulkport.portals.ods.access import check_key, refused_key
from bulkport.portals.ods.api import OdsApi, parse_error, total_count
from bulkport.portals.ods.mapping_read import OdsReadOptions, from_ods
from bulkport.portals.ods.public import EXPLORE_PATH, PublicUrls
from bulkport.portals.ods.settings import OdsSourceSettings
from bulkport.portals.ods.source_urls import EXPLORE_ATTACHMENTS, SourceUrls
from bulkport.queue import fan_out_pages, pipeline
from bulkport.settings import Options

log = logging.getLogger("bulkport")
MAX_LIMIT = 1000  # the Automation API's ceiling for ``limit``
NEEDS = "see every dataset to be read"  # what a source's key must allow, for messages
EXPORT_FORMATS = ("csv", "json", "jsonl", "geojson", "parquet", "xlsx", "shp", "kml", "gpx",
                  "fgb", "jsonld", "rdfxml", "turtle", "n3", "ov2")


def modified_of(dataset: Any) -> str | None:
    """When a listed dataset last changed: the later of ``updated_at`` and
    ``metadata.default.modified``, as written (None when neither is a date).

    ``updated_at`` moves on any edit of the dataset; ``default.modified`` is the date shown
    to users, which a publisher may set by hand or the domain may not update on every
    change. Either can be the one that moved, so the later of both is the change date.
    """
    if not isinstance(dataset, Mapping):
        return None
    default = (dataset.get("metadata") or {}).get("default") or {}
    modified = default.get("modified") if isinstance(default, Mapping) else None
    stated = [dataset.get("updated_at"),
              modified.get("value") if isinstance(modified, Mapping) else None]
    dated = [(moment, text) for text in stated if isinstance(text, str)
             and (moment := parse_time(text)) is not None]
    return max(dated)[1] if dated else None


def _uid(dataset: Any) -> Any:
    return dataset.get("uid") if isinstance(dataset, dict) else None


def changed_since(dataset: Any, since: datetime) -> bool:
    """Whether a listed dataset changed at or after ``since`` (yes when it states no date)."""
    moment = parse_time(modified_of(dataset))
    return moment is None or moment >= since


class OdsSource:
    """Reads an Opendatasoft domain: datasets with every metadata template, files, exports."""

    def __init__(self, settings: OdsSourceSettings, client: HttpClient, options: Options, *,
                 visitor_urls: bool = True) -> None:
        self.client = client
        self.settings = settings
        self.site = OdsApi(settings, client)
        self.api = self.site.base
        # [source] page_size wins over [options] page_size; the API refuses more than 1,000.
        self.limit = max(1, min(settings.page_size or options.page_size, MAX_LIMIT))
        self.options = settings.map_options()
        self.read = OdsReadOptions(
            api=self.api, explore=settings.url + EXPLORE_PATH, export=settings.export,
            export_format=settings.export_format,
            organization_from_publisher=settings.organization_from_publisher)
        self.detail_workers = settings.detail_workers or client.limits.connections_per_host
        # Learn where visitors find each dataset and file, as a redirect map needs them (a
        # reader that only compares records skips the requests that costs).
        self.visitor_urls = visitor_urls
        self.public = PublicUrls(settings.url, client)
        self.urls = SourceUrls(self.public, self.read)

    def describe(self) -> str:
        return self.site.describe()

    def page_url(self, ds: Dataset) -> str:
        """``{domain}/explore/dataset/{dataset_id}/``, the page the portal shows a published
        dataset on; the back office's page of one not published."""
        return self.urls.page(ds)

    def file_url(self, ds: Dataset, resource: Resource) -> str:
        """A tabular file: the export of the dataset's records in its format; an
        attachment: its Information tab link; not published: where the Automation API
        serves it (see :mod:`bulkport.portals.ods.public`)."""
        return self.urls.file(ds, resource)

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Nothing to ask first in a run: the Automation API answers no anonymous caller, so
        a wrong key cannot shorten the listing, and its first page is the key check (a
        refusal is worded as the key's by :meth:`_get`). Standalone, that first question is
        asked here (``key``).

        Raises:
            AuthError: the domain refused the key.
            ConfigError: there is no Automation API at ``[source] url``.
        """
        if not steps.standalone:
            return
        steps.begin("key")
        total = total_count(await check_key(self.site, "source", NEEDS))
        steps.passed(f"reachable, Automation API v1.0, key accepted: "
                     f"{'?' if total is None else f'{total:,}'} datasets to read")

    async def _get(self, path: str, params: Mapping[str, str | int]) -> Any:
        try:
            response = await self.client.request("GET", self.api + path, params=params,
                                                 errors=parse_error)
        except AuthError as error:
            raise refused_key(self.site, "source", NEEDS, error) from None
        return response.json()

    async def list_page(self, offset: int, limit: int, *,
                        seen: IdSet | None = None) -> tuple[int, list[Any]]:
        """One page of ``GET /datasets/``.

        Args:
            seen: the uids earlier pages gave, which are left out of this one (pages shift
                when datasets are created or deleted while they are read); this page's
                uids are added to it.
        """
        page = await self._get("/datasets/", {"limit": limit, "offset": offset})
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise BadResponse(f"{self.api}/datasets/: unexpected reply (is this an Opendatasoft "
                              "Automation API?)")
        total = total_count(page)
        if total is None:
            raise BadResponse(f"{self.api}/datasets/: no total_count in the reply")
        results: list[Any] = page["results"]
        if seen is not None:
            new = iter(seen.add_all([u for d in results if isinstance(u := _uid(d), str)]))
            results = [d for d in results if not isinstance(_uid(d), str) or next(new)]
        return total, results

    async def list_all(self, path: str, params: Mapping[str, str] | None = None) -> list[Any]:
        """Every item of a paginated list (resources, attachments) of one dataset."""
        items: list[Any] = []
        while True:
            page = await self._get(path, {**(params or {}), "limit": MAX_LIMIT, "offset": len(items)})
            if isinstance(page, list):  # tolerate a list served without pagination
                return page
            batch = page.get("results") if isinstance(page, dict) else None
            if not isinstance(batch, list):
                raise BadResponse(f"{self.api}{path}: unexpected reply")
            items.extend(batch)
            if not batch or not page.get("next"):
                return items

    async def details(self, dataset: Any) -> dict[str, Any]:
        """The raw record of one dataset: itself, its resources and its attachments.

        A failure that concerns this dataset only is kept in the record (``error``) and
        raised by :meth:`to_pivot`, so the run reports it and goes on; a fatal one (a key
        refused) propagates and stops the run.
        """
        uid = dataset.get("uid") if isinstance(dataset, dict) else None
        name = (dataset.get("dataset_id") if isinstance(dataset, dict) else None) or uid
        record: dict[str, Any] = {"id": uid, "name": name, "dataset": dataset,
                                  "resources": [], "attachments": []}
        if not isinstance(uid, str):
            return record  # to_pivot says what is wrong with it

        async def fetch(key: str, path: str, params: dict[str, str]) -> None:
            try:
                record[key] = await self.list_all(path, params)
            except (SkippableError, RetriableError) as error:
                record["error"] = error

        async with anyio.create_task_group() as tg:
            # Expanded, an HTTP datasource carries its server's URL: the link can stay a link.
            tg.start_soon(fetch, "resources", f"/datasets/{uid}/resources/",
                          {"expand": "datasource.connection"})
            tg.start_soon(fetch, "attachments", f"/datasets/{uid}/attachments/", {})
        if (self.visitor_urls and record["attachments"] and "error" not in record
                and dataset.get("is_published")):
            await self._explore_attachments(record, str(name))
        return record

    async def _explore_attachments(self, record: dict[str, Any], dataset_id: str) -> None:
        """Add the Explore API's list of the dataset's attachments to ``record``: their
        public links need its ids. Without it, the links are the Automation API's."""
        try:
            record[EXPLORE_ATTACHMENTS] = await self.public.list_attachments(dataset_id)
        except (SkippableError, RetriableError, AuthError) as error:  # no reason to stop
            log.warning("%s: the Explore API did not list the attachments of dataset %s (%s): "
                        "their Automation API URLs are recorded instead", self.describe(),
                        dataset_id, type(error).__name__)

    async def produce(self, send: MemoryObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None,
                      since: datetime | None = None) -> int:
        """Send the raw record of every dataset (see :meth:`details`) into ``send``.

        Args:
            since: only the datasets changed at or after this moment (:func:`modified_of`).
                Every page of the list is still read (the API has no date filter), but
                resources and attachments are only asked for the datasets selected.

        Returns:
            The total the domain announced; with ``since``, the number of datasets selected
            (also what ``on_total`` is told, once the list has been read).
        """
        if since is None:
            return await self.produce_where(send, None, page_concurrency=page_concurrency,
                                            on_total=on_total, on_page_error=on_page_error)
        selected = await self.produce_where(send, partial(changed_since, since=since),
                                            page_concurrency=page_concurrency,
                                            on_page_error=on_page_error)
        if on_total is not None:
            on_total(selected)
        return selected

    async def produce_where(self, send: MemoryObjectSendStream[Any],
                            keep: Callable[[Any], bool] | None, *, page_concurrency: int,
                            on_total: Callable[[int], None] | None = None,
                            on_page_error: Callable[[int, Exception], None] | None = None) -> int:
        """Send the raw records of the listed datasets ``keep`` accepts (all when None).

        Returns:
            The total the domain announced, or with ``keep`` the number of datasets kept.
        """
        total = kept = 0

        async def listing(out: MemoryObjectSendStream[Any]) -> None:
            nonlocal total
            # The uids listed so far, on disk rather than in memory, for as long as the
            # listing lasts.
            with IdSet() as seen:
                total = await fan_out_pages(partial(self.list_page, seen=seen), out,
                                            page_size=self.limit,
                                            concurrency=page_concurrency, on_total=on_total,
                                            on_page_error=on_page_error)

        async def complete(dataset: Any) -> None:
            nonlocal kept
            if keep is None or keep(dataset):
                kept += 1
                await send.send(await self.details(dataset))

        async with send:
            await pipeline(listing, complete, workers=self.detail_workers)
        return total if keep is None else kept

    async def list_ids(self, listing: Listing, *, page_concurrency: int,
                       ids: Collection[str] | None = None) -> None:
        """Add every dataset uid with its modified date (:func:`modified_of`) to
        ``listing``, a page at a time; nothing else of a dataset is kept. A uid that
        shifting pages give twice lands on its own entry of the listing again, so no set of
        the uids seen is kept.

        Args:
            ids: only those of these uids the domain still holds, each asked for by uid
                (``GET /datasets/{uid}/``; 404 means gone).

        Raises:
            BulkportError: a page or a lookup failed: a listing is complete or an error.
        """
        def note(dataset: Any) -> bool:
            uid = _uid(dataset)
            if isinstance(uid, str):
                listing.add(uid, modified_of(dataset))
            return isinstance(uid, str)

        if ids is not None:
            found = 0

            async def look_up(uid: str) -> None:
                nonlocal found
                dataset = await self._dataset(uid)
                if dataset is not None and note(dataset):
                    found += 1

            await self._for_each(ids, look_up)
            listing.announced = found
            return
        send, receive = anyio.create_memory_object_stream[Any](self.limit)
        async with anyio.create_task_group() as tg:
            async def pages() -> None:
                listing.announced = await fan_out_pages(
                    self.list_page, send, page_size=self.limit, concurrency=page_concurrency)

            tg.start_soon(pages)
            async with receive:
                async for dataset in receive:  # a page at a time: only uid and date stay
                    note(dataset)

    async def produce_ids(self, send: MemoryObjectSendStream[Any], ids: Collection[str]) -> None:
        """Send the raw records of the datasets ``ids`` names that still exist, then close
        ``send``. One that cannot be read is sent with its error, which :meth:`to_pivot`
        raises, so the run reports it and goes on."""
        async def complete(uid: str) -> None:
            try:
                dataset = await self._dataset(uid)
            except (SkippableError, RetriableError) as error:
                await send.send({"id": uid, "name": uid, "error": error})
                return
            if dataset is not None:
                await send.send(await self.details(dataset))

        async with send:
            await self._for_each(ids, complete)

    async def _dataset(self, uid: str) -> dict[str, Any] | None:
        """``GET /datasets/{uid}/``; None when the domain no longer has it."""
        try:
            dataset = await self._get(f"/datasets/{quote(uid, safe='')}/", {})
        except NotFound:
            return None
        if not isinstance(dataset, dict):
            raise BadResponse(f"{self.api}/datasets/{uid}/: unexpected reply")
        return dataset

    async def _for_each(self, uids: Collection[str],
                        handle: Callable[[str], Awaitable[None]]) -> None:
        """``handle`` every uid, as many at once as there are detail workers."""
        async def produce(out: MemoryObjectSendStream[str]) -> None:
            async with out:
                for uid in sorted(uids):
                    await out.send(uid)

        await pipeline(produce, handle, workers=self.detail_workers)

    def to_pivot(self, raw: Any) -> Dataset:
        """Map one raw record; raise the error its listing met, if any."""
        error = raw.get("error") if isinstance(raw, dict) else None
        if isinstance(error, BulkportError):
            raise error
        ds = from_ods(raw, self.options, self.read)
        self.urls.keep(ds, raw)
        return ds

    @asynccontextmanager
    async def open_file(self, resource: Resource) -> AsyncIterator[StreamResponse]:
        """Stream a file or an export; the key goes along only on the portal's own origin."""
        async with self.client.stream(resource.url, errors=parse_error) as response:
            yield response
