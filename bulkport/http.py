"""The one place that talks HTTP.

One :class:`HttpClient` per run wraps one aiohttp session and adds what every portal needs:
a concurrency limit (and optional rate limit) per host, retries with exponential backoff and
full jitter that honour ``Retry-After``, typed errors (:mod:`bulkport.errors`), redacted
messages, and credentials bound to the origin they belong to — a resource URL, a presigned
URL or another portal never receives a portal's key, even through a redirect. Each request,
reply, chunk and retry is told to the run's :class:`~bulkport.watchdog.Activity` (what the
watchdog and the progress bar read), and each retry is logged (``-v``) with its wait. The
latency of each answered attempt and each retry are counted per host in a
:class:`~bulkport.metrics.HostStats` (the run report's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import functools
import logging
import random
import re
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import anyio
import orjson
from aiolimiter import AsyncLimiter

from bulkport import __version__, metrics
from bulkport.errors import (
    AuthError,
    BadResponse,
    BulkportError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetriableError,
    ServerError,
    TransportError,
    ValidationError,
)
from bulkport.redact import redact, register_secret, safe_url
from bulkport.watchdog import Activity, Flight

T = TypeVar("T")
Params = Mapping[str, str | int | float] | None


class ErrorReply(NamedTuple):
    """What a portal's error body says, as its ``api`` module reads it."""

    message: str  # one line
    fields: dict[str, str] = {}  # field path → message  # noqa: RUF012 (never mutated)
    code: str | None = None  # the portal's own error code, where it has one


ErrorParser = Callable[["Response"], ErrorReply]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_READ_WHOLE = 1 << 20  # a reply up to this size is read in one go; larger ones chunk by chunk
log = logging.getLogger("bulkport.http")
# The method of a request that failed with an HTTP status, for the retry log (a message
# names the URL only; retries wrapped around several requests do not know which failed).
# Set while a create's lookup runs inside the create's own retries (see create_once).
_ONE_ATTEMPT: ContextVar[bool] = ContextVar("one_attempt", default=False)
_METHOD_OF: weakref.WeakKeyDictionary[BaseException, str] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How hard to push each host."""

    connections_per_host: int = 16
    requests_per_second: float | None = None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """When and how long to retry a transient failure."""

    attempts: int = 6
    backoff_base: float = 0.25
    backoff_cap: float = 20.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, error: RetriableError) -> float:
        """Seconds to wait before ``attempt`` (1-based count of failures so far)."""
        if error.retry_after is not None:
            return min(error.retry_after, self.max_retry_after)
        # Full jitter: spreads the retries of many workers that failed together.
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1)))


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds to open a connection, and to wait for the next bytes of a reply."""

    connect: float = 30.0
    read: float = 120.0


@dataclass
class Response:
    """A fully read reply."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes

    def snippet(self, limit: int = 120) -> str:
        """The start of the body as one line of text, for error messages."""
        return self.body[:limit].decode("utf-8", "replace").strip().replace("\n", " ")

    def json(self) -> Any:
        """The body as JSON; :class:`BadResponse` when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            kind = self.headers.get("Content-Type", "unknown content").split(";")[0]
            raise BadResponse(
                f"{safe_url(self.url, keep_query=False)}: expected JSON, got {kind} "
                f"(HTTP {self.status}): {self.snippet(80)!r}",
                self.status,
            ) from None


# What aiohttp raises when the network, not the portal, fails (translated only here).
NETWORK_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class BodySpent(Exception):
    """A streamed request body was asked for a second time (see :class:`_SizedStream`)."""


def transport_error(exc: BaseException, url: str, what: str) -> TransportError:
    """The one message of a network failure: where, what was under way, the error (redacted,
    the URL's query never quoted)."""
    where = safe_url(url, keep_query=False)
    if isinstance(exc.__cause__, BodySpent):  # aiohttp wraps it in a long connection error
        exc = exc.__cause__
    detail = redact(str(exc).replace(url, where))
    return TransportError(f"{where}: {what} failed: {type(exc).__name__} {detail}".strip())


class StreamResponse:
    """A reply whose body is read chunk by chunk."""

    def __init__(self, raw: aiohttp.ClientResponse, url: str, activity: Activity,
                 flight: Flight) -> None:
        self._raw = raw
        self.status = raw.status
        self.url = url
        self.headers: Mapping[str, str] = raw.headers
        self.content_length: int | None = raw.content_length
        self._activity = activity
        self._flight = flight

    async def iter_chunks(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._raw.content.iter_chunked(size):
                # A slow download that keeps receiving is progress, not a stall.
                self._activity.received(self._flight)
                yield chunk
        except NETWORK_ERRORS as exc:
            raise transport_error(exc, self.url, "download") from exc


@dataclass
class Upload:
    """A file body for a multipart form: ``chunks`` is consumed once per attempt."""

    field: str
    filename: str
    chunks: AsyncIterator[bytes]
    size: int | None = None
    content_type: str = "application/octet-stream"
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)


