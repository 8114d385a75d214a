"""CKAN Action API adapter (also the base of PortalJS Cloud)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timezone
from functools import partial
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from bulkport.errors import BadResponse, ValidationError
from bulkport.http import HttpClient, StreamResponse
from bulkport.idset import IdSet
from bulkport.model import Dataset, Resource, text
from bulkport.moments import parse_time
from bulkport.portals.base import QUIET, CheckSteps, Listing
from bulkport.portals.ckan.access import check_source_key
from bulkport.portals.ckan.api import CkanApi, parse_error
from bulkport.portals.ckan.mapping import package_to_dataset
from bulkport.portals.ckan.pages import dataset_page
from bulkport.portals.ckan.settings import CkanSourceSettings
from bulkport.queue import fan_out_pages
from bulkport.settings import Options

ROWS_MAX = 1000  # CKAN's default ckan.search.rows_max
FULL_ROWS = 200  # whole packages per page by default: one parses to about 9 kB, or far more
ID_BATCH = 50  # ids per ``id:(...)`` filter: short enough for a GET URL
# A sysadmin's resource_delete (and a package_update that sends metadata_modified back)
# leaves metadata_modified as it was, but every write reindexes the dataset, and Solr
# stamps each document it indexes with indexed_ts (stored, default NOW in schema.xml).
CHANGE_DATES = ("metadata_modified", "indexed_ts")
LISTED_FIELDS = ",".join(("id", *CHANGE_DATES))


def solr_date(moment: datetime) -> str:
    """A date as Solr reads and writes it: UTC, milliseconds at most, a trailing ``Z``."""
    utc = moment.astimezone(timezone.utc) if moment.tzinfo else moment
    text = utc.replace(tzinfo=None, microsecond=utc.microsecond // 1000 * 1000).isoformat()
    return (text[:-3] if "." in text else text) + "Z"


def changed_since(since: datetime) -> str:
    """The ``fq`` of packages changed at or after ``since``: either date moved."""
    stamp = solr_date(since)
    # In parentheses: it is joined to the job's own fq by a space (q.op=AND), and a bare
    # OR next to that would make both ranges optional.
    return "(" + " OR ".join(f"{field}:[{stamp} TO *]" for field in CHANGE_DATES) + ")"


def listed_date(row: Mapping[str, Any]) -> str | None:
    """When a listed package last changed: the later of its :data:`CHANGE_DATES`.

    A search-index rebuild moves every ``indexed_ts``: the next mirror run then reads the
    whole catalog once, and writes nothing, since every content hash still matches.
    """
    dated = [(moment, stated) for stated in (text(row.get(f)) for f in CHANGE_DATES)
             if (moment := parse_time(stated)) is not None]
    return max(dated)[1] if dated else None


def id_filters(ids: Iterable[str]) -> Iterator[str]:
    """``fq`` filters selecting ``ids``, :data:`ID_BATCH` at a time (made as they are used)."""
    batch: list[str] = []
    for pkg_id in ids:
        batch.append(pkg_id)
        if len(batch) == ID_BATCH:
            yield _id_filter(batch)
            batch = []
    if batch:
        yield _id_filter(batch)


def _id_filter(batch: Sequence[str]) -> str:
    return "id:(" + " OR ".join(f'"{i}"' for i in batch) + ")"


def _listed_id(pkg: Any) -> str | None:
    pkg_id = pkg.get("id") if isinstance(pkg, dict) else None
    return None if pkg_id is None else str(pkg_id)


class CkanSource:
    """Reads a CKAN catalog: ``package_search`` pages fanned out, files streamed."""

    def __init__(self, settings: CkanSourceSettings, client: HttpClient,
                 options: Options) -> None:
        self.settings = settings
        self.client = client
        self.api = CkanApi(settings, client)
        # [source] rows wins over [options] page_size; the server may clamp it further.
        self.rows = max(1, min(settings.rows or options.page_size, ROWS_MAX))
        # Whole packages are held a page at a time while workers take them: smaller pages
        # keep that memory small (ids and dates only are listed by the page of self.rows).
        self.full_rows = settings.rows or min(self.rows, FULL_ROWS)
        self._search_by_post = settings.search_by_post  # set for good once GET is refused

    def describe(self) -> str:
        return self.api.describe()

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Before the listing: stop when it would quietly lack what the job asks for, as
        with a key CKAN does not know (read as anonymous): see :mod:`.access`."""
        await check_source_key(self.api, self.settings, steps)

    def page_url(self, ds: Dataset) -> str:
        """The dataset's page (:func:`~bulkport.portals.ckan.pages.dataset_page`)."""
        return dataset_page(self.settings, ds.name, ds.organization)

    def file_url(self, ds: Dataset, resource: Resource) -> str:
        """Where the file is read from: the resource's own URL, which visitors download."""
        return resource.url

    def _search_params(self, offset: int, limit: int, *, fq: str | None = None,
                       fields: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "q": self.settings.q,
            "rows": limit,
            "start": offset,
            "sort": "id asc",  # stable across pages, unlike the default score sort
            "include_private": self.settings.include_private,
            "include_drafts": self.settings.include_drafts,
        }
        # CKAN sends q.op=AND to Solr: clauses joined by spaces must all hold.
        filters = " ".join(f for f in (self.settings.fq, fq) if f)
        if filters:
            params["fq"] = filters
        if fields:
            params["fl"] = fields
        return params

    async def search_page(self, offset: int, limit: int, *, fq: str | None = None,
                          fields: str | None = None,
                          seen: IdSet | None = None) -> tuple[int, Sequence[Any]]:
        """One ``package_search`` page.

        Args:
            fq: a filter added to the job's own ``fq``.
            fields: ``fl``: only these fields of each record (Solr's stored values).
            seen: the ids listed by earlier pages, which are dropped from this one (pages
                shift when records are added or deleted while they are read); this page's
                ids are added to it.
        """
        params = self._search_params(offset, limit, fq=fq, fields=fields)
        if not self._search_by_post:
            try:
                result = await self.api.call("package_search", params)
            except ValidationError as error:
                # Some deployments (or proxies) refuse GET here: 400 "use POST", 405, 414.
                if error.status not in (400, 405, 414):
                    raise
                self._search_by_post = True
        if self._search_by_post:
            result = await self.api.call("package_search", params, post=True)
        if not isinstance(result, dict) or not isinstance(result.get("results"), list):
            raise BadResponse(f"{self.api.base}package_search: unexpected result shape")
        rows: list[Any] = result["results"]
        if seen is not None:
            fresh = iter(seen.add_all([i for pkg in rows if (i := _listed_id(pkg)) is not None]))
            rows = [pkg for pkg in rows if _listed_id(pkg) is None or next(fresh)]
        return int(result.get("count", 0)), rows

    async def produce(self, send: MemoryObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None,
                      since: datetime | None = None) -> int:
        """Send every package of the catalog (raw dicts) into ``send``, each once.

        Args:
            since: only the packages modified or reindexed at or after this moment
                (:func:`changed_since`).
        """
        fq = changed_since(since) if since is not None else None
        # The ids listed so far live as long as this listing: on disk, not in memory, and
        # gone when it ends (a source has no close of its own; a later listing starts anew).
        with IdSet() as seen:
            return await fan_out_pages(partial(self.search_page, fq=fq, seen=seen), send,
                                       page_size=self.full_rows, concurrency=page_concurrency,
                                       on_total=on_total, on_page_error=on_page_error)

    async def list_ids(self, listing: Listing, *, page_concurrency: int,
                       ids: Collection[str] | None = None) -> None:
        """Add every package id with its change date (:func:`listed_date`) to ``listing``,
        never the full records. An id that shifting pages list twice lands on its own
        entry of the listing again (the later date wins), so no set of seen ids is kept.

        Args:
            ids: list only those of these ids that the catalog (with the job's filters)
                still holds.

        Raises:
            BulkportError: a page failed: a listing is complete or it is an error.
        """
        filters: Iterable[str | None] = [None] if ids is None else id_filters(ids)
        send, receive = anyio.create_memory_object_stream[Any](self.rows)
        async with anyio.create_task_group() as tg:
            async def pages(fq: str | None, out: MemoryObjectSendStream[Any]) -> None:
                fetch = partial(self.search_page, fq=fq, fields=LISTED_FIELDS)
                total = await fan_out_pages(fetch, out, page_size=self.rows,
                                            concurrency=page_concurrency)
                listing.announced += total

            async def all_batches() -> None:
                async with send:
                    for fq in filters:
                        await pages(fq, send.clone())

            tg.start_soon(all_batches)
            async with receive:
                async for row in receive:
                    if isinstance(row, dict) and row.get("id"):
                        listing.add(str(row["id"]), listed_date(row))

    async def produce_ids(self, send: MemoryObjectSendStream[Any], ids: Collection[str]) -> None:
        """Send the full packages of ``ids`` (those the job's filters still select)."""
        async with send:
            for fq in id_filters(ids):
                # A batch fits one page (ID_BATCH rows): no later page to shift, no repeat.
                _, found = await self.search_page(0, ID_BATCH, fq=fq)
                for pkg in found:
                    await send.send(pkg)

    def to_pivot(self, raw: Any) -> Dataset:
        return package_to_dataset(raw, fields=self.settings.fields)

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        """Stream a hosted file. The key goes along only if the file is on the portal's host."""
        return self.client.stream(resource.url, errors=parse_error)
