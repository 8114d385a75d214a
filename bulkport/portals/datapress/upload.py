"""DataPress chunked uploads: a file streamed from the source in parts, joined by the site.

``POST {api}/dataset/{id}/upload {filename, parts, ...}`` opens an upload and answers
``{urlChunk, urlComplete}``; each part (5 MiB, the last one shorter) goes to ``urlChunk``
as a multipart ``file`` with its number in the form field ``part``; ``urlComplete`` joins
them into a file resource (a new one, or ``resource_id`` replaced in place) and answers
``{dataset, resource_id, new_key}``. Only one part is held in memory at a time, and the
file's MD5 is computed on the way to check the site's ``hash`` of the result.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from bulkport.errors import BadResponse, NotFound, TransportError
from bulkport.http import HttpClient, Upload
from bulkport.portals.datapress.api import parse_error

PART_SIZE = 5 * 1024 * 1024  # the official client's part size; the site's minimum
_READ = 1 << 16


@dataclass
class Uploaded:
    """A file the site now holds."""

    resource_id: str
    dataset: dict[str, Any]  # the dataset as the site shows it after the upload


@dataclass
class UploadState:
    """What survives between attempts at one file: the MD5 of a fully sent copy, which
    tells whether a failed attempt in fact completed."""

    before: frozenset[str]  # resource ids of the dataset before the first attempt
    md5: str | None = None


async def _spooled(chunks: AsyncIterator[bytes]) -> tuple[int, AsyncIterator[bytes]]:
    """A body of unknown length, written to a temporary file to learn its size (the
    number of parts is needed up front)."""
    spool = tempfile.TemporaryFile()  # closed by the reader below
    size = 0
    async for chunk in chunks:
        await anyio.to_thread.run_sync(spool.write, chunk)
        size += len(chunk)

    async def read() -> AsyncIterator[bytes]:
        try:
            await anyio.to_thread.run_sync(spool.seek, 0)
            while chunk := await anyio.to_thread.run_sync(spool.read, _READ):
                yield chunk
        finally:
            spool.close()

    return size, read()


async def _parts(chunks: AsyncIterator[bytes], part_size: int) -> AsyncIterator[bytes]:
    """Cut a stream into ``part_size`` pieces (the last one shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= part_size:
            yield bytes(buffer[:part_size])
            del buffer[:part_size]
    if buffer:
        yield bytes(buffer)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


class ChunkedUploader:
    """Sends files through the chunked upload API of one DataPress site."""

    def __init__(self, client: HttpClient, api: str, part_size: int = PART_SIZE) -> None:
        self.client = client
        self.api = api
        self.part_size = max(1, part_size)

    async def _json(self, method: str, url: str, *, retry: bool = True, **kwargs: Any) -> Any:
        response = await self.client.request(method, url, errors=parse_error, retry=retry,
                                             **kwargs)
        return response.json()

    async def send(self, dataset_id: str, upload: Upload, fields: dict[str, Any],
                   state: UploadState, fetch: Callable[[], Awaitable[dict[str, Any]]],
                   *, resource_id: str | None = None) -> Uploaded:
        """Upload one file (one attempt: ``upload.chunks`` is consumed).

        Args:
            fields: ``title``, ``description``, ``order``, ``timeframe`` for the site.
            state: shared by the attempts at this file.
            fetch: reads the dataset again, to find the file an earlier attempt completed.
            resource_id: the file resource to replace in place, if any.

        Returns:
            The file resource now holding the bytes, and the dataset as the site shows it.

        Raises:
            BadResponse: the site's hash of the joined file is not the MD5 of what was sent.
        """
        if state.md5 is not None:  # an earlier attempt sent every part: did it complete?
            found = self._find(await fetch(), state, resource_id)
            if found is not None:
                return found
        chunks, size = upload.chunks, upload.size
        if size is None:
            size, chunks = await _spooled(chunks)
        parts = max(1, math.ceil(size / self.part_size))
        body = {"filename": upload.filename, "parts": parts, **fields}
        if resource_id is not None:
            body["resource_id"] = resource_id
        urls = await self._json("POST", f"{self.api}/dataset/{dataset_id}/upload", json=body)
        if not isinstance(urls, dict) or not urls.get("urlChunk") or not urls.get("urlComplete"):
            raise BadResponse(f"{self.api}/dataset/{dataset_id}/upload: no urlChunk/urlComplete")
        md5 = hashlib.md5()
        sent = 0
        async for number, data in _numbered(_parts(chunks, self.part_size)):
            if number >= parts:  # the source sent more than it announced: try again
                raise TransportError(f"file {upload.filename}: more than the {size:,} bytes "
                                     "announced")
            md5.update(data)
            sent += 1
            await self._chunk(urls["urlChunk"], number, data, upload)
        if sent == 0:  # an empty file is one empty part
            await self._chunk(urls["urlChunk"], 0, b"", upload)
        state.md5 = md5.hexdigest()
        reply = await self._complete(urls["urlComplete"], state, resource_id, fetch)
        resource = (reply.dataset.get("resources") or {}).get(reply.resource_id) or {}
        if resource.get("hash") not in (None, state.md5):
            raise BadResponse(f"file {upload.filename}: the site's MD5 {resource.get('hash')} "
                              f"is not the MD5 of the bytes sent ({state.md5})")
        return reply

    async def _chunk(self, url: str, number: int, data: bytes, upload: Upload) -> None:
        # A part is in memory, so unlike a streamed body it can simply be sent again.
        async def attempt() -> None:
            part = Upload(field="file", filename=upload.filename, chunks=_once(data),
                          size=len(data), content_type=upload.content_type,
                          fields={"part": str(number)})
            await self.client.upload("POST", url, part, errors=parse_error)

        await self.client.with_retries(attempt)

    async def _complete(self, url: str, state: UploadState, resource_id: str | None,
                        fetch: Callable[[], Awaitable[dict[str, Any]]]) -> Uploaded:
        """POST ``urlComplete`` once; a retry that finds the upload used up (404) means
        the lost reply was a success: the file is then looked up by its MD5."""
        first = True

        async def attempt() -> Uploaded:
            nonlocal first
            retried, first = not first, False
            try:
                reply = await self._json("POST", url, retry=False)
            except NotFound:
                found = self._find(await fetch(), state, resource_id) if retried else None
                if found is None:
                    raise
                return found
            if not isinstance(reply, dict) or not isinstance(reply.get("dataset"), dict):
                raise BadResponse(f"{url}: the reply has no dataset")
            return Uploaded(str(reply.get("resource_id")), reply["dataset"])

        return await self.client.with_retries(attempt)

    @staticmethod
    def _find(dataset: dict[str, Any], state: UploadState,
              resource_id: str | None) -> Uploaded | None:
        """The file an earlier attempt made: ``resource_id`` now holding the same bytes, or
        a new resource whose MD5 is that of the bytes sent."""
        resources = dataset.get("resources") or {}
        if resource_id is not None:
            held = resources.get(resource_id) or {}
            return Uploaded(resource_id, dataset) if held.get("hash") == state.md5 else None
        for rid, res in resources.items():
            if rid not in state.before and isinstance(res, dict) and res.get("hash") == state.md5:
                return Uploaded(rid, dataset)
        return None


async def _numbered(parts: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, bytes]]:
    number = 0
    async for data in parts:
        yield number, data
        number += 1