class _SizedStream(aiohttp.payload.AsyncIterablePayload):
    """A streamed payload whose size is known, so the request carries a Content-Length.

    It goes out once. aiohttp sends a PUT again by itself when the connection drops before
    the reply, with the same payload: a stream already read would then send nothing after
    headers that announce a body, and client and server would wait for each other until
    the read timeout. A second send fails at once instead (a TransportError), and the
    caller starts the stream over, as after any failed upload.
    """

    def __init__(self, chunks: AsyncIterator[bytes], size: int | None, **kwargs: Any) -> None:
        super().__init__(chunks, **kwargs)
        self._size = size
        self._sent = False

    async def write_with_length(self, writer: aiohttp.abc.AbstractStreamWriter,
                                content_length: int | None) -> None:
        if self._sent:
            raise BodySpent("the connection dropped while the body was sent; the upload "
                            "starts over from its source")
        self._sent = True
        await super().write_with_length(writer, content_length)


async def _read_body(raw: aiohttp.ClientResponse, activity: Activity, flight: Flight) -> bytes:
    """The whole body; a large one chunk by chunk, each one progress for the watchdog."""
    if raw.content_length is not None and raw.content_length <= _READ_WHOLE:
        return await raw.read()
    chunks = []
    async for chunk in raw.content.iter_chunked(1 << 16):
        activity.received(flight)
        chunks.append(chunk)
    return b"".join(chunks)


async def _sent(chunks: AsyncIterator[bytes], activity: Activity) -> AsyncIterator[bytes]:
    """``chunks``, each one progress once it was taken to be sent (a slow upload is no stall)."""
    async for chunk in chunks:
        activity.progressed()
        yield chunk


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


_SCHEME_AUTHORITY = re.compile(r"[^:/?#]*://[^/?#]*")


def _host(url: str) -> tuple[str, str]:
    """``(origin, netloc)`` of ``url``: origin (``scheme://host:port``) is what credentials
    and limits are bound to, netloc what the report counts requests by."""
    match = _SCHEME_AUTHORITY.match(url)
    return _host_of_prefix(match.group() if match else url)


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: what credentials and connection limits bind to."""
    return _host(url)[0]


@functools.lru_cache(maxsize=256)
def _host_of_prefix(prefix: str) -> tuple[str, str]:
    # Cached: every request asks, and a run talks to a handful of hosts.
    parts = urlsplit(prefix)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}", parts.netloc


def error_body(response: Response) -> dict[str, Any] | ErrorReply:
    """A portal's JSON error body as an object; a body that is none is already the whole
    reply (its start, or its JSON text)."""
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return ErrorReply(response.snippet() or f"HTTP {response.status}")
    return body if isinstance(body, dict) else ErrorReply(str(body))


def _default_error_parser(response: Response) -> ErrorReply:
    return ErrorReply(response.snippet(200) or f"HTTP {response.status}")


def field_messages(errors: Mapping[str, Any], skip: tuple[str, ...] = ()) -> dict[str, str]:
    """``{field: [messages]}`` from a portal's error body as ``{field: "msg; msg"}``."""
    return {k: "; ".join(map(str, v)) if isinstance(v, list) else str(v)
            for k, v in errors.items() if k not in skip}


def _failed(error: BulkportError, method: str) -> BulkportError:
    _METHOD_OF[error] = method
    return error


def error_for(response: Response, parse: ErrorParser | None = None) -> BulkportError:
    """The typed error for a failed ``response`` (status >= 400)."""
    message, fields, code = (parse or _default_error_parser)(response)
    where = safe_url(response.url, keep_query=False)
    text = redact(f"{where}: HTTP {response.status}: {message}")
    status = response.status
    if status in (401, 403):
        return AuthError(text, status)
    if status == 404:
        return NotFound(text, status)
    if status == 413:
        return PayloadTooLarge(text, status)
    if status == 429:
        return RateLimited(text, status, _retry_after(response.headers.get("Retry-After")))
    if status >= 500:
        return ServerError(text, status, _retry_after(response.headers.get("Retry-After")))
    if status == 409:
        return Conflict(text, status, fields, code)
    return ValidationError(text, status, fields, code)


class Attempt:
    """One of :meth:`HttpClient.attempts`: keeps the RetriableError its block raised."""

    def __init__(self) -> None:
        self.error: RetriableError | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> bool:
        if isinstance(error, RetriableError):
            self.error = error
            return True
        return False


