"""What a mirror reads from an Opendatasoft source: cheap uid listings, changes since a date,
records by uid — against the simulator, through real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from ods_edits import ByHand

from bulkport.errors import ServerError, first_error
from bulkport.http import HttpClient, RetryPolicy
from bulkport.portals.base import MemoryListing
from bulkport.portals.ods.settings import OdsSourceSettings
from bulkport.portals.ods.source import OdsSource
from bulkport.settings import Options
from bulkport.testing import OdsStore, create_ods_app, seed_ods, serve

KEY = "ods-listing-key"
DATASETS = 130
RESOURCES = "GET /datasets/{uid}/resources/"
ATTACHMENTS = "GET /datasets/{uid}/attachments/"


@dataclass
class Site:
    store: OdsStore
    url: str = ""
    failing: set[int] = field(default_factory=set)  # ``offset``s of /datasets/ answered 500
    # Pages after the first are read from this many places earlier, as if as many datasets
    # had been created at the head of the list once the first page was read.
    shift: int = 0


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site(OdsStore(seed=3))
    seed_ods(site.store, datasets=DATASETS, resources=1, file_size=100, seed=3,
             large_export_rows=10)

    @web.middleware
    async def fail_pages(request: web.Request, handler: Any) -> web.StreamResponse:
        offset = int(request.query.get("offset", 0))
        if request.path.endswith("/datasets/") and offset in site.failing:
            return web.json_response({"error_code": "internal_error", "message": "boom"},
                                     status=500)
        if request.path.endswith("/datasets/") and offset and site.shift:
            moved = request.rel_url.update_query(offset=max(0, offset - site.shift))
            return await handler(request.clone(rel_url=moved))
        return await handler(request)

    app = create_ods_app(site.store, api_keys={KEY})
    app.middlewares.insert(0, fail_pages)
    async with serve(app) as site.url:
        yield site
    site.store.close()


def source(client: HttpClient, url: str) -> OdsSource:
    return OdsSource(OdsSourceSettings(type="ods", url=url, api_key=KEY, page_size=50), client,
                     Options())


def stated(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def latest(store: OdsStore, uid: str) -> str:
    """The later of the dataset's updated_at and default.modified, as the store holds them."""
    dataset = store.datasets[uid]
    return max(dataset.updated_at, dataset.metadata["default"]["modified"]["value"], key=stated)


async def collect(produce: Any) -> list[Any]:
    send, receive = anyio.create_memory_object_stream[Any](1000)
    async with anyio.create_task_group() as tg:
        tg.start_soon(produce, send)
        return [item async for item in receive]


async def test_list_ids_gives_every_uid_and_its_latest_date_without_details(site: Site) -> None:
    store = site.store
    # The generated modified dates are later than updated_at; an edit makes updated_at the
    # later one, leaving modified (as a domain may: it need not follow every change).
    edited = sorted(store.datasets)[::40]
    for uid in edited:
        await ByHand(site.url, KEY).set_field(uid, "default", "timezone", "Europe/Paris")
    store.stats.clear()
    listing = MemoryListing()
    async with HttpClient() as client:
        await source(client, site.url).list_ids(listing, page_concurrency=2)
    assert set(listing.modified) == set(store.datasets) and listing.announced == DATASETS
    assert listing.modified == {uid: latest(store, uid) for uid in store.datasets}
    assert sorted(uid for uid, d in store.datasets.items()
                  if listing.modified[uid] == d.updated_at) == edited
    assert store.stats["GET /datasets/"] == 3  # 50 + 50 + 30
    assert store.stats[RESOURCES] == store.stats[ATTACHMENTS] == 0


async def test_list_ids_of_some_uids_keeps_those_still_there(site: Site) -> None:
    store = site.store
    uids = sorted(store.datasets)[:12]
    gone = uids[5]
    store.remove(store.datasets[gone])
    listing = MemoryListing()
    async with HttpClient() as client:
        await source(client, site.url).list_ids(listing, page_concurrency=2,
                                                ids=[*uids, "da_nope00"])
    assert listing.modified == {uid: latest(store, uid) for uid in uids if uid != gone}
    assert listing.announced == len(uids) - 1
    assert store.stats["GET /datasets/{uid}/"] == 13  # one lookup each, 404s included
    assert store.stats["GET /datasets/"] == 0


class CountingListing(MemoryListing):
    """A listing that counts what it is given."""

    added: int = 0

    def add(self, source_id: str, modified: str | None) -> None:
        self.added += 1
        super().add(source_id, modified)


