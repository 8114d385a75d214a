"""Opendatasoft as a migration source (Automation API v1.0 and the explore API's export).

The dataset list (``GET /datasets/``, 1,000 per page) is fanned out page by page; each
dataset then has its resources and attachments listed, both at once, by a pool of workers
as wide as the per-host connection limit, so the listing never waits on one dataset at a
time. Files stream from the download endpoints (the original bytes); data that has no file
on the platform (FTP, cloud storage, federated or pushed datasets) streams from the explore
API's export, which has no row cap, unlike ``/records``. Remote (HTTP) files stay links.
The key goes as ``Authorization: apikey KEY`` to the portal's origin and nowhere else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.abc import ObjectSendStream

from bulkport.config import PortalConfig
from bulkport.errors import BadResponse, BulkportError, ConfigError, RetriableError, SkippableError
from bulkport.http import HttpClient, StreamResponse
from bulkport.mappers.ods import OdsMapOptions
from bulkport.mappers.ods_read import EXPORTS, OdsReadOptions, from_ods
from bulkport.model import Dataset, Resource
from bulkport.portals.ods import API_PATH, parse_error
from bulkport.queue import fan_out_pages, pipeline

EXPLORE_PATH = "/api/explore/v2.1"
MAX_LIMIT = 1000  # the Automation API's ceiling for ``limit``
EXPORT_FORMATS = ("csv", "json", "jsonl", "geojson", "parquet", "xlsx", "shp", "kml", "gpx",
                  "fgb", "jsonld", "rdfxml", "turtle", "n3", "ov2")


def _options(config: PortalConfig) -> OdsMapOptions:
    return OdsMapOptions(
        licenses=config.get("licenses", {}), themes=config.get("themes", {}),
        language=config.get("language", "en"), extras_template=config.get("extras_template"),
        extras_field=config.get("extras_field", "source_extras"), fields=config.get("fields", {}))


class OdsSource:
    """Reads an Opendatasoft domain: datasets with every metadata template, files, exports."""

    def __init__(self, client: HttpClient, config: PortalConfig, *,
                 page_size: int = MAX_LIMIT) -> None:
        if not config.api_key:
            raise ConfigError("[source] api_key is required for an Opendatasoft source "
                              "(the Automation API answers no anonymous caller)")
        export = config.get("export", "auto")
        if export not in EXPORTS:
            raise ConfigError(f"[source] export must be one of {', '.join(EXPORTS)}, got {export!r}")
        export_format = config.get("export_format", "csv")
        if export_format not in EXPORT_FORMATS:
            raise ConfigError(f"[source] export_format must be one of {', '.join(EXPORT_FORMATS)}, "
                              f"got {export_format!r}")
        self.client = client
        self.config = config
        self.api = config.url + API_PATH
        # [source] page_size wins over [options] page_size; the API refuses more than 1,000.
        self.limit = max(1, min(int(config.get("page_size", page_size)), MAX_LIMIT))
        self.options = _options(config)
        self.read = OdsReadOptions(
            api=self.api, explore=config.url + EXPLORE_PATH, export=export,
            export_format=export_format,
            organization_from_publisher=bool(config.get("organization_from_publisher", True)))
        self.detail_workers = int(config.get("detail_workers", 0)) or client.limits.connections_per_host
        self._seen: set[str] = set()  # uids already listed (pages shift when datasets come and go)
        client.bind(config.url, {"Authorization": f"apikey {config.api_key}"},
                    secrets=(config.api_key,))

    def describe(self) -> str:
        return f"Opendatasoft {self.config.url}"

    async def _get(self, path: str, params: Mapping[str, str | int]) -> Any:
        response = await self.client.request("GET", self.api + path, params=params,
                                             errors=parse_error)
        return response.json()

    async def list_page(self, offset: int, limit: int) -> tuple[int, list[Any]]:
        """One page of ``GET /datasets/``, without the datasets earlier pages gave."""
        page = await self._get("/datasets/", {"limit": limit, "offset": offset})
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise BadResponse(f"{self.api}/datasets/: unexpected reply (is this an Opendatasoft "
                              "Automation API?)")
        try:
            total = int(page.get("total_count"))  # documented as a string or a number
        except (TypeError, ValueError):
            raise BadResponse(f"{self.api}/datasets/: no total_count in the reply") from None
        fresh = []
        for dataset in page["results"]:
            uid = dataset.get("uid") if isinstance(dataset, dict) else None
            if isinstance(uid, str):
                if uid in self._seen:
                    continue
                self._seen.add(uid)
            fresh.append(dataset)
        return total, fresh

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
        record: dict[str, Any] = {"name": name, "dataset": dataset, "resources": [],
                                  "attachments": []}
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
        return record

    async def produce(self, send: ObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None) -> int:
        """Send the raw record of every dataset (see :meth:`details`) into ``send``."""
        total = 0

        async def listing(out: ObjectSendStream[Any]) -> None:
            nonlocal total
            total = await fan_out_pages(self.list_page, out, page_size=self.limit,
                                        concurrency=page_concurrency, on_total=on_total,
                                        on_page_error=on_page_error)

        async def complete(dataset: Any) -> None:
            await send.send(await self.details(dataset))

        async with send:
            await pipeline(listing, complete, workers=self.detail_workers)
        return total

    def to_pivot(self, raw: Any) -> Dataset:
        """Map one raw record; raise the error its listing met, if any."""
        error = raw.get("error") if isinstance(raw, dict) else None
        if isinstance(error, BulkportError):
            raise error
        return from_ods(raw, self.options, self.read)

    @asynccontextmanager
    async def open_file(self, resource: Resource) -> AsyncIterator[StreamResponse]:
        """Stream a file or an export; the key goes along only on the portal's own origin."""
        async with self.client.stream(resource.url, errors=parse_error) as response:
            yield response
