"""Small reply helpers shared by the simulators: JSON bodies, timestamps, streamed files."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp import web

from bulkport.testing.core.files import Blob

CHUNK = 64 * 1024
# Set on a request whose connection must drop once the handler ran; streaming handlers
# read it to cut their body half-way (the client then sees a truncated payload).
DROP_AFTER_KEY = "bulkport.drop_after"


def json_response(data: Any, status: int = 200, *,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON reply serialized with orjson."""
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    """A reply whose JSON body is already serialized."""
    return web.Response(body=body, status=status, content_type="application/json")


def iso(moment: float | None = None) -> str:
    """A timestamp as Opendatasoft and DataPress write them: UTC, ISO 8601 with a ``Z``."""
    when = datetime.fromtimestamp(time.time() if moment is None else moment, timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def base_url(request: web.Request) -> str:
    """``scheme://host:port`` as the client reached us, for absolute links."""
    return f"{request.scheme}://{request.host}"


def drop_connection(request: web.Request) -> None:
    """Cut the connection at once: the client sees a disconnect, never a reply."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def stream_blob(request: web.Request, blob: Blob, *, content_type: str,
                      headers: Mapping[str, str] | None = None) -> web.StreamResponse:
    """Stream ``blob`` from disk (or from its generator) in 64 KiB chunks.

    When the fault middleware asked for a drop after the handler, the body is cut half-way,
    so the client sees a truncated payload rather than a clean reply.
    """
    cut = blob.size // 2 if request.get(DROP_AFTER_KEY) else None
    if blob.size <= CHUNK and cut is None:
        # Same reply in one write: a streamed one sends its headers on their own.
        return web.Response(body=blob.read(), headers=headers, content_type=content_type)
    response = web.StreamResponse(headers=headers)
    response.content_type = content_type
    response.content_length = blob.size
    await response.prepare(request)
    sent = 0
    for chunk in blob.iter_chunks(CHUNK):
        if cut is not None and sent + len(chunk) > cut:
            await response.write(chunk[: cut - sent])
            drop_connection(request)
            return response
        await response.write(chunk)
        sent += len(chunk)
    await response.write_eof()
    return response
