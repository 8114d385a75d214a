"""The PortalJS Cloud simulator: the CKAN API under /@portal and presigned S3 uploads."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.files import SyntheticFile
from bulkport.testing.core.s3 import ObjectStore
from bulkport.testing.core.server import serve
from bulkport.testing.portaljs.app import create_portaljs_app

KEY = "pjs-key"


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0  # 2026-01-01

    def __call__(self) -> float:
        return self.now


@dataclass
class Portal:
    url: str  # the server's base URL, http://127.0.0.1:PORT
    session: aiohttp.ClientSession  # never holds the key: each API call adds it
    store: CkanStore
    app: web.Application
    clock: Clock

    @property
    def objects(self) -> ObjectStore:
        return self.app["objects"]  # type: ignore[no-any-return]

    async def call(self, action: str, post: Any = None, *, key: str | None = KEY) -> tuple[
            int, Any]:
        headers = {"Authorization": key} if key else {}
        url = f"{self.url}/@demo/api/3/action/{action}"
        request = (self.session.get(url, headers=headers) if post is None else
                   self.session.post(url, json=post, headers=headers))
        async with request as response:
            return response.status, await response.json()

    async def new_resource(self, name: str) -> str:
        status, body = await self.call("package_create", {"name": name, "owner_org": "demo"})
        assert status == 200, body
        status, body = await self.call("resource_create", {
            "package_id": name, "name": "latest-data", "format": "CSV"})
        assert status == 200, body
        return str(body["result"]["id"])

    async def upload_url(self, res_id: str, filename: str = "data.csv") -> str:
        status, body = await self.call("resource_upload", {"id": res_id, "filename": filename})
        assert status == 200, body
        return str(body["result"]["presigned_url"])

    async def put(self, url: str, data: Any, **headers: str) -> tuple[int, str]:
        async with self.session.put(url, data=data, headers=headers) as response:
            return response.status, await response.text()


async def _portal(**options: Any) -> AsyncIterator[Portal]:
    store = CkanStore(seed=5)
    seed_ckan(store, datasets=4, resources=1, file_size=700, seed=5)
    clock = Clock()
    app = create_portaljs_app(store, api_keys={KEY: "admin"}, clock=clock, **options)
    async with serve(app) as url, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Portal(url, session, store, app, clock)
    store.close()


@pytest.fixture
async def portal() -> AsyncIterator[Portal]:
    async for value in _portal(url_ttl=600, max_object_size=100_000):
        yield value


async def test_create_upload_finalize_download(portal: Portal) -> None:
    res_id = await portal.new_resource("automated-dataset")
    url = await portal.upload_url(res_id, "Données 2026.csv")
    parts = urlsplit(url)
    assert parts.hostname == "localhost" and parts.port == urlsplit(portal.url).port
    assert {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
            "X-Amz-Signature"} <= set(parse_qs(parts.query))
    assert parse_qs(parts.query)["X-Amz-Expires"] == ["600"]
    file = SyntheticFile(80_000, seed=9)
    status, _ = await portal.put(url, file.aiter_chunks(8192),
                                 **{"Content-Length": str(file.size)})
    assert status == 200
    assert portal.objects.etags  # an S3 ETag: the body's MD5, quoted
    status, body = await portal.call("resource_upload_finalize", {"id": res_id})
    assert status == 200, body
    res = body["result"]
    assert (res["url_type"], res["size"], res["hash"], res["mimetype"]) == (
        "upload", 80_000, file.sha256(), "text/csv")
    assert res["url"] == (f"{portal.url}/@demo/dataset/{res['package_id']}/resource/"
                          f"{res_id}/download/donnees-2026.csv")

    async with portal.session.get(res["url"], allow_redirects=False) as response:
        assert response.status == 302  # to a presigned GET on the object store
        location = response.headers["Location"]
    assert urlsplit(location).hostname == "localhost"
    async with portal.session.get(location) as response:
        assert response.status == 200
        assert hashlib.sha256(await response.read()).hexdigest() == file.sha256()
    _, shown = await portal.call("package_show", {"id": "automated-dataset"})
    assert shown["result"]["resources"][0]["size"] == 80_000
    stats = portal.store.stats
    assert (stats["portaljs:resource_upload"], stats["portaljs:resource_upload_finalize"],
            stats["s3:put"], stats["s3:get"], stats["portaljs:download"]) == (1, 1, 1, 1, 1)
    assert portal.objects.authorization_headers == 0
    assert portal.app["config"].pending == {}


async def test_presigned_put_is_checked_like_s3(portal: Portal) -> None:
    res_id = await portal.new_resource("checks")
    url = await portal.upload_url(res_id)
    body = b"id,name\n1,Example row\n"

    tampered = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    status, text = await portal.put(tampered, body)
    assert status == 403 and "<Code>SignatureDoesNotMatch</Code>" in text
    async with portal.session.get(url) as response:  # signed for PUT, not GET
        assert response.status == 403 and "SignatureDoesNotMatch" in await response.text()
    status, text = await portal.put(url, body, Authorization=KEY)
    assert status == 400 and "<Code>InvalidArgument</Code>" in text
    assert "Only one auth mechanism allowed" in text
    assert portal.objects.authorization_headers == 1
    query_less = url.split("?", 1)[0]
    status, text = await portal.put(query_less, body)
    assert status == 403 and "<Code>AccessDenied</Code>" in text

    async def chunked() -> AsyncIterator[bytes]:
        yield body

    status, text = await portal.put(url, chunked())
    assert status == 501 and "<Header>Transfer-Encoding</Header>" in text
    status, head = await _raw_put(url)
    assert status == 411 and b"<Code>MissingContentLength</Code>" in head
    status, text = await portal.put(url, b"x" * 100_001)
    assert status == 400 and "<Code>EntityTooLarge</Code>" in text
    assert "<MaxSizeAllowed>100000</MaxSizeAllowed>" in text

    portal.clock.now += 601
    status, text = await portal.put(url, body)
    assert status == 403 and "<Message>Request has expired</Message>" in text
    assert portal.store.stats["s3:put"] == 7
    fresh = await portal.upload_url(res_id)
    assert fresh != url
    assert (await portal.put(fresh, body))[0] == 200


async def _raw_put(url: str) -> tuple[int, bytes]:
    """A PUT with neither Content-Length nor Transfer-Encoding (aiohttp always sends one)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(reply.split(b" ", 2)[1]), reply


