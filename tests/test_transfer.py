"""File transfers when source and target share a host: they share its connections too."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from bulkport.config import JobConfig
from bulkport.errors import ConfigError, TransportError
from bulkport.http import HttpClient, Limits, RetryPolicy, StreamResponse, Upload
from bulkport.model import Resource
from bulkport.report import Report
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


class _Source:
    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        return self.client.stream(resource.url)


def _file(site: str) -> Resource:
    return Resource(source_id="1", name="f", url=f"{site}/file", format="CSV", hosted=True,
                    file_name="f.csv")


async def test_a_file_sent_again_after_a_lost_reply_counts_once(site: str) -> None:
    """The first attempt sends every byte and loses the reply; the second finds the copy
    without reading: one file, its bytes once, and the digest of what was sent."""
    report = Report("t", "migrate")
    async with HttpClient(retry=RetryPolicy(backoff_base=0.001)) as client:
        transfer = FileTransfer(client, _Source(client), 1, report)

        async def put(upload: Upload, attempt: int) -> int:
            if attempt > 1:
                return 200  # an earlier attempt's copy is there
            await client.upload("POST", f"{site}/upload", upload)
            raise TransportError("connection dropped after the upload")

        _, digest = await transfer.send(_file(site), put)
    assert digest.size == len(BODY) and digest.sha256 == hashlib.sha256(BODY).hexdigest()
    assert report.counts["files_transferred"] == 1
    assert report.counts["bytes_transferred"] == len(BODY)


async def test_a_file_not_sent_counts_nothing(site: str) -> None:
    """A put that never reads the file, or fails on every attempt, sent nothing."""
    report = Report("t", "migrate")
    async with HttpClient(retry=RetryPolicy(attempts=2, backoff_base=0.001)) as client:
        transfer = FileTransfer(client, _Source(client), 1, report)

        async def unread(_upload: Upload, _attempt: int) -> int:
            return 200

        async def refused(upload: Upload, _attempt: int) -> int:
            await client.upload("POST", f"{site}/upload", upload)
            raise TransportError("reset")

        await transfer.send(_file(site), unread)
        with pytest.raises(TransportError):
            await transfer.send(_file(site), refused)
    assert not report.counts["files_transferred"] and not report.counts["bytes_transferred"]
