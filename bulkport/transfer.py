"""Streams one file from a source portal into a target, hashing it on the way."""

from __future__ import annotations

import hashlib
import mimetypes
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio

from bulkport.errors import ConfigError, TransportError
from bulkport.http import HttpClient, StreamResponse, Upload, origin
from bulkport.model import Resource
from bulkport.redact import safe_url

if TYPE_CHECKING:
    from bulkport.config import JobConfig
    from bulkport.report import Report

T = TypeVar("T")


class FileSource(Protocol):
    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]: ...


@dataclass
class Digest:
    """Size and SHA-256 of the bytes that went through."""

    size: int = 0
    sha256: str = ""


async def _hashed(chunks: AsyncIterator[bytes], digest: Digest, expected: int | None,
                  where: str) -> AsyncIterator[bytes]:
    sha = hashlib.sha256()
    size = 0
    async for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
        yield chunk
    if expected is not None and size != expected:
        raise TransportError(f"{where}: got {size} bytes, the source announced {expected}")
    digest.size, digest.sha256 = size, sha.hexdigest()


@asynccontextmanager
async def with_known_size(upload: Upload) -> AsyncIterator[Upload]:
    """``upload`` with its size known: a stream of unknown length (an export, say) is
    spooled to a temporary file first, for targets that need a Content-Length up front
    (an S3 presigned PUT refuses a chunked body). Memory stays flat: the file is on disk."""
    if upload.size is not None:
        yield upload
        return
    with tempfile.TemporaryFile() as raw:
        spool = anyio.wrap_file(raw)
        size = 0
        async for chunk in upload.chunks:
            await spool.write(chunk)
            size += len(chunk)
        await spool.seek(0)

        async def replay() -> AsyncIterator[bytes]:
            while chunk := await spool.read(1 << 16):
                yield chunk

        yield replace(upload, chunks=replay(), size=size)


def transfer_limit(job: JobConfig, held: int = 0) -> int:
    """How many files may stream at once.

    A transfer holds a connection to the source for as long as its upload takes. When both
    portals share an origin they share its connection limit too: with as many downloads as
    connections, every upload would wait for a connection no download gives back. Half the
    connections for downloads leaves the other half for uploads and listings.

    Args:
        held: connections to the source that its listing holds for the whole run (a
            streamed export): downloads waiting for them would wait for ever.

    Raises:
        ConfigError: too few connections to download, upload and list at once.
    """
    assert job.source is not None and job.target is not None
    options, shared = job.options, origin(job.source.url)
    free = options.connections - held  # what the source's host has left for files
    if shared != origin(job.target.url):
        if free < 1:
            raise ConfigError(f"{safe_url(shared)}: [options] connections must be at least "
                              f"{held + 1} (the source's listing holds {held} for the whole "
                              "run, files need another)")
        return max(1, options.transfers)
    if free < 2:
        raise ConfigError(f"source and target share {safe_url(shared)}: "
                          f"[options] connections must be at least {held + 2} (one downloads "
                          "while another uploads" + (", and the listing holds "
                                                     f"{held}" if held else "") + ")")
    return max(1, min(options.transfers, free // 2))


class FileTransfer:
    """Moves files source → target, ``transfers`` at a time, never holding a whole file.

    Every target sends its files through :meth:`send`, so this is where a run counts them:
    ``files_transferred`` and ``bytes_transferred`` in ``report``, once per file the target
    accepted (retried attempts count once; a file a target keeps never comes here).
    """

    def __init__(self, client: HttpClient, source: FileSource, transfers: int,
                 report: Report | None = None) -> None:
        self.client = client
        self.source = source
        self.report = report  # None: nothing counted
        # The download right after acquiring yields anyway: no extra checkpoint needed.
        self.limiter = anyio.Semaphore(max(1, transfers), fast_acquire=True)

    async def send(self, resource: Resource,
                   put: Callable[[Upload, int], Awaitable[T]]) -> tuple[T, Digest]:
        """Download ``resource`` and hand its bytes to ``put(upload, attempt)``.

        A failed attempt re-opens the download (a stream cannot be replayed); ``attempt``
        (1, 2, …) lets ``put`` look for what an earlier attempt may have created.

        Returns:
            What ``put`` returned, and the digest of the bytes the target holds: those of
            the last attempt that read the whole file (``put`` may find, without reading,
            what an earlier attempt sent before its reply was lost).
        """
        digests: list[Digest] = []

        async def once() -> tuple[T, Digest]:
            digest = Digest()
            digests.append(digest)
            async with self.limiter, self.source.open_file(resource) as download:
                mimetype = (resource.mimetype
                            or mimetypes.guess_type(resource.filename)[0]
                            or "application/octet-stream")
                upload = Upload(
                    field="file",
                    filename=resource.filename,
                    chunks=_hashed(download.iter_chunks(), digest, download.content_length,
                                   resource.filename),
                    size=download.content_length,
                    content_type=mimetype,
                )
                result = await put(upload, len(digests))
            return result, digest

        result, digest = await self.client.with_retries(once)
        # An unfinished stream has no hash yet (that of an empty file is not "").
        read = next((d for d in reversed(digests) if d.sha256), None)
        if read is not None and self.report is not None:
            self.report.count("files_transferred")
            self.report.count("bytes_transferred", read.size)
        return result, read or digest
