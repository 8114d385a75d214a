"""What a mirror reads from a CKAN source: cheap id listings, changes since a date, records
by id — against the simulator, through real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from aiohttp import web

from bulkport.errors import ServerError, first_error
from bulkport.http import HttpClient, RetryPolicy
from bulkport.portals.base import MemoryListing
from bulkport.portals.ckan.settings import CkanSourceSettings
from bulkport.portals.ckan.source import CkanSource, solr_date
from bulkport.settings import Options
from bulkport.testing import CkanStore, create_ckan_app, seed_ckan, serve

KEY = "listing-key"


@dataclass
class Site:
    store: CkanStore
    url: str = ""
    failing: set[int] = field(default_factory=set)  # ``start`` offsets answered with a 500
    shift: bool = False  # add a dataset that sorts first once the first page is served


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site(CkanStore(seed=2))
    seed_ckan(site.store, datasets=130, resources=1, file_size=100, seed=2)

    @web.middleware
    async def fail_pages(request: web.Request, handler: Any) -> web.StreamResponse:
        if int(request.query.get("start", 0)) in site.failing:
            return web.json_response({"success": False, "error": {"message": "boom"}},
                                     status=500)
        reply = await handler(request)
        if site.shift and request.match_info.get("name") == "package_search":
            site.shift = False  # every later page now starts one record earlier
            first = min(active(site.store).values(), key=lambda p: p["id"])
            site.store.save_package({**first, "id": "0" * 8 + "-0000-4000-8000-" + "0" * 12,
                                     "name": "added-while-listed"})
        return reply

    app = create_ckan_app(site.store, api_keys={KEY: "admin"})
    app.middlewares.insert(0, fail_pages)
    async with serve(app) as site.url:
        yield site
    site.store.close()


def portal(client: HttpClient, url: str, **settings: Any) -> CkanSource:
    return CkanSource(CkanSourceSettings(**{"type": "ckan", "url": url, "api_key": KEY,
                                            "include_private": True, "rows": 50, **settings}),
                      client, Options())


async def collect(produce: Any) -> list[Any]:
    send, receive = anyio.create_memory_object_stream[Any](1000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce, send)
        return [item async for item in receive]


def active(store: CkanStore) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in store.packages.values() if p["state"] == "active"}


async def test_list_ids_gives_every_id_and_date_without_full_records(site: Site) -> None:
    store, url = site.store, site.url
    async with HttpClient() as client:
        listing = MemoryListing()
        await portal(client, url).list_ids(listing, page_concurrency=2)
    assert set(listing.modified) == set(active(store)) and listing.announced == 130
    for pkg_id, modified in listing.modified.items():
        stored = datetime.fromisoformat(store.packages[pkg_id]["metadata_modified"])
        assert modified == solr_date(stored)  # Solr's form: milliseconds and a Z
    assert store.stats["ckan:package_search"] == 3  # 50 + 50 + 30, ids and dates only


async def test_list_ids_of_some_ids_keeps_those_still_there(site: Site) -> None:
    store, url = site.store, site.url
    ids = sorted(active(store))[:70]
    gone = ids[5]
    store.save_package({**store.packages[gone], "state": "deleted"})
    async with HttpClient() as client:
        listing = MemoryListing()
        await portal(client, url).list_ids(listing, page_concurrency=2, ids=[*ids, "nope"])
    assert set(listing.modified) == set(ids) - {gone}
    assert store.stats["ckan:package_search"] == 2  # ids in batches of 50


async def test_a_failed_page_fails_the_listing(site: Site) -> None:
    site.failing.add(50)  # the second page: a listing is complete or an error, never partial
    async with HttpClient(retry=RetryPolicy(attempts=2, backoff_base=0.01)) as client:
        with pytest.raises(Exception) as caught:
            await portal(client, site.url).list_ids(MemoryListing(), page_concurrency=2)
    assert isinstance(first_error(caught.value), ServerError)


async def test_since_reads_only_what_changed_and_ids_read_records(site: Site) -> None:
    store, url = site.store, site.url
    newest = max(p["metadata_modified"] for p in active(store).values())
    cut = datetime.fromisoformat(newest).replace(tzinfo=timezone.utc) - timedelta(days=20)
    expected = {i for i, p in active(store).items()
                if datetime.fromisoformat(p["metadata_modified"]).replace(tzinfo=timezone.utc)
                >= cut}
    assert 0 < len(expected) < 130
    async with HttpClient() as client:
        source = portal(client, url)
        changed = await collect(lambda send: source.produce(send, page_concurrency=2, since=cut))
        assert {p["id"] for p in changed} == expected
        assert all("resources" in p for p in changed)  # full records
        wanted = sorted(active(store))[:7]
        records = await collect(lambda send: source.produce_ids(send, wanted))
    assert sorted(p["id"] for p in records) == wanted


async def test_a_reindex_alone_is_a_change_for_the_listing_and_for_since(site: Site) -> None:
    """A sysadmin's resource_delete moves no metadata_modified, only Solr's indexed_ts."""
    store, url = site.store, site.url
    pkg_id = min(active(store), key=lambda i: store.packages[i]["metadata_modified"])
    reindexed = datetime.now(timezone.utc).replace(tzinfo=None)
    store.save_package({**store.packages[pkg_id], "indexed_ts": reindexed.isoformat()})
    async with HttpClient() as client:
        source = portal(client, url)
        listing = MemoryListing()
        await source.list_ids(listing, page_concurrency=2)
        cut = reindexed.replace(tzinfo=timezone.utc) - timedelta(minutes=1)
        changed = await collect(lambda send: source.produce(send, page_concurrency=2, since=cut))
    assert listing.modified[pkg_id] == solr_date(reindexed)
    others = {i: solr_date(datetime.fromisoformat(p["metadata_modified"]))
              for i, p in active(store).items() if i != pkg_id}
    assert {i: listing.modified[i] for i in others} == others
    assert [p["id"] for p in changed] == [pkg_id]


async def test_produce_sends_once_what_shifted_pages_list_twice(site: Site) -> None:
    """A dataset added while the pages are read moves every later record one place on: the
    last of each page comes again at the top of the next. Each is sent once."""
    site.shift = True
    async with HttpClient() as client:
        source = portal(client, site.url)
        sent = await collect(lambda send: source.produce(send, page_concurrency=1))
        ids = [p["id"] for p in sent]
        assert len(ids) == len(set(ids)) == 130  # the newcomer itself is the next run's
        assert site.store.stats["ckan:package_search"] == 3
        # The ids seen last for one listing only: a later one on the same source sends all.
        again = await collect(lambda send: source.produce(send, page_concurrency=2))
    assert len(again) == 131


async def test_list_ids_adds_an_id_listed_twice_once(site: Site) -> None:
    site.shift = True
    async with HttpClient() as client:
        listing = MemoryListing()
        await portal(client, site.url).list_ids(listing, page_concurrency=1)
    assert len(listing) == 130 and listing.announced == 130