async def test_finalize_needs_the_put_and_takes_the_latest_url(portal: Portal) -> None:
    res_id = await portal.new_resource("finalize")
    status, body = await portal.call("resource_upload_finalize", {"id": res_id})
    assert status == 409 and body["error"]["__type"] == "Validation Error"
    assert "resource_upload first" in body["error"]["upload"][0]
    first = await portal.upload_url(res_id, "v1.csv")
    status, body = await portal.call("resource_upload_finalize", {"id": res_id})
    assert (status, body["error"]["upload"]) == (409, [
        "No file was uploaded to the presigned URL"])
    second = await portal.upload_url(res_id, "v1.csv")
    assert second != first
    assert (await portal.put(first, b"a,b\nold,1\n"))[0] == 200  # still signed, yet stale
    status, _ = await portal.call("resource_upload_finalize", {"id": res_id})
    assert status == 409
    assert (await portal.put(second, b"a,b\nnew,2\n"))[0] == 200
    status, done = await portal.call("resource_upload_finalize", {"id": res_id})
    assert status == 200 and done["result"]["size"] == 10
    status, again = await portal.call("resource_upload_finalize", {"id": res_id})
    assert status == 200 and again["result"] == done["result"]  # a retry changes nothing

    replacement = b"a,b\nnewer,3\nnewest,4\n"
    url = await portal.upload_url(res_id, "v2.json")
    assert (await portal.put(url, replacement, **{"Content-Type": "application/json"}))[0] == 200
    _, body = await portal.call("resource_upload_finalize", {"id": res_id})
    res = body["result"]
    assert (res["size"], res["hash"], res["mimetype"]) == (
        len(replacement), hashlib.sha256(replacement).hexdigest(), "application/json")
    async with portal.session.get(res["url"]) as response:  # follows to the object store
        assert await response.read() == replacement
    leftovers = [key for key in portal.store.blobs.keys() if key.startswith("s3:")]
    assert leftovers == [f"s3:{first.split('/', 4)[4].split('?')[0]}"]  # the stale PUT only


