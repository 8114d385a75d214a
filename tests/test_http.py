"""The HTTP layer: retries, typed errors, bound credentials, redaction."""

from __future__ import annotations

import pytest
from aioresponses import aioresponses
from yarl import URL

from bulkport.errors import AuthError, BadResponse, NotFound, ServerError, ValidationError
from bulkport.http import HttpClient, Limits, RetryPolicy

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