class HttpClient:
    """One aiohttp session for a run, with limits, retries, redaction and bound credentials.

    Use as ``async with HttpClient() as client``.
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        activity: Activity | None = None,
        hosts: metrics.HostStats | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.activity = activity or Activity()  # what the watchdog and the progress bar read
        self.requests: Counter[str] = Counter()  # attempts per host, for the report
        # Latency and retries per host: the run's report holds them (see metrics.measuring).
        found = hosts if hosts is not None else metrics.current()
        self.hosts = found if found is not None else metrics.HostStats()
        self._credentials: dict[str, dict[str, str]] = {}
        self._host_limits: dict[str, tuple[anyio.Semaphore, AsyncLimiter | None]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpClient:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self.timeouts.connect, sock_read=self.timeouts.read
            ),
            headers={"User-Agent": f"bulkport/{__version__}"},
            auto_decompress=True,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            # Closed even when the run is being cancelled (a second Ctrl-C, the watchdog):
            # closing only drops sockets, so it cannot hang; the bound is a safety net.
            with anyio.move_on_after(5, shield=True):
                await self._session.close()
            self._session = None

    def bind(self, base_url: str, headers: Mapping[str, str], secrets: tuple[str, ...] = ()) -> None:
        """Send ``headers`` with every request to ``base_url``'s origin, and only there."""
        self._credentials[origin(base_url)] = dict(headers)
        for value in (*headers.values(), *secrets):
            register_secret(value)
            # The bare key too, when the header carries a scheme ("apikey KEY").
            register_secret(value.split(" ", 1)[-1])

    def _limits_for(self, origin: str) -> tuple[anyio.Semaphore, AsyncLimiter | None]:
        found = self._host_limits.get(origin)
        if found is None:
            rate = self.limits.requests_per_second
            found = (
                # A request right after acquiring yields anyway: no extra checkpoint needed.
                anyio.Semaphore(self.limits.connections_per_host, fast_acquire=True),
                AsyncLimiter(rate, 1.0) if rate else None,
            )
            self._host_limits[origin] = found
        return found

    async def with_retries(self, operation: Callable[[], Awaitable[T]], *, method: str = "",
                           url: str = "") -> T:
        """Run ``operation``, retrying it on :class:`RetriableError` as the policy says.

        Args:
            method, url: the request ``operation`` sends, for the log (when it is one);
                otherwise the error's message says where it failed.
        """
        if _ONE_ATTEMPT.get():  # an outer loop retries this, lookup and all
            return await operation()
        failures = 0
        while True:
            try:
                return await operation()
            except RetriableError as error:
                failures += 1
                await self._pause(error, failures, method, url)

    async def _pause(self, error: RetriableError, failures: int, method: str, url: str) -> None:
        """Wait before the next attempt, logged and told to the watchdog; raise ``error``
        when the attempts are used up."""
        attempts = self.retry.attempts
        host: str | None = None
        if url:
            host = _host(url)[1]
        else:  # every message built here starts with the URL it is about
            found = _SCHEME_AUTHORITY.match(str(error))
            if found:
                host = _host_of_prefix(found.group())[1]
        what = " ".join(str(error).split())[:300]  # one line, already redacted
        method = method or _METHOD_OF.get(error, "")
        if method and f"{method} failed" not in what:
            what = f"{method} {what}"
        if failures >= attempts:
            log.debug("%s; giving up after %d attempt(s)", what, attempts)
            raise error
        delay = self.retry.delay(failures, error)
        self.activity.retrying(host, delay)
        if host is not None:
            self.hosts.retried(host)
        log.debug("%s; attempt %d/%d in %.1fs", what, failures + 1, attempts, delay)
        await anyio.sleep(delay)

    async def attempts(self) -> AsyncIterator[Attempt]:
        """Attempts at work the caller must start over itself (a stream read again from its
        start), under the same policy as every request::

            async for attempt in client.attempts():
                with attempt:
                    ...  # a RetriableError here is retried; the last one is raised
        """
        failures = 0
        while True:
            attempt = Attempt()
            yield attempt
            if attempt.error is None:
                return
            failures += 1
            await self._pause(attempt.error, failures, "", "")

    async def create_once(self, create: Callable[[], Awaitable[T]],
                          lookup: Callable[[], Awaitable[T | None]]) -> T:
        """Run a create that is not idempotent, with retries: before each retry, ``lookup``
        looks for what the failed attempt may have made (its reply lost), so a retry never
        makes a duplicate. ``create`` must not retry by itself (``retry=False``)."""
        first = True

        async def attempt() -> T:
            nonlocal first
            if not first:
                # Tried once per attempt: retried by this loop, not also by itself (a portal
                # answering 503 would get attempts² requests).
                token = _ONE_ATTEMPT.set(True)
                try:
                    found = await lookup()
                finally:
                    _ONE_ATTEMPT.reset(token)
                if found is not None:
                    return found
            first = False
            return await create()

        return await self.with_retries(attempt)

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, str, Flight]]:
        """One attempt, following redirects by hand so credentials never change origin."""
        assert self._session is not None, "HttpClient used outside 'async with'"
        for _ in range(_MAX_REDIRECTS + 1):
            site, netloc = _host(url)
            semaphore, limiter = self._limits_for(site)
            request_headers = {**self._credentials.get(site, {}), **(headers or {})}
            async with semaphore:
                if limiter is not None:
                    await limiter.acquire()
                self.requests[netloc] += 1
                flight = self.activity.begin(netloc)
                sent = time.monotonic()
                try:
                    async with self._session.request(
                        method, url, params=params, headers=request_headers, data=data,
                        allow_redirects=False,
                    ) as raw:
                        # Latency: until the status and headers (a body's time is its size's).
                        self.hosts.answered(netloc, time.monotonic() - sent)
                        self.activity.received(flight)
                        location = raw.headers.get("Location")
                        if raw.status in _REDIRECTS and location:
                            # A redirect target is often a presigned URL: no message quotes
                            # its query (every one goes through safe_url). Registering each as
                            # a secret would grow the redaction pattern with every file.
                            url = urljoin(url, location)
                            if raw.status == 303:
                                method, data = "GET", None
                            params = None
                            continue
                        yield raw, url, flight
                        return
                except NETWORK_ERRORS as exc:
                    raise transport_error(exc, url, method) from exc
                finally:
                    self.activity.end(flight)
        raise BadResponse(f"{safe_url(url, keep_query=False)}: too many redirects")

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params = None,
        json: Any = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        errors: ErrorParser | None = None,
        retry: bool = True,
    ) -> Response:
        """Send a request and read the whole reply; raise a typed error for status >= 400.

        Args:
            retry: retry transient failures here. Pass False for a create that is not
                idempotent: the caller looks the record up before trying again.

        Raises:
            AuthError, NotFound, ValidationError, PayloadTooLarge, RetriableError, BadResponse.
        """
        send_headers = dict(headers or {})
        encoded = orjson.dumps(json) if json is not None else None
        if encoded is not None:
            send_headers.setdefault("Content-Type", "application/json")

        async def attempt() -> Response:
            # A form is consumed by sending it: build it anew for each attempt.
            body = encoded if form is None else aiohttp.FormData(dict(form))
            async with self._send(method, url, params=params, headers=send_headers, data=body) as (
                raw,
                final_url,
                flight,
            ):
                try:
                    content = await _read_body(raw, self.activity, flight)
                except NETWORK_ERRORS as exc:
                    raise transport_error(exc, final_url, "reading the reply") from exc
                response = Response(raw.status, final_url, raw.headers, content)
            if response.status >= 400:
                raise _failed(error_for(response, errors), method)
            return response

        return await (self.with_retries(attempt, method=method, url=url) if retry
                      else attempt())

    async def upload(
        self,
        method: str,
        url: str,
        upload: Upload,
        *,
        multipart: bool = True,
        headers: Mapping[str, str] | None = None,
        errors: ErrorParser | None = None,
    ) -> Response:
        """Stream ``upload`` as a multipart form (or as the raw body). Never retried here:
        the chunks are consumed, so the caller re-opens the source and tries again."""
        payload = _SizedStream(_sent(upload.chunks, self.activity), upload.size,
                               content_type=upload.content_type)
        body: Any = payload
        if multipart:
            writer = aiohttp.MultipartWriter("form-data")
            for name, value in upload.fields.items():
                writer.append(value).set_content_disposition("form-data", name=name)
            # Raw UTF-8 file names, as browsers send them (quoting would store "%C3%A9").
            writer.append_payload(payload).set_content_disposition(
                "form-data", quote_fields=False, name=upload.field, filename=upload.filename
            )
            body = writer
        async with self._send(method, url, headers=headers, data=body) as (raw, final_url, flight):
            content = await _read_body(raw, self.activity, flight)
            response = Response(raw.status, final_url, raw.headers, content)
        if response.status >= 400:
            raise _failed(error_for(response, errors), method)
        return response

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        params: Params = None,
        errors: ErrorParser | None = None,
    ) -> AsyncIterator[StreamResponse]:
        """GET ``url`` and yield a :class:`StreamResponse` to read it chunk by chunk."""

        async def open_once() -> tuple[Any, StreamResponse]:
            context = self._send("GET", url, params=params)
            raw, final_url, flight = await context.__aenter__()
            if raw.status >= 400:
                content = await raw.read()
                await context.__aexit__(None, None, None)
                raise error_for(Response(raw.status, final_url, raw.headers, content), errors)
            return context, StreamResponse(raw, final_url, self.activity, flight)

        context, response = await self.with_retries(open_once, method="GET", url=url)
        try:
            yield response
        except BaseException as exc:
            await context.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        else:
            await context.__aexit__(None, None, None)
