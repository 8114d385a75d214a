"""Where a visitor of an Opendatasoft source found each dataset and file it read (the old
URLs of a redirect map): every URL is followed on the simulator, as a visitor or as a
user who may edit the dataset."""

from __future__ import annotations

import csv
import gc
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from ods_edits import ByHand

from bulkport.http import HttpClient, RetryPolicy
from bulkport.model import Dataset, Resource
from bulkport.portals.ods.settings import OdsSourceSettings
from bulkport.portals.ods.source import OdsSource
from bulkport.settings import Options
from bulkport.testing import OdsStore, create_ods_app, serve

KEY = "source-urls-ods-key-77a1"
WITH_KEY = {"Authorization": f"apikey {KEY}"}
PROCESSING = 0.01
EXPLORE_ATTACHMENTS = "GET /api/explore/v2.1/catalog/datasets/{dataset_id}/attachments"
LEVELS = b"station;level (cm)\nPont-Neuf;212\nBercy;198\n"
ATTACHED = {"notes.txt": [b"first notes", b"second notes"], "Methode.PDF": [b"%PDF method"]}


@dataclass
class Domain:
    store: OdsStore
    url: str
    hand: ByHand
    refuse_explore: bool = False  # the Explore API's list of attachments answers 404

    async def dataset(self, dataset_id: str, *, publish: bool,
                      restricted: bool = False) -> str:
        """A dataset with one ``;``-separated CSV resource and the attachments of
        :data:`ATTACHED` (two of them named alike); its uid."""
        made = await self.hand.call("POST", "/datasets/", json={
            "dataset_id": dataset_id, "is_restricted": restricted, "metadata": {"default": {
                "title": {"value": f"Title of {dataset_id}"}, "language": {"value": "en"},
                "modified": {"value": "2024-06-01T00:00:00Z"}}}})
        uid = str(made["uid"])
        file = await self.hand.upload(f"/datasets/{uid}/resources/files/", "levels.csv",
                                      LEVELS)
        await self.hand.call("POST", f"/datasets/{uid}/resources/", json={
            "type": "csvfile", "title": "Levels", "params": {"separator": ";"},
            "datasource": {"type": "uploaded_file", "file": {"uid": file["uid"]}}})
        for name, bodies in ATTACHED.items():
            for body in bodies:
                await self.hand.upload(f"/datasets/{uid}/attachments/", name, body)
        if publish:
            await self.hand.call("POST", f"/datasets/{uid}/publish/")
            await anyio.sleep(PROCESSING * 5)
            assert self.store.datasets[uid].is_published
        return uid


@pytest.fixture
async def domain() -> AsyncIterator[Domain]:
    store = OdsStore(seed=14)
    made: list[Domain] = []

    @web.middleware
    async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
        if made[0].refuse_explore and request.path.endswith("/attachments") and (
                request.path.startswith("/api/explore/")):
            return web.json_response({"error_code": "NoSuchDatasetException",
                                      "message": "gone"}, status=404)
        return await handler(request)

    app = create_ods_app(store, api_keys={KEY}, processing_time=PROCESSING)
    app.middlewares.insert(0, refuse)
    async with serve(app) as url:
        made.append(Domain(store, url, ByHand(url, KEY)))
        yield made[0]
    store.close()


def reader(client: HttpClient, url: str, **kwargs: Any) -> OdsSource:
    return OdsSource(OdsSourceSettings(type="ods", url=url, api_key=KEY), client, Options(),
                     **kwargs)


