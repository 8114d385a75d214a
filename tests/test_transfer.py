"""File transfers when source and target share a host: they share its connections too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from bulkport.config import JobConfig
from bulkport.errors import ConfigError
from bulkport.http import HttpClient, Limits, StreamResponse, Upload
from bulkport.model import Resource
from bulkport.settings import Options, SourceSettings, TargetSettings
from bulkport.testing import ThreadedServer
from bulkport.transfer import FileTransfer, transfer_limit

BODY = b"x" * 200_000


def job(source: str, target: str, **options: int) -> JobConfig:
    return JobConfig(path=Path("job.toml"), name="t", kind="migrate",
                     source=SourceSettings(type="ckan", url=source),
                     target=TargetSettings(type="ckan", url=target),
                     options=Options(**options))


@pytest.mark.parametrize(("source", "target", "options", "expected"), [
    ("https://a.example.org", "https://b.example.org", {"connections": 4, "transfers": 8}, 8),
    ("https://a.example.org", "https://a.example.org:443", {"connections": 4, "transfers": 8}, 2),
    ("https://a.example.org", "https://a.example.org/other", {"connections": 32, "transfers": 8}, 8),
    ("http://a.example.org", "http://a.example.org", {"connections": 3, "transfers": 8}, 1),
])
def test_transfers_leave_connections_for_uploads_on_a_shared_host(
        source: str, target: str, options: dict[str, int], expected: int) -> None:
    assert transfer_limit(job(source, target, **options)) == expected


def test_one_connection_on_a_shared_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="connections must be at least 2"):
        transfer_limit(job("https://a.example.org", "https://a.example.org", connections=1))


def test_a_listing_that_holds_a_connection_leaves_one_for_files() -> None:
    """A streamed export holds its connection for the whole listing: with no other one,
    every download would wait for it, and the listing for the downloads (a hang)."""
    a, b = "https://a.example.org", "https://b.example.org"
    with pytest.raises(ConfigError, match=r"connections must be at least 2 \(the source's "
                                          r"listing holds 1 for the whole run"):
        transfer_limit(job(a, b, connections=1), held=1)
    assert transfer_limit(job(a, b, connections=2, transfers=8), held=1) == 8
    with pytest.raises(ConfigError, match=r"at least 3 \(one downloads while another "
                                          r"uploads, and the listing holds 1\)"):
        transfer_limit(job(a, a, connections=2), held=1)
    assert transfer_limit(job(a, a, connections=5, transfers=8), held=1) == 2


@pytest.fixture
def site() -> Iterator[str]:
    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
        await response.prepare(request)
        for start in range(0, len(BODY), 50_000):
            await response.write(BODY[start:start + 50_000])
            await anyio.sleep(0.005)
        return response

    async def upload(request: web.Request) -> web.Response:
        return web.json_response({"size": len(await request.read())})

    def app() -> web.Application:
        made = web.Application()
        made.router.add_get("/file", download)
        made.router.add_post("/upload", upload)
        return made

    with ThreadedServer(app) as server:
        yield server.url


async def test_many_transfers_through_one_host_never_wait_on_each_other(site: str) -> None:
    limit = transfer_limit(job(site, site, connections=2, transfers=8))
    async with HttpClient(limits=Limits(connections_per_host=2)) as client:

        class Source:
            def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
                return client.stream(resource.url)

        transfer = FileTransfer(client, Source(), limit)
        sizes: list[int] = []

        async def put(upload: Upload, _attempt: int) -> int:
            return (await client.upload("POST", f"{site}/upload", upload)).status

        async def one(n: int) -> None:
            res = Resource(source_id=str(n), name=f"f{n}", url=f"{site}/file", format="CSV",
                           hosted=True, file_name=f"f{n}.csv")
            _, digest = await transfer.send(res, put)
            sizes.append(digest.size)

        with anyio.fail_after(20):  # a deadlock would hang here
            async with anyio.create_task_group() as tg:
                for n in range(6):
                    tg.start_soon(one, n)
    assert sizes == [len(BODY)] * 6
