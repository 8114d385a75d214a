"""The URLs an upsert reports, followed on a real CKAN 2.12 and on both simulators.

``CkanTarget.upsert`` says where the dataset's page is and where each hosted file is served
now; a redirect map is made of them. Here the same dataset is written into each server, and
what a visitor gets at those URLs (and at the page by id, at an unknown name, at a private
dataset's page) must be the same everywhere: the simulators serve what CKAN serves.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from real_ckan.tier import CkanInstance

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

pytestmark = pytest.mark.real_ckan

SOURCE_KEY, SIM_KEY = "pages-source-key", "pages-sim-key"
DOWNLOAD = re.compile(r"/dataset/(?P<pkg>[0-9a-f-]{36})/resource/(?P<res>[0-9a-f-]{36})"
                      r"/download/(?P<name>[^/]+)$")


@pytest.fixture
async def source() -> AsyncIterator[tuple[CkanStore, str]]:
    store = CkanStore(seed=31)
    seed_ckan(store, datasets=1, resources=3, file_size=900, seed=31)
    for pkg in list(store.packages.values()):
        store.save_package({**pkg, "private": False, "state": "active"})
    async with serve(create_ckan_app(store, api_keys={SOURCE_KEY: "admin"})) as url:
        yield store, url
    store.close()


async def _dataset(client: HttpClient, url: str, store: CkanStore) -> tuple[CkanSource, Dataset]:
    reader = CkanSource(CkanSourceSettings(type="ckan", url=url, api_key=SOURCE_KEY), client,
                        Options())
    (pkg_id,) = store.packages
    ds = reader.to_pivot(await reader.api.call("package_show", {"id": pkg_id}))
    assert any(r.hosted for r in ds.resources) and any(not r.hosted for r in ds.resources)
    return reader, replace(ds, private=False)


async def _upsert(settings: CkanTargetSettings, source: tuple[CkanStore, str],
                  tmp_path: Path) -> tuple[Written, Dataset]:
    async with HttpClient() as client:
        reader, ds = await _dataset(client, source[1], source[0])
        with StateStore(tmp_path) as store:
            target = CkanTarget(settings, client, Options(), store.journal,
                                Report("pages", "migrate"))
            return await target.upsert(ds, FileTransfer(client, reader, 2)), ds


async def _visit(session: aiohttp.ClientSession, url: str, *, token: str | None = None,
                 follow: bool = True) -> tuple[int, bytes, str | None]:
    headers = {"Authorization": token} if token else {}
    async with session.get(url, headers=headers, allow_redirects=follow) as reply:
        return reply.status, await reply.read(), reply.headers.get("Location")


async def _action(session: aiohttp.ClientSession, root: str, token: str, name: str,
                  data: dict[str, Any]) -> Any:
    async with session.post(f"{root}/api/3/action/{name}", json=data,
                            headers={"Authorization": token}) as reply:
        body = await reply.json()
        assert body.get("success"), body
        return body["result"]


async def _observe(root: str, token: str, written: Written, source: CkanStore,
                   ds: Dataset) -> dict[str, Any]:
    """What a visitor (and the key's holder) gets at the URLs ``written`` reports."""
    seen: dict[str, Any] = {"outcome": written.outcome}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        seen["page url"] = written.url == f"{root}/dataset/{written.key}"
        status, page, _ = await _visit(session, written.url)
        seen["page"] = (status, b"<html" in page.lower())
        pkg = await _action(session, root, token, "package_show", {"id": written.key})
        status, _, location = await _visit(session, f"{root}/dataset/{pkg['id']}", follow=False)
        seen["page by id"] = (status, location == written.url)
        seen["unknown page"] = (await _visit(session, f"{root}/dataset/no-such-dataset-x"))[0]
        hosted = {r.source_id: r for r in ds.resources if r.hosted}
        seen["files"] = sorted(f.source_id for f in written.files) == sorted(hosted)
        for file in written.files:
            mine = next(r for r in pkg["resources"] if r["bulkport_source_id"] == file.source_id)
            found = DOWNLOAD.search(file.url)
            status, body, _ = await _visit(session, file.url)
            blob = source.blobs.get(file.source_id)
            seen[f"file {hosted[file.source_id].name}"] = (
                file.action, file.url.startswith(f"{root}/dataset/"),
                found is not None and (found["pkg"], found["res"]) == (pkg["id"], mine["id"]),
                file.url == mine["url"],
                status == 200 and blob is not None and body == blob.read())
        await _action(session, root, token, "package_patch", {"id": pkg["id"], "private": True})
        seen["private page"] = ((await _visit(session, written.url))[0],
                                (await _visit(session, written.url, token=token))[0])
        file = written.files[0]
        seen["private file"] = ((await _visit(session, file.url))[0],
                                (await _visit(session, file.url, token=token))[0])
    return seen


async def test_the_urls_an_upsert_reports_resolve_alike(
        real_ckan_target: CkanInstance, source: tuple[CkanStore, str], tmp_path: Path) -> None:
    real = real_ckan_target
    settings = CkanTargetSettings(type="ckan", url=real.url, api_key=real.token,
                                  organization="pages")
    written, ds = await _upsert(settings, source, tmp_path / "real")
    expected = await _observe(real.url, real.token, written, source[0], ds)
    assert expected["page"] == (200, True) and expected["unknown page"] == 404
    assert expected["page by id"] == (302, True) and expected["private page"] == (404, 200)
    assert all(v == ("created", True, True, True, True) for k, v in expected.items()
               if k.startswith("file "))

    store = CkanStore()
    async with serve(create_ckan_app(store, api_keys={SIM_KEY: "admin"})) as url:
        settings = CkanTargetSettings(type="ckan", url=url, api_key=SIM_KEY, organization="pages")
        written, ds = await _upsert(settings, source, tmp_path / "ckan")
        assert await _observe(url, SIM_KEY, written, source[0], ds) == expected
    store.close()

    store = CkanStore()
    app = create_portaljs_app(store, portal="pages", api_keys={SIM_KEY: "admin"})
    async with serve(app) as origin:
        root = f"{origin}/@pages"
        settings = PortalJsTargetSettings(type="portaljs", url=root, api_key=SIM_KEY,
                                          organization="pages")
        written, ds = await _upsert(settings, source, tmp_path / "portaljs")
        assert await _observe(root, SIM_KEY, written, source[0], ds) == expected
    store.close()
