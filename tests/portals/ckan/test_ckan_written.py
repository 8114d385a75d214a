"""What a CKAN (or PortalJS Cloud) upsert says it did, and where: the dataset's page and the
download URL of each hosted file, which must resolve as a visitor follows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mirror_sites import replace_file

from bulkport.http import HttpClient
from bulkport.model import Dataset
from bulkport.portals.base import Written
from bulkport.portals.ckan.settings import (
    CkanSourceSettings,
    CkanTargetSettings,
    PortalJsTargetSettings,
)
from bulkport.portals.ckan.source import CkanSource
from bulkport.portals.ckan.target import CkanTarget
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.testing import CkanStore, create_ckan_app, create_portaljs_app, seed_ckan, serve
from bulkport.transfer import FileTransfer

SOURCE_KEY, TARGET_KEY = "written-source-key", "written-target-key"


@dataclass
class Sites:
    source: CkanStore
    source_url: str
    target: CkanStore
    target_url: str  # the API's root (with /@portal on PortalJS)
    origin: str  # the target's scheme://host:port


@pytest.fixture(params=["ckan", "portaljs"])
async def sites(request: pytest.FixtureRequest) -> AsyncIterator[Sites]:
    source, target = CkanStore(seed=21), CkanStore(seed=22)
    seed_ckan(source, datasets=6, resources=3, file_size=700, seed=21)
    for pkg in list(source.packages.values()):  # public: a visitor opens every URL
        source.save_package({**pkg, "private": False, "state": "active"})
    if request.param == "ckan":
        target_app = create_ckan_app(target, api_keys={TARGET_KEY: "admin"})
    else:
        target_app = create_portaljs_app(target, portal="acme", api_keys={TARGET_KEY: "admin"})
    async with serve(create_ckan_app(source, api_keys={SOURCE_KEY: "admin"})) as source_url, \
            serve(target_app) as origin:
        root = origin if request.param == "ckan" else f"{origin}/@acme"
        yield Sites(source, source_url, target, root, origin)
    source.close()
    target.close()


def _target_settings(sites: Sites, **extra: Any) -> CkanTargetSettings:
    if "/@" in sites.target_url:
        return PortalJsTargetSettings(type="portaljs", url=sites.target_url,
                                      api_key=TARGET_KEY, **extra)
    return CkanTargetSettings(type="ckan", url=sites.target_url, api_key=TARGET_KEY, **extra)


async def _datasets(client: HttpClient, source: CkanSource, store: CkanStore) -> list[Dataset]:
    found = [source.to_pivot(p) for p in [await source.api.call("package_show", {"id": i})
                                          for i in sorted(store.packages)]]
    assert any(r.hosted for ds in found for r in ds.resources)
    return found


async def _status(url: str) -> tuple[int, bytes]:
    """What an anonymous visitor gets at ``url``, redirects followed."""
    async with aiohttp.ClientSession() as session, session.get(url) as reply:
        return reply.status, await reply.read()


async def _write_all(sites: Sites, tmp_path: Path, settings: CkanTargetSettings,
                     state: str = "state") -> list[tuple[Dataset, Written]]:
    async with HttpClient() as client:
        source = CkanSource(CkanSourceSettings(type="ckan", url=sites.source_url,
                                               api_key=SOURCE_KEY), client, Options())
        with StateStore(tmp_path / state) as store:
            target = CkanTarget(settings, client, Options(), store.journal,
                                Report("written", "migrate"))
            transfer = FileTransfer(client, source, 2)
            return [(ds, await target.upsert(ds, transfer))
                    for ds in await _datasets(client, source, sites.source)]


async def test_upsert_says_what_it_wrote_and_every_url_resolves(sites: Sites,
                                                                tmp_path: Path) -> None:
    written = await _write_all(sites, tmp_path, _target_settings(sites))
    for ds, done in written:
        assert done.outcome == "created"
        copy = sites.target.get_package(done.key)
        assert copy is not None and copy["name"] == done.key
        assert done.url == f"{sites.target_url}/dataset/{done.key}"
        status, page = await _status(done.url)
        assert status == 200 and escape(copy["title"]).encode() in page
        hosted = [r for r in ds.resources if r.hosted]
        assert [f.source_id for f in done.files] == [r.source_id for r in hosted]
        for file in done.files:
            assert file.action == "created"
            mine = next(r for r in copy["resources"] if r["bulkport_source_id"] == file.source_id)
            assert file.url == (f"{sites.target_url}/dataset/{copy['id']}/resource/{mine['id']}"
                                f"/download/{mine['url']}")
            status, body = await _status(file.url)
            assert status == 200
            assert body == sites.target.blobs.get(mine["id"]).read() != b""

    # Again: nothing to write, the same places; then one file changed at the source.
    again = await _write_all(sites, tmp_path, _target_settings(sites))
    assert [(d.outcome, d.key, d.url) for _, d in again] == [
        ("unchanged", d.key, d.url) for _, d in written]
    assert [[(f.action, f.url) for f in d.files] for _, d in again] == [
        [("unchanged", f.url) for f in d.files] for _, d in written]
    changed_pkg = next(ds.source_id for ds, d in written if d.files)
    changed = replace_file(sites.source, changed_pkg)
    after = dict((ds.source_id, d) for ds, d in await _write_all(sites, tmp_path,
                                                                 _target_settings(sites)))
    done = after[changed_pkg]
    assert done.outcome == "updated"
    assert {f.source_id: f.action for f in done.files} == {
        f.source_id: "updated" if f.source_id == changed else "unchanged" for f in done.files}
    for file in done.files:
        assert (await _status(file.url))[0] == 200


async def test_pages_of_unknown_private_and_by_id(sites: Sites, tmp_path: Path) -> None:
    """As CKAN's dataset.read: unknown or private (to a visitor) is a 404, an id redirects
    to the name."""
    (_, done), *_ = await _write_all(sites, tmp_path, _target_settings(sites))
    copy = sites.target.get_package(done.key)
    assert copy is not None
    assert (await _status(f"{sites.target_url}/dataset/no-such-dataset"))[0] == 404
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sites.target_url}/dataset/{copy['id']}",
                               allow_redirects=False) as reply:
            assert reply.status == 302
            assert reply.headers["Location"] == done.url
    sites.target.save_package({**copy, "private": True})
    assert (await _status(done.url))[0] == 404
    async with aiohttp.ClientSession(headers={"Authorization": TARGET_KEY}) as session:
        async with session.get(done.url) as reply:
            assert reply.status == 200  # its editors still see it


async def test_a_dataset_of_links_has_no_files(sites: Sites, tmp_path: Path) -> None:
    settings = _target_settings(sites)
    async with HttpClient() as client:
        with StateStore(None) as store:
            target = CkanTarget(settings, client, Options(), store.journal,
                                Report("written", "migrate"))
            source = CkanSource(CkanSourceSettings(type="ckan", url=sites.source_url,
                                                   api_key=SOURCE_KEY), client, Options())
            ds = (await _datasets(client, source, sites.source))[0]
            links = replace(ds, resources=[r for r in ds.resources if not r.hosted])
            done = await target.upsert(links, FileTransfer(client, source, 1))
    assert done.outcome == "created" and done.files == ()
    assert (await _status(done.url))[0] == 200


async def test_a_portaljs_site_url_gives_the_frontend_page(sites: Sites,
                                                           tmp_path: Path) -> None:
    """PortalJS Cloud's frontend shows a dataset at /@{organization}/{name}; a CKAN site
    behind another address keeps CKAN's own scheme under it."""
    site = "https://data.example.org/"
    written = await _write_all(sites, tmp_path, _target_settings(sites, site_url=site))
    for _, done in written:
        copy = sites.target.get_package(done.key)
        assert copy is not None
        if "/@" in sites.target_url:
            org = sites.target.org_name(copy["owner_org"])
            assert done.url == f"https://data.example.org/@{org}/{done.key}"
            # The simulator serves the frontend's pages on its own origin.
            local = done.url.replace("https://data.example.org", sites.origin)
            assert (await _status(local))[0] == 200
            assert (await _status(local.replace(f"/@{org}/", "/@not-its-org/")))[0] == 404
        else:
            assert done.url == f"https://data.example.org/dataset/{done.key}"


async def test_the_source_names_its_dataset_pages(sites: Sites) -> None:
    async with HttpClient() as client:
        settings = CkanSourceSettings(type="ckan", url=sites.source_url, api_key=SOURCE_KEY)
        source = CkanSource(settings, client, Options())
        for ds in await _datasets(client, source, sites.source):
            url = source.page_url(ds)
            assert url == f"{sites.source_url}/dataset/{ds.name}"
            assert (await _status(url))[0] == 200
        frontend = CkanSource(replace(settings, type="portaljs", site_url="https://p.example"),
                              client, Options())
        ds = (await _datasets(client, source, sites.source))[0]
        assert frontend.page_url(ds) == f"https://p.example/@{ds.organization}/{ds.name}"
        assert frontend.page_url(replace(ds, organization=None)) == (
            f"{sites.source_url}/dataset/{ds.name}")
