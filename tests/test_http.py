"""The HTTP layer: retries, typed errors, bound credentials, redaction, time limits."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web
from aioresponses import aioresponses
from yarl import URL

from bulkport.errors import (
    AuthError,
    BadResponse,
    NotFound,
    ServerError,
    TransportError,
    ValidationError,
)
from bulkport.http import HttpClient, Limits, RetryPolicy, Timeouts, Upload
from bulkport.testing import serve
from bulkport.watchdog import Activity, watch

FAST = RetryPolicy(attempts=3, backoff_base=0.001, backoff_cap=0.002)
KEY = "s3cr3t-key-value"


def sent_headers(mocked: aioresponses, method: str, url: str) -> list[dict[str, str]]:
    return [call.kwargs.get("headers") or {} for call in mocked.requests[(method, URL(url))]]


async def test_retries_5xx_then_succeeds() -> None:
    with aioresponses() as m:
        m.get("http://a.test/x", status=503)
        m.get("http://a.test/x", status=502)
        m.get("http://a.test/x", payload={"ok": 1})
        async with HttpClient(retry=FAST) as client:
            response = await client.request("GET", "http://a.test/x")
    assert response.json() == {"ok": 1}
    assert client.requests["a.test"] == 3


async def test_gives_up_after_attempts_with_typed_error() -> None:
    with aioresponses() as m:
        for _ in range(3):
            m.get("http://a.test/x", status=500, body="boom")
        async with HttpClient(retry=FAST) as client:
            with pytest.raises(ServerError, match="HTTP 500"):
                await client.request("GET", "http://a.test/x")


async def test_honours_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("bulkport.http.anyio.sleep", fake_sleep)
    with aioresponses() as m:
        m.get("http://a.test/x", status=429, headers={"Retry-After": "7"})
        m.get("http://a.test/x", payload={})
        async with HttpClient(retry=FAST) as client:
            await client.request("GET", "http://a.test/x")
    assert waits == [7.0]


async def test_auth_error_is_not_retried() -> None:
    with aioresponses() as m:
        m.get("http://a.test/x", status=401, body='{"message": "bad key"}')
        async with HttpClient(retry=FAST) as client:
            with pytest.raises(AuthError):
                await client.request("GET", "http://a.test/x")
    assert client.requests["a.test"] == 1


@pytest.mark.parametrize(("status", "error"), [(404, NotFound), (409, ValidationError)])
async def test_client_errors_are_typed(status: int, error: type[Exception]) -> None:
    with aioresponses() as m:
        m.get("http://a.test/x", status=status)
        async with HttpClient(retry=FAST) as client:
            with pytest.raises(error):
                await client.request("GET", "http://a.test/x")


async def test_non_json_reply_is_a_clear_error() -> None:
    with aioresponses() as m:
        m.get("http://a.test/x", body="<html>maintenance</html>", content_type="text/html")
        async with HttpClient(retry=FAST) as client:
            response = await client.request("GET", "http://a.test/x")
    with pytest.raises(BadResponse, match="expected JSON, got text/html"):
        response.json()


async def test_credentials_only_go_to_their_origin() -> None:
    with aioresponses() as m:
        m.get("https://portal.test/api", payload={})
        m.get("https://files.elsewhere.test/data.csv", body="a,b")
        m.get("http://portal.test/api", payload={})  # same host, other scheme: other origin
        async with HttpClient(retry=FAST) as client:
            client.bind("https://portal.test", {"Authorization": KEY})
            await client.request("GET", "https://portal.test/api")
            await client.request("GET", "https://files.elsewhere.test/data.csv")
            await client.request("GET", "http://portal.test/api")
    assert sent_headers(m, "GET", "https://portal.test/api")[0]["Authorization"] == KEY
    assert "Authorization" not in sent_headers(m, "GET", "https://files.elsewhere.test/data.csv")[0]
    assert "Authorization" not in sent_headers(m, "GET", "http://portal.test/api")[0]


async def test_redirect_to_other_host_drops_credentials() -> None:
    target = "https://bucket.test/obj?X-Amz-Signature=abcdef123456"
    with aioresponses() as m:
        m.get("https://portal.test/dl", status=302, headers={"Location": target})
        m.get(target, body="bytes")
        async with HttpClient(retry=FAST) as client:
            client.bind("https://portal.test", {"Authorization": KEY})
            async with client.stream("https://portal.test/dl") as response:
                body = b"".join([c async for c in response.iter_chunks()])
    assert body == b"bytes"
    assert sent_headers(m, "GET", "https://portal.test/dl")[0]["Authorization"] == KEY
    assert "Authorization" not in sent_headers(m, "GET", target)[0]


async def test_error_messages_never_show_the_key() -> None:
    with aioresponses() as m:
        m.get(f"http://a.test/x?apikey={KEY}", status=400, body=f"key {KEY} is invalid")
        async with HttpClient(retry=FAST) as client:
            client.bind("http://a.test", {"Authorization": f"apikey {KEY}"})
            with pytest.raises(ValidationError) as caught:
                await client.request("GET", f"http://a.test/x?apikey={KEY}")
    assert KEY not in str(caught.value)
    assert "***" in str(caught.value)


async def test_concurrency_limit_per_host() -> None:
    import anyio

    active = peak = 0

    async def handler(url: URL, **kwargs: object) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.01)
        active -= 1

    with aioresponses() as m:
        m.get("http://a.test/x", callback=handler, repeat=True, payload={})
        async with HttpClient(limits=Limits(connections_per_host=3), retry=FAST) as client:
            async with anyio.create_task_group() as tg:
                for _ in range(12):
                    tg.start_soon(client.request, "GET", "http://a.test/x")
    assert peak == 3


# ---- retries in the -v log ---------------------------------------------------------------

async def test_retries_are_logged_with_host_method_status_and_wait(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bulkport")
    with aioresponses() as m:
        m.get(f"http://a.test/x?apikey={KEY}", status=503)
        m.get(f"http://a.test/x?apikey={KEY}", status=429, headers={"Retry-After": "0.01"})
        m.get(f"http://a.test/x?apikey={KEY}", payload={})
        async with HttpClient(retry=FAST) as client:
            client.bind("http://a.test", {"Authorization": KEY})
            await client.request("GET", f"http://a.test/x?apikey={KEY}")
    lines = [r.getMessage() for r in caplog.records if r.name == "bulkport.http"]
    assert len(lines) == 2
    assert lines[0].startswith("GET http://a.test/x: HTTP 503")
    assert lines[0].endswith("attempt 2/3 in 0.0s")
    assert lines[1].startswith("GET http://a.test/x: HTTP 429") and lines[1].endswith(
        "attempt 3/3 in 0.0s")
    assert client.activity.retries == 2
    assert not any(KEY in line for line in lines)


async def test_a_retry_around_several_requests_logs_the_one_that_failed(caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bulkport")
    presigned = "https://bucket.test/obj?X-Amz-Signature=f00dfeed1234&X-Amz-Credential=AKIA"
    with aioresponses() as m:
        m.put(presigned, status=500)
        m.put(presigned, status=500)
        async with HttpClient(retry=RetryPolicy(attempts=2, backoff_base=0.001)) as client:
            with pytest.raises(ServerError):
                await client.with_retries(lambda: client.request("PUT", presigned, retry=False))
    lines = [r.getMessage() for r in caplog.records if r.name == "bulkport.http"]
    assert lines[0].startswith("PUT https://bucket.test/obj: HTTP 500")
    assert "attempt 2/2" in lines[0] and "giving up after 2 attempt(s)" in lines[1]
    assert not any("f00dfeed" in line or "AKIA" in line for line in lines)


# ---- time limits -------------------------------------------------------------------------

async def test_the_read_timeout_ends_an_attempt_that_gets_no_reply() -> None:
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_get("/x", silent)
    async with serve(app) as url:
        async with HttpClient(retry=RetryPolicy(attempts=1),
                              timeouts=Timeouts(connect=1, read=0.3)) as client:
            started = time.monotonic()
            with pytest.raises(TransportError, match="Timeout"):
                await client.request("GET", f"{url}/x")
            assert time.monotonic() - started < 2
        release.set()


async def test_a_put_whose_connection_drops_fails_at_once_instead_of_hanging() -> None:
    # aiohttp sends a PUT again by itself when the connection drops before the reply; a
    # body stream already read would go out empty, and both ends would wait for each other.
    puts = 0

    async def put(request: web.Request) -> web.Response:
        nonlocal puts
        puts += 1
        if puts == 1:
            assert request.transport is not None
            request.transport.abort()  # dropped before it read the body
        body = await request.read()
        return web.Response(text=str(len(body)))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 1000

    app = web.Application()
    app.router.add_put("/obj", put)
    async with serve(app) as url:
        async with HttpClient(timeouts=Timeouts(read=30)) as client:
            with anyio.fail_after(5):
                with pytest.raises(TransportError, match="BodySpent"):
                    await client.upload("PUT", f"{url}/obj", Upload("file", "a.csv", chunks(),
                                                                     4000), multipart=False)
            # A fresh stream (what the caller's retry opens) goes through.
            reply = await client.upload("PUT", f"{url}/obj", Upload("file", "a.csv", chunks(),
                                                                     4000), multipart=False)
    assert reply.body == b"4000"


async def test_a_slow_download_that_keeps_coming_is_progress() -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000
        await response.prepare(request)
        for _ in range(10):
            await asyncio.sleep(0.1)
            await response.write(b"y" * 100)
        return response

    app = web.Application()
    app.router.add_get("/big", trickle)
    activity = Activity()
    async with serve(app) as url, HttpClient(activity=activity) as client:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, activity, 0.3, scope)
                async with client.stream(f"{url}/big") as response:
                    body = b"".join([chunk async for chunk in response.iter_chunks()])
                tg.cancel_scope.cancel()
    assert not scope.cancelled_caught and activity.stalled is None
    assert len(body) == 1000


async def test_a_creates_lookup_is_retried_by_the_create_not_also_by_itself() -> None:
    """A portal answering 503 to everything: after the first create, each of the create's
    attempts is one look for what the last one may have made: ``attempts`` requests in all,
    not about attempts² (a lookup that retried by itself inside each attempt)."""
    with aioresponses() as m:
        m.post("http://a.test/create", status=503, repeat=True)
        m.get("http://a.test/find", status=503, repeat=True)
        async with HttpClient(retry=FAST) as client:

            async def create() -> object:
                return await client.request("POST", "http://a.test/create", retry=False)

            async def lookup() -> object | None:
                return await client.request("GET", "http://a.test/find")

            with pytest.raises(ServerError):
                await client.create_once(create, lookup)
            assert client.requests["a.test"] == 3
            # Outside a create, the same lookup is retried as every request is.
            with pytest.raises(ServerError):
                await lookup()
    assert client.requests["a.test"] == 3 + 3