async def test_api_lives_under_the_portal_and_needs_a_key_to_write(portal: Portal) -> None:
    async with portal.session.get(portal.url + "/api/3/action/status_show") as response:
        assert response.status == 404
    async with portal.session.get(portal.url + "/@other/api/3/action/status_show") as response:
        assert response.status == 404
    status, body = await portal.call("status_show")
    assert status == 200 and body["result"]["site_url"] == f"{portal.url}/@demo"
    assert body["help"] == f"{portal.url}/@demo/api/3/action/help_show?name=status_show"
    res_id = await portal.new_resource("keyed")
    status, body = await portal.call("resource_upload", {"id": res_id, "filename": "a.csv"},
                                     key=None)
    assert status == 403 and body["error"]["__type"] == "Authorization Error"
    status, body = await portal.call("resource_upload", {"id": "missing", "filename": "a"})
    assert (status, body["error"]["message"]) == (404, "Not found: Resource was not found.")
    status, body = await portal.call("resource_upload", {"id": res_id})
    assert status == 409 and body["error"]["filename"] == ["Missing value"]
    status, body = await portal.call("package_search", {"rows": 0, "include_private": True})
    assert body["result"]["count"] == len(portal.store.packages) == 5  # 4 seeded, 1 new


async def test_seeded_and_multipart_files_download_through_the_object_store(
        portal: Portal) -> None:
    pkg = next(p for p in portal.store.packages.values()
               if p["resources"][0]["url_type"] == "upload" and not p["private"])
    _, shown = await portal.call("package_show", {"id": pkg["id"]})
    hosted = shown["result"]["resources"][0]
    async with portal.session.get(hosted["url"]) as response:
        assert response.status == 200 and len(await response.read()) == hosted["size"]
        assert urlsplit(str(response.url)).hostname == "localhost"
    form = aiohttp.FormData()
    form.add_field("package_id", pkg["id"])
    form.add_field("upload", b"x,y\n1,2\n", filename="direct.csv")
    async with portal.session.post(f"{portal.url}/@demo/api/3/action/resource_create",
                                   data=form, headers={"Authorization": KEY}) as response:
        res = (await response.json())["result"]
    async with portal.session.get(res["url"]) as response:
        assert await response.read() == b"x,y\n1,2\n"
    assert portal.store.stats["s3:get"] == 2 and portal.objects.authorization_headers == 0


COMMAND = """
import sys
from bulkport.testing.core.server import main
sys.exit(main(sys.argv[1:]))
"""


def _post(url: str, data: dict[str, Any], key: str) -> Any:
    request = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                     headers={"Authorization": key,
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["result"]


def test_simulate_portaljs_command_serves_the_whole_flow() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", COMMAND, "portaljs", "--datasets", "3", "--portal", "acme",
         "--api-key", "s3cret"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        api = next(word for word in line.split() if word.startswith("http://127.0.0.1"))
        assert api.endswith("/@acme") and "http://localhost:" in line and "s3cret" in line
        actions = api + "/api/3/action/"
        found = _post(actions + "package_search", {"include_private": True}, "s3cret")
        assert found["count"] == 3
        pkg = _post(actions + "package_create", {"name": "from-cli", "owner_org": "acme"},
                    "s3cret")
        res = _post(actions + "resource_create", {"package_id": pkg["id"], "name": "d"}, "s3cret")
        url = _post(actions + "resource_upload", {"id": res["id"], "filename": "d.csv"},
                    "s3cret")["presigned_url"]
        put = urllib.request.Request(url, data=b"a\n1\n", method="PUT")  # no key here
        with urllib.request.urlopen(put) as response:
            assert response.status == 200
        done = _post(actions + "resource_upload_finalize", {"id": res["id"]}, "s3cret")
        with urllib.request.urlopen(done["url"]) as response:  # redirected to the store
            assert response.read() == b"a\n1\n"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