async def test_a_shifting_list_gives_each_dataset_once(site: Site) -> None:
    site.shift = 7  # pages of 50 from 0, 43 and 93: the second repeats 7 of the first
    listing = CountingListing()
    async with HttpClient() as client:
        reader = source(client, site.url)
        await reader.list_ids(listing, page_concurrency=2)
        records = await collect(lambda send: reader.produce(send, page_concurrency=2))
        # Read on their own (no uids seen before), the pages do overlap.
        pages = [await reader.list_page(offset, 50) for offset in (0, 50)]
    assert len({d["uid"] for d in pages[0][1]} & {d["uid"] for d in pages[1][1]}) == 7
    # The listing gets the repeats, and keeps each uid once; the full records come once.
    assert listing.added == DATASETS + 7 and len(listing) == DATASETS
    assert listing.announced == DATASETS
    uids = [r["dataset"]["uid"] for r in records]
    assert len(uids) == len(set(uids)) == DATASETS


async def test_a_failed_page_fails_the_listing(site: Site) -> None:
    site.failing.add(50)  # the second page: a listing is complete or an error, never partial
    async with HttpClient(retry=RetryPolicy(attempts=2, backoff_base=0.01)) as client:
        with pytest.raises(Exception) as caught:
            await source(client, site.url).list_ids(MemoryListing(), page_concurrency=2)
    assert isinstance(first_error(caught.value), ServerError)


async def test_since_reads_details_of_what_changed_only(site: Site) -> None:
    store = site.store
    dates = sorted(stated(latest(store, uid)) for uid in store.datasets)
    cut = dates[len(dates) * 3 // 4] - timedelta(microseconds=1)
    expected = {uid for uid in store.datasets if stated(latest(store, uid)) >= cut}
    assert 0 < len(expected) < DATASETS
    totals: list[int] = []
    async with HttpClient() as client:
        reader = source(client, site.url)
        changed = await collect(lambda send: reader.produce(
            send, page_concurrency=2, since=cut, on_total=totals.append))
    assert {r["dataset"]["uid"] for r in changed} == expected
    assert totals == [len(expected)]
    assert store.stats["GET /datasets/"] == 3  # every page: there is no date filter
    assert store.stats[RESOURCES] == store.stats[ATTACHMENTS] == len(expected)


async def test_produce_ids_reads_the_records_that_still_exist(site: Site) -> None:
    store = site.store
    wanted = sorted(store.datasets)[:7]
    store.remove(store.datasets[wanted[0]])
    async with HttpClient() as client:
        reader = source(client, site.url)
        records = await collect(lambda send: reader.produce_ids(send, [*wanted, "da_nope00"]))
        pivots = [reader.to_pivot(r) for r in records]
    assert sorted(ds.source_id for ds in pivots) == wanted[1:]
    assert store.stats[RESOURCES] == 6


async def test_every_change_to_a_dataset_moves_its_updated_at(site: Site) -> None:
    """The listing relies on it: metadata, resources, files and attachments."""
    store, hand = site.store, ByHand(site.url, KEY)
    uid = next(u for u, d in store.datasets.items()
               if any(r["datasource"]["type"] == "uploaded_file" for r in d.resources.values()))

    async def moves(change: Any) -> None:
        before = store.datasets[uid].updated_at
        await anyio.sleep(0.002)  # timestamps have millisecond precision
        await change()
        assert stated(store.datasets[uid].updated_at) > stated(before)

    await moves(lambda: hand.set_field(uid, "default", "title", "A new title"))
    await moves(lambda: hand.call("PUT", f"/datasets/{uid}/metadata/default/title/",
                                  json={"value": "Another title"}))
    await moves(lambda: hand.replace_file(uid, b"a,b\n1,2\n"))
    attachment: dict[str, Any] = {}

    async def attach() -> None:
        attachment.update(await hand.upload(f"/datasets/{uid}/attachments/", "n.pdf", b"%PDF"))

    await moves(attach)
    await moves(lambda: hand.call("DELETE", f"/datasets/{uid}/attachments/{attachment['uid']}/"))
    resource = next(iter(store.datasets[uid].resources))
    await moves(lambda: hand.call("DELETE", f"/datasets/{uid}/resources/{resource}/"))


async def test_page_url_is_the_dataset_page_a_visitor_opens(site: Site) -> None:
    store = site.store
    uid = next(u for u, d in store.datasets.items() if d.is_published and not d.is_restricted)
    async with HttpClient() as client:
        reader = source(client, site.url)
        [record] = await collect(lambda send: reader.produce_ids(send, [uid]))
        url = reader.page_url(reader.to_pivot(record))
    assert url == f"{site.url}/explore/dataset/{store.datasets[uid].dataset_id}/"
    async with aiohttp.ClientSession() as session, session.get(url) as page:  # no key
        assert page.status == 200 and page.content_type == "text/html"
