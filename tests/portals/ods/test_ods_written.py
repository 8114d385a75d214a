"""What an upsert into Opendatasoft says it did, and whether a visitor finds it there: the
dataset's page and every file URL it reports are followed, without a key, on the simulator."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from bulkport.http import HttpClient, StreamResponse
from bulkport.model import Dataset, Resource
from bulkport.portals.base import Written
from bulkport.portals.ods.public import PublicUrls
from bulkport.portals.ods.settings import OdsTargetSettings
from bulkport.portals.ods.target import OdsTarget
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.testing import OdsStore, create_ods_app, serve
from bulkport.transfer import FileTransfer

KEY = "written-ods-key-5c1d"
FILES = {"trees.csv": b"species,height (m)\nOak,12\nBirch,8\n",
         "notice.pdf": b"%PDF-1.4 a notice about trees"}


@dataclass
class Site:
    ods: OdsStore
    url: str
    files: str  # where the source's files are served


class Files:
    """The source side of a transfer: plain downloads from the files server."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        return self.client.stream(resource.url)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async def serve_file(request: web.Request) -> web.Response:
        return web.Response(body=FILES[request.match_info["name"]])

    files = web.Application()
    files.router.add_get("/files/{name}", serve_file)
    ods = OdsStore(seed=4)
    async with serve(files) as files_url, serve(create_ods_app(
            ods, api_keys={KEY}, processing_time=0.01)) as url:
        yield Site(ods, url, files_url)
    ods.close()


def dataset(site: Site, source_id: str, name: str, title: str | None = None) -> Dataset:
    modified = "2024-03-01T10:00:00Z"
    return Dataset(source_id=source_id, name=name, title=title or f"Trees {source_id}",
                   modified=modified, resources=[
                       Resource(source_id=f"{source_id}-csv", name="Trees", format="CSV",
                                url=f"{site.files}/files/trees.csv", hosted=True,
                                modified=modified),
                       Resource(source_id=f"{source_id}-pdf", name="Notice", format="PDF",
                                url=f"{site.files}/files/notice.pdf", hosted=True,
                                modified=modified)])


def target(site: Site, client: HttpClient, store: StateStore, *,
           publish: bool = True) -> OdsTarget:
    settings = OdsTargetSettings(type="ods", url=site.url, api_key=KEY)
    return OdsTarget(settings, client, Options(publish=publish, status_poll=0.01),
                     store.journal, Report("test", "migrate"))


async def upsert(site: Site, store: StateStore, ds: Dataset, *,
                 publish: bool = True) -> Written:
    async with HttpClient() as client:
        writer = target(site, client, store, publish=publish)
        await writer.check()
        return await writer.upsert(ds, FileTransfer(client, Files(client), 2))


