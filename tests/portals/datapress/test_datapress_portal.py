"""The DataPress source: the streamed export, read again when cut, in flat memory."""

from __future__ import annotations

import tracemalloc
from typing import Any

import anyio
import orjson
from aiohttp import web

from bulkport.http import HttpClient, RetryPolicy
from bulkport.portals.datapress.settings import DataPressSourceSettings
from bulkport.portals.datapress.source import DataPressSource, iter_export
from bulkport.settings import Options
from bulkport.testing import DataPressStore, create_datapress_app, seed_datapress, serve
from bulkport.testing.core.responses import DROP_AFTER_KEY, drop_connection

KEY = "dp-source-key-e1f2"


async def _collect(portal: DataPressSource) -> tuple[int, list[Any]]:
    send, receive = anyio.create_memory_object_stream[Any](0)
    got: list[Any] = []
    async with anyio.create_task_group() as tg:
        async def consume() -> None:
            async with receive:
                async for item in receive:
                    got.append(item)

        tg.start_soon(consume)
        total = await portal.produce(send, page_concurrency=1)
    return total, got


async def test_an_export_cut_mid_way_is_read_again_without_duplicates() -> None:
    store = DataPressStore(seed=3)
    seed_datapress(store, datasets=200, resources=1, file_size=64, seed=3)
    store.add_user("Reader", "r@example.org", admin=True, key=KEY)
    cuts: list[str] = []

    @web.middleware
    async def cut_first_export(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/export.json") and not cuts:
            cuts.append(request.path)
            request[DROP_AFTER_KEY] = True  # the simulator stops writing half-way
            response = await handler(request)
            drop_connection(request)
            return response
        return await handler(request)

    app = create_datapress_app(store, prefix="/api")
    app.middlewares.insert(0, cut_first_export)
    async with serve(app) as url, HttpClient(retry=RetryPolicy(backoff_base=0.01)) as client:
        portal = DataPressSource(DataPressSourceSettings(type="datapress", url=url, api_key=KEY,
                                                         prefix="/api"), client, Options())
        total, got = await _collect(portal)
    assert cuts == ["/api/datasets/export.json"]
    assert store.stats["datapress:export"] == 2 and store.stats["datapress:whoami"] == 1
    assert total == 200 and sorted(d["id"] for d in got) == sorted(store.datasets)
    store.close()


async def test_the_export_is_parsed_in_flat_memory() -> None:
    record = orjson.dumps({"id": "x", "title": "t" * 900, "custom": {"k": [1, 2.5, None]}})
    count = 6000  # about 5.5 MB of JSON

    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        await response.write(b"[")
        for n in range(count):
            await response.write((b"," if n else b"") + record)
        await response.write(b"]")
        return response

    app = web.Application()
    app.router.add_get("/export.json", export)
    seen = 0
    async with serve(app) as url, HttpClient() as client:
        tracemalloc.start()
        try:
            async for item in iter_export(client, url + "/export.json"):
                assert item["custom"]["k"] == [1, 2.5, None]  # floats, not Decimal
                seen += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert seen == count
    assert peak < 1_500_000  # the body is 5.5 MB: never held whole


class _Counted:
    """A listing that keeps a count only, so that what is measured is the source's."""

    announced = 0

    def __init__(self) -> None:
        self.added = 0

    def add(self, source_id: str, modified: str | None) -> None:
        self.added += 1

    def __len__(self) -> int:
        return self.added


async def test_the_ids_of_the_export_are_not_kept_in_memory() -> None:
    """Dropping what a cut export sent again needs every id met: they go to disk."""
    count = 20_000  # a Python set of them would add 2.4 MB to the peak

    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        body = bytearray(b"[")
        for n in range(count):
            body += b'%s{"id": "d%06d", "updatedAt": "2025-01-01T00:00:00.000Z"}' % (
                b"," if n else b"", n)
            if len(body) >= 65536:
                await response.write(bytes(body))
                body.clear()
        await response.write(bytes(body) + b"]")
        return response

    app = web.Application()
    app.router.add_get("/api/v3/datasets/export.json", export)
    listing = _Counted()
    async with serve(app) as url, HttpClient() as client:
        portal = DataPressSource(DataPressSourceSettings(type="datapress", url=url), client,
                                 Options())
        tracemalloc.start()
        try:
            await portal.list_ids(listing, page_concurrency=1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert listing.added == listing.announced == count
    assert peak < 2_500_000  # about 1.6 MB of buffers whatever the count