async def read(source: OdsSource, uid: str) -> Dataset:
    send, receive = anyio.create_memory_object_stream[Any](10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(source.produce_ids, send, [uid])
        [raw] = [item async for item in receive]
    return source.to_pivot(raw)


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``url`` as a visitor does (no key unless ``headers`` hold one)."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
        return reply.status, await reply.read()


def hosted(ds: Dataset) -> tuple[Resource, list[Resource]]:
    """The dataset's CSV resource and its attachments, in their order."""
    [table] = [r for r in ds.resources if r.format == "CSV"]
    return table, [r for r in ds.resources if r is not table]


async def test_a_published_dataset_is_where_a_visitor_finds_it(domain: Domain) -> None:
    uid = await domain.dataset("river-levels", publish=True)
    domain.store.stats.clear()
    async with HttpClient() as client:
        source = reader(client, domain.url)
        ds = await read(source, uid)
        page = source.page_url(ds)
        table, attachments = hosted(ds)
        export = source.file_url(ds, table)
        links = [source.file_url(ds, a) for a in attachments]
    assert domain.store.stats[EXPLORE_ATTACHMENTS] == 1  # one more request for the dataset
    assert page == f"{domain.url}/explore/dataset/river-levels/"
    status, body = await get(page)
    assert status == 200 and b"Title of river-levels" in body
    # The export of the records in the file's format, shaped like the file (its separator).
    assert export == (f"{domain.url}/api/explore/v2.1/catalog/datasets/river-levels/exports/"
                      "csv?delimiter=%3B&with_bom=false&use_labels=true")
    status, body = await get(export)
    assert status == 200
    assert list(csv.reader(io.StringIO(body.decode()), delimiter=";")) == list(
        csv.reader(io.StringIO(LEVELS.decode()), delimiter=";"))
    # Each attachment under its own Explore id, also the second one of a name.
    base = f"{domain.url}/api/datasets/1.0/river-levels/attachments/"
    assert links == [base + "notes_txt/", base + "notes_txt_2/", base + "methode_pdf/"]
    for link, wanted in zip(links, [*ATTACHED["notes.txt"], *ATTACHED["Methode.PDF"]],
                            strict=True):
        assert await get(link) == (200, wanted)


async def test_an_unpublished_dataset_is_in_the_back_office(domain: Domain) -> None:
    """Nothing of it is public: its page is the back office's, which a visitor is sent to
    log in for; its files are where the Automation API serves them, to a key."""
    uid = await domain.dataset("draft-levels", publish=False)
    domain.store.stats.clear()
    async with HttpClient() as client:
        source = reader(client, domain.url)
        ds = await read(source, uid)
        page = source.page_url(ds)
        urls = {r.url: source.file_url(ds, r) for r in ds.resources}
    assert domain.store.stats[EXPLORE_ATTACHMENTS] == 0  # no public ids to look for
    assert page == f"{domain.url}/backoffice/catalog/datasets/draft-levels/"
    async with aiohttp.ClientSession() as session, session.get(
            page, allow_redirects=False) as reply:
        assert reply.status == 302 and reply.headers["Location"].startswith("/login/?next=")
    status, body = await get(page, WITH_KEY)
    assert status == 200 and b"Title of draft-levels" in body
    assert all(new == old for old, new in urls.items())
    bodies = sorted([LEVELS, *ATTACHED["notes.txt"], *ATTACHED["Methode.PDF"]])
    assert sorted([(await get(url, WITH_KEY))[1] for url in urls]) == bodies
    assert {(await get(url))[0] for url in urls} == {401}


async def test_a_restricted_dataset_is_found_by_a_user_who_may_see_it(domain: Domain) -> None:
    uid = await domain.dataset("staff-levels", publish=True, restricted=True)
    async with HttpClient() as client:
        source = reader(client, domain.url)
        ds = await read(source, uid)
        table, attachments = hosted(ds)
        urls = [source.page_url(ds), source.file_url(ds, table),
                *(source.file_url(ds, a) for a in attachments)]
    assert "/api/datasets/1.0/staff-levels/attachments/notes_txt/" in urls[2]
    for url in urls:
        assert (await get(url))[0] == 404, url  # hidden from visitors
        assert (await get(url, WITH_KEY))[0] == 200, url


async def test_without_the_explore_ids_attachments_keep_their_automation_urls(
        domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    uid = await domain.dataset("quiet-levels", publish=True)
    domain.refuse_explore = True
    async with HttpClient(retry=RetryPolicy(attempts=1)) as client:
        source = reader(client, domain.url)
        with caplog.at_level(logging.WARNING, logger="bulkport"):
            ds = await read(source, uid)
        table, attachments = hosted(ds)
        assert "/exports/csv?" in source.file_url(ds, table)
        assert [source.file_url(ds, a) for a in attachments] == [a.url for a in attachments]
    [line] = [r.getMessage() for r in caplog.records]
    assert "did not list the attachments of dataset quiet-levels (NotFound)" in line


async def test_a_reader_that_needs_no_visitor_urls_asks_for_no_explore_ids(
        domain: Domain) -> None:
    uid = await domain.dataset("plain-levels", publish=True)
    domain.store.stats.clear()
    async with HttpClient() as client:
        source = reader(client, domain.url, visitor_urls=False)
        ds = await read(source, uid)
        _, attachments = hosted(ds)
        assert [source.file_url(ds, a) for a in attachments] == [a.url for a in attachments]
    assert domain.store.stats[EXPLORE_ATTACHMENTS] == 0


async def test_urls_are_held_as_long_as_the_pivot_only(domain: Domain) -> None:
    uid = await domain.dataset("brief-levels", publish=True)
    async with HttpClient() as client:
        source = reader(client, domain.url)
        ds = await read(source, uid)
        assert len(source.urls) == 1
        del ds
        gc.collect()
        assert len(source.urls) == 0
        # A dataset this source did not map: its portal page, and files where they are read.
        other = Dataset(source_id="x", name="elsewhere", title="Elsewhere", resources=[
            Resource(source_id="r", name="r", url="https://files.example/r.csv", hosted=True)])
        assert source.page_url(other) == f"{domain.url}/explore/dataset/elsewhere/"
        assert source.file_url(other, other.resources[0]) == "https://files.example/r.csv"