async def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``url`` as a visitor does: no key unless ``headers`` carry one."""
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as reply:
        return reply.status, await reply.read()


def rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


async def test_written_names_the_page_and_files_a_visitor_downloads(site: Site,
                                                                    tmp_path: Path) -> None:
    ds = dataset(site, "src-1", "city-trees", "City trees")
    with StateStore(tmp_path) as store:
        written = await upsert(site, store, ds)
        assert (written.outcome, written.key) == ("created", "city-trees")
        assert written.url == f"{site.url}/explore/dataset/city-trees/"
        by_source = {f.source_id: f for f in written.files}
        assert set(by_source) == {"src-1-csv", "src-1-pdf"}
        assert {f.action for f in written.files} == {"created"}
        export, attachment = by_source["src-1-csv"].url, by_source["src-1-pdf"].url
        # The records as a CSV shaped like the file: its separator and headers, no BOM.
        assert export == (f"{site.url}/api/explore/v2.1/catalog/datasets/city-trees/exports/"
                          "csv?delimiter=%2C&with_bom=false&use_labels=true")
        # The Information tab's link, under the explore API's id of the attachment.
        assert attachment == f"{site.url}/api/datasets/1.0/city-trees/attachments/notice_pdf/"

        status, page = await fetch(written.url)
        assert status == 200 and b"City trees" in page
        status, body = await fetch(attachment)
        assert (status, body) == (200, FILES["notice.pdf"])
        status, body = await fetch(export)  # the records of the uploaded file
        assert status == 200 and not body.startswith("\ufeff".encode())
        assert rows(body) == rows(FILES["trees.csv"])

        again = await upsert(site, store, ds)
    assert (again.outcome, again.key, again.url) == ("unchanged", written.key, written.url)
    assert sorted((f.source_id, f.action, f.url) for f in again.files) == sorted(
        (f.source_id, "unchanged", f.url) for f in written.files)


async def test_a_changed_file_is_updated_where_it_is(site: Site, tmp_path: Path) -> None:
    ds = dataset(site, "src-2", "park-trees")
    with StateStore(tmp_path) as store:
        first = await upsert(site, store, ds)
        newer = replace(ds.resources[1], modified="2999-01-01T00:00:00Z")
        written = await upsert(site, store, replace(ds, resources=[ds.resources[0], newer]))
    assert written.outcome == "updated"
    actions = {f.source_id: f.action for f in written.files}
    assert actions == {"src-2-csv": "unchanged", "src-2-pdf": "updated"}
    assert {f.url for f in written.files} == {f.url for f in first.files}
    assert (await fetch(written.files[1].url)) == (200, FILES["notice.pdf"])


async def test_unpublished_files_are_where_a_key_reads_them(site: Site, tmp_path: Path) -> None:
    """Nothing is public before publication: the page is the back office's, which a visitor
    is sent to log in for, and the bytes are served by the Automation API only, to a key."""
    with StateStore(tmp_path) as store:
        written = await upsert(site, store, dataset(site, "src-3", "draft-trees"),
                               publish=False)
    assert not site.ods.by_dataset_id("draft-trees").is_published  # type: ignore[union-attr]
    assert written.url == f"{site.url}/backoffice/catalog/datasets/draft-trees/"
    async with aiohttp.ClientSession() as session, session.get(
            written.url, allow_redirects=False) as reply:
        assert reply.status == 302 and reply.headers["Location"].startswith("/login/?next=")
    status, page = await fetch(written.url, {"Authorization": f"apikey {KEY}"})
    assert status == 200 and b"Trees src-3" in page
    for file in written.files:
        assert urlsplit(file.url).path.startswith("/api/automation/v1.0/datasets/da_")
        assert (await fetch(file.url))[0] == 401
        wanted = FILES["trees.csv" if file.source_id.endswith("csv") else "notice.pdf"]
        assert (await fetch(file.url, {"Authorization": f"apikey {KEY}"})) == (200, wanted)


async def test_the_attachment_id_is_read_as_the_explore_api_documents_it() -> None:
    """The document's own example lists no ``metas.id``: the id is the ``href``'s end."""
    example = {"_links": [], "attachments": [{
        "href": "https://documentation-resources.opendatasoft.com/api/v2/catalog/datasets/"
                "geonames-all-cities-with-a-population-1000/attachments/cities1000_zip",
        "metas": {"mime-type": "application/zip", "title": "cities1000.zip"}}]}

    async def listed(request: web.Request) -> web.Response:
        return web.json_response(example)

    app = web.Application()
    app.router.add_get("/api/explore/v2.1/catalog/datasets/{dataset_id}/attachments", listed)
    async with serve(app) as url, HttpClient() as client:
        public = PublicUrls(url, client)
        lookup = await public.attachment_ids("geonames-all-cities-with-a-population-1000")
    assert lookup("cities1000.zip", 0) == "cities1000_zip"
    assert lookup("cities1000.zip", 1) is None and lookup("other.zip", 0) is None
    assert public.attachment("geonames", "cities1000_zip") == (
        f"{url}/api/datasets/1.0/geonames/attachments/cities1000_zip/")
