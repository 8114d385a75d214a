"""What a mirror reads from a DataPress source: ids and dates from the export, changes since
a date, records by id — against the simulator, through real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import pytest
from aiohttp import web

from bulkport.errors import ServerError, TransportError, first_error
from bulkport.http import HttpClient, RetryPolicy
from bulkport.moments import parse_time
from bulkport.portals.base import MemoryListing
from bulkport.portals.datapress.settings import DataPressSourceSettings
from bulkport.portals.datapress.source import DataPressSource
from bulkport.settings import Options
from bulkport.testing import DataPressStore, create_datapress_app, seed_datapress, serve
from bulkport.testing.core.responses import DROP_AFTER_KEY, drop_connection

ADMIN, READER = "dp-listing-admin", "dp-listing-reader"  # an editor of all, a visitor's key


@dataclass
class Site:
    store: DataPressStore
    url: str = ""
    export_fault: str | None = None  # "cut" (half the array, then the connection drops), "500"
    export_reads: int = 0
    failing_gets: bool = False  # GET dataset/{id} answers 500


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site(DataPressStore(seed=4))
    seed_datapress(site.store, datasets=120, resources=1, file_size=64, seed=4)
    site.store.add_user("Admin", "admin@example.org", admin=True, key=ADMIN)
    site.store.add_user("Reader", "reader@example.org", key=READER)

    @web.middleware
    async def faults(request: web.Request, handler: Any) -> web.StreamResponse:
        if site.failing_gets and "/dataset/" in request.path:
            return web.json_response({"statusCode": 500, "statusMessage": "Server Error"},
                                     status=500)
        if not request.path.endswith("/export.json") or site.export_fault is None:
            return await handler(request)
        site.export_reads += 1
        if site.export_fault == "500":
            return web.json_response({"statusCode": 500, "statusMessage": "Server Error"},
                                     status=500)
        request[DROP_AFTER_KEY] = True  # every read of the export is cut half-way
        response = await handler(request)
        drop_connection(request)
        return response

    app = create_datapress_app(site.store)
    app.middlewares.insert(0, faults)
    async with serve(app) as site.url:
        yield site
    site.store.close()


def portal(client: HttpClient, site: Site, key: str = ADMIN) -> DataPressSource:
    return DataPressSource(DataPressSourceSettings(type="datapress", url=site.url, api_key=key),
                           client, Options())


async def collect(produce: Any) -> list[Any]:
    send, receive = anyio.create_memory_object_stream[Any](1000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce, send)
        return [item async for item in receive]


@pytest.mark.parametrize("key", [ADMIN, READER])
async def test_list_ids_gives_what_the_export_shows_with_its_dates(site: Site, key: str) -> None:
    store = site.store
    private = {i for i, doc in store.datasets.items() if doc["sharing"] == "private"}
    assert 0 < len(private) < 120
    async with HttpClient() as client:
        source = portal(client, site, key)
        listing = MemoryListing()
        await source.list_ids(listing, page_concurrency=2)
        sent = await collect(lambda send: source.produce(send, page_concurrency=1))
    # The editor sees private datasets, a visitor does not: the listing is what produce
    # sends, whichever key reads it.
    expected = set(store.datasets) - (private if key == READER else set())
    assert set(listing.modified) == expected == {r["id"] for r in sent}
    assert listing.announced == len(expected)
    assert all(listing.modified[i] == store.datasets[i]["updatedAt"] for i in expected)
    assert store.stats["datapress:export"] == 2 and store.stats["datapress:get"] == 0
    assert store.stats["datapress:whoami"] == 1  # the key is checked once


async def test_list_ids_of_some_ids_keeps_those_still_there(site: Site) -> None:
    store = site.store
    ids = sorted(store.datasets)[:30]
    gone = ids[4]
    del store.datasets[gone]
    async with HttpClient() as client:
        listing = MemoryListing()
        await portal(client, site).list_ids(listing, page_concurrency=2,
                                            ids=[*ids, ids[0], "zzzzz"])
    assert set(listing.modified) == set(ids) - {gone}
    assert listing.announced == len(ids) - 1  # an id asked twice is read and counted once
    assert all(listing.modified[i] == store.datasets[i]["updatedAt"] for i in listing.modified)
    assert store.stats["datapress:get"] == 31 and store.stats["datapress:export"] == 0


async def test_list_ids_adds_to_the_listing_it_is_given(site: Site) -> None:
    """A listing is a sink (a mirror's is a table of its state store): what it held stays,
    the export's ids are added, and ``announced`` counts what this export held."""
    listing = MemoryListing({"kept1": "2020-01-01T00:00:00.000Z"})
    async with HttpClient() as client:
        await portal(client, site).list_ids(listing, page_concurrency=2)
    assert set(listing.modified) == {"kept1", *site.store.datasets}
    assert listing.announced == len(site.store.datasets) == len(listing) - 1


@pytest.mark.parametrize(("fault", "error"), [("cut", TransportError), ("500", ServerError)])
async def test_a_failed_export_fails_the_listing(site: Site, fault: str, error: type) -> None:
    site.export_fault = fault  # a listing is complete or an error, never partial
    async with HttpClient(retry=RetryPolicy(attempts=2, backoff_base=0.01)) as client:
        with pytest.raises(Exception) as caught:
            await portal(client, site).list_ids(MemoryListing(), page_concurrency=2)
    assert isinstance(first_error(caught.value), error)
    assert site.export_reads == 2  # tried again once, then gave up


async def test_a_failed_lookup_by_id_fails_the_listing(site: Site) -> None:
    site.failing_gets = True  # an error is not an absence: it must not become a deletion
    async with HttpClient(retry=RetryPolicy(attempts=2, backoff_base=0.01)) as client:
        with pytest.raises(Exception) as caught:
            await portal(client, site).list_ids(MemoryListing(), page_concurrency=2,
                                                ids=sorted(site.store.datasets)[:3])
    assert isinstance(first_error(caught.value), ServerError)


async def test_since_sends_what_changed_and_ids_read_records(site: Site) -> None:
    store = site.store
    dates = sorted(parse_time(doc["updatedAt"]) for doc in store.datasets.values())
    cut = dates[90]
    undated = next(i for i, doc in store.datasets.items() if parse_time(doc["updatedAt"]) < cut)
    del store.datasets[undated]["updatedAt"]  # a record without a date is always sent
    expected = {i for i, doc in store.datasets.items()
                if "updatedAt" not in doc or parse_time(doc["updatedAt"]) >= cut}
    assert len(expected) == 31
    async with HttpClient() as client:
        source = portal(client, site)
        changed = await collect(lambda send: source.produce(send, page_concurrency=1,
                                                            since=cut))
        assert {r["id"] for r in changed} == expected
        later = await collect(lambda send: source.produce(
            send, page_concurrency=1, since=dates[-1] + timedelta(seconds=1)))
        assert [r["id"] for r in later] == [undated]
        wanted = sorted(store.datasets)[:7]
        records = await collect(lambda send: source.produce_ids(send, [*wanted, "zzzzz"]))
    assert sorted(r["id"] for r in records) == wanted
    assert all(isinstance(r["resources"], dict) for r in records)  # full records, by GET
