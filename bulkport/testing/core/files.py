"""File bodies for the simulators: deterministic synthetic files and a blob store.

Memory stays bounded: synthetic files are generated chunk by chunk; uploaded bodies are
streamed to a temporary directory and read back the same way. Small bodies, uploaded or
synthetic, are kept in memory instead, up to a fixed budget: a file per small upload, or
generating a small file on each download, costs more than the request itself.
"""

from __future__ import annotations

import functools
import hashlib
import random
import shutil
import tempfile
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

_BLOCK = 64 * 1024
_POOL_ROWS = 509  # prime: every stride walks the whole pool
_BLOCK_ROWS = 64
MEMORY_BODY = 64 * 1024  # bodies up to this size may stay in memory...
MEMORY_BUDGET = 32 * 1024 * 1024  # ...as long as all of them together fit in this
_CSV_HEADER = b"id,name,city,value,date,comment\n"
_NAMES = ("Zoë", "Łukasz", "Ana María", "李雷", "Søren", "Chloé", "O'Brien", "Nguyễn",
          "Ólafur", "Ayşe", "José", "Müller")
_CITIES = ("Paris", "Zürich", "São Paulo", "Kraków", "東京", "Reykjavík", "Montréal",
           "Málaga", "Köln", "İstanbul")
_COMMENTS = ("", "ok", '"contains, a comma"', '"quoted ""word"""', "café crème", "🚲 vélo",
             "n/a", "line\\nbreak", "-", "très bien")
_MAGIC = {"pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "zip": b"PK\x03\x04", "xlsx": b"PK\x03\x04"}
MIMETYPES = {"csv": "text/csv", "pdf": "application/pdf", "json": "application/json",
             "zip": "application/zip",
             "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def _close_last_row(piece: bytes) -> bytes:
    """Replace a row cut short by the size limit with ASCII filler ending in a newline.

    The cut may fall inside a multi-byte character: the filler keeps the text valid UTF-8.
    """
    start = piece.rfind(b"\n") + 1
    tail = len(piece) - start
    filler = b"\n" if tail == 1 else b"0" + b" " * (tail - 2) + b"\n"
    return piece[:start] + filler


@functools.cache
def _row_tails() -> tuple[bytes, ...]:
    """CSV rows without their id column, drawn once and shared by every synthetic file."""
    rng = random.Random("bulkport-synthetic-csv")
    return tuple(
        f",{rng.choice(_NAMES)},{rng.choice(_CITIES)},{rng.uniform(-1e4, 1e5):.2f},"
        f"20{rng.randint(10, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
        f"{rng.choice(_COMMENTS)}\n".encode()
        for _ in range(_POOL_ROWS)
    )


class SyntheticFile:
    """A file of ``size`` bytes whose content is a pure function of ``seed`` and ``kind``.

    ``kind="csv"`` gives CSV-looking UTF-8 text; any other kind gives pseudo-random bytes
    (behind the format's magic number when one is known, e.g. ``%PDF`` for ``pdf``).
    """

    def __init__(self, size: int, seed: int, kind: str = "csv") -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self.size = size
        self.seed = seed
        self.kind = kind
        self._sha256: str | None = None

    def __repr__(self) -> str:
        return f"SyntheticFile(size={self.size}, seed={self.seed}, kind={self.kind!r})"

    @property
    def mimetype(self) -> str:
        return MIMETYPES.get(self.kind, "application/octet-stream")

    def iter_chunks(self, chunk_size: int = 65536) -> Iterator[bytes]:
        """The content in chunks of ``chunk_size`` bytes (the last one may be shorter)."""
        buffer = bytearray()
        for piece in self._pieces():
            buffer += piece
            while len(buffer) >= chunk_size:
                yield bytes(buffer[:chunk_size])
                del buffer[:chunk_size]
        if buffer:
            yield bytes(buffer)

    async def aiter_chunks(self, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """:meth:`iter_chunks` as an async iterator (an aiohttp request body)."""
        for chunk in self.iter_chunks(chunk_size):
            yield chunk

    def read(self) -> bytes:
        """The whole content: for small files only."""
        return b"".join(self.iter_chunks())

    def sha256(self) -> str:
        """Hex SHA-256 of the content, computed by streaming (and then cached)."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for piece in self._pieces():
                digest.update(piece)
            self._sha256 = digest.hexdigest()
        return self._sha256

    def _pieces(self) -> Iterator[bytes]:
        """Pieces of any length that add up to exactly ``size`` bytes."""
        remaining = self.size
        source = self._csv_blocks() if self.kind == "csv" else self._random_blocks()
        for block in source:
            if remaining <= 0:
                return
            piece = block[:remaining]
            remaining -= len(piece)
            if remaining == 0 and self.kind == "csv" and not piece.endswith(b"\n"):
                piece = _close_last_row(piece)
            yield piece

    def _csv_blocks(self) -> Iterator[bytes]:
        # Rows are made lazily from a shared pool, so a small file costs a few rows, not a
        # whole pool: a simulator serves thousands of them per second. The seed picks where
        # the walk through the pool starts and its stride; the id column keeps counting, so
        # no two blocks are alike (a lost or repeated chunk changes the hash).
        tails = _row_tails()
        rng = random.Random(self.seed)
        at, stride = rng.randrange(_POOL_ROWS), rng.randrange(1, _POOL_ROWS)
        yield _CSV_HEADER
        first = 1
        while True:
            rows = []
            for n in range(first, first + _BLOCK_ROWS):
                rows.append(b"%d" % n + tails[at])
                at = (at + stride) % _POOL_ROWS
            first += _BLOCK_ROWS
            yield b"".join(rows)

    def _random_blocks(self) -> Iterator[bytes]:
        magic = _MAGIC.get(self.kind)
        if magic:
            yield magic
        block = 0
        while True:
            yield random.Random(self.seed * 1_000_003 + block).randbytes(_BLOCK)
            block += 1


class Blob:
    """A stored file body: on disk (``path``), in memory (``data``) or generated
    (``synthetic``)."""

    __slots__ = ("_sha256", "data", "key", "path", "size", "synthetic")

    def __init__(self, key: str, size: int, sha256: str | None, path: Path | None,
                 synthetic: SyntheticFile | None = None, data: bytes | None = None) -> None:
        self.key = key
        self.size = size
        self.path = path
        self.synthetic = synthetic
        self.data = data
        self._sha256 = sha256

    def __repr__(self) -> str:
        return f"Blob(key={self.key!r}, size={self.size}, path={self.path})"

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            assert self.synthetic is not None
            self._sha256 = self.synthetic.sha256()
        return self._sha256

    def iter_chunks(self, chunk_size: int = 65536) -> Iterator[bytes]:
        """Stream the body back."""
        if self.data is not None:
            for start in range(0, len(self.data), chunk_size):
                yield self.data[start:start + chunk_size]
            return
        if self.synthetic is not None:
            yield from self.synthetic.iter_chunks(chunk_size)
            return
        assert self.path is not None
        with self.path.open("rb") as handle:
            while chunk := handle.read(chunk_size):
                yield chunk

    def read(self) -> bytes:
        """The whole body: for small files only."""
        return b"".join(self.iter_chunks())


class BlobTooLarge(Exception):
    """The body went over the size limit; nothing was kept."""


class BlobStore:
    """Blobs by key; uploaded bodies live in a temporary directory made on first use, or
    in memory when small (:data:`MEMORY_BODY`, :data:`MEMORY_BUDGET`)."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._cleanup: weakref.finalize[Any, Any] | None = None
        self._blobs: dict[str, Blob] = {}
        self._counter = 0
        self._in_memory = 0  # bytes of the blobs held in memory

    def __contains__(self, key: object) -> bool:
        return key in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def keys(self) -> list[str]:
        return list(self._blobs)

    def get(self, key: str) -> Blob | None:
        return self._blobs.get(key)

    @property
    def directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="bulkport-blobs-"))
            # Removed at exit too, for stores nobody closed (a killed demo, a test).
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._dir, True)
        return self._dir

    def _new_path(self) -> Path:
        self._counter += 1
        return self.directory / f"{self._counter:08d}.bin"

    async def write(self, key: str, chunks: AsyncIterable[bytes], *,
                    max_size: int | None = None) -> Blob:
        """Stream ``chunks`` into the store under ``key``: in memory while the body is small
        and the budget allows, on disk from the first chunk that does not fit.

        Raises:
            BlobTooLarge: more than ``max_size`` bytes came; the partial file is removed.
        """
        digest = hashlib.sha256()
        size = 0
        room = min(MEMORY_BODY, MEMORY_BUDGET - self._in_memory)
        buffered: list[bytes] = []
        path: Path | None = None
        handle: Any = None
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise BlobTooLarge(f"{key}: more than {max_size} bytes")
                digest.update(chunk)
                if path is None and size <= room:
                    buffered.append(chunk)
                    continue
                if path is None:
                    # Plain writes: they land in the page cache and cost less than a
                    # thread hop.
                    path = self._new_path()
                    handle = path.open("wb")
                    handle.writelines(buffered)
                    buffered.clear()
                handle.write(chunk)
        except BaseException:
            if path is not None:
                handle.close()
                path.unlink(missing_ok=True)
            raise
        if path is None:
            return self._keep(Blob(key, size, digest.hexdigest(), None,
                                   data=b"".join(buffered)))
        handle.close()
        return self._keep(Blob(key, size, digest.hexdigest(), path))

    def put_bytes(self, key: str, data: bytes) -> Blob:
        """Store a small body given whole."""
        digest = hashlib.sha256(data).hexdigest()
        if len(data) <= min(MEMORY_BODY, MEMORY_BUDGET - self._in_memory):
            return self._keep(Blob(key, len(data), digest, None, data=data))
        path = self._new_path()
        path.write_bytes(data)
        return self._keep(Blob(key, len(data), digest, path))

    def put_synthetic(self, key: str, file: SyntheticFile) -> Blob:
        """Store a synthetic file as a blob without writing it anywhere. A small one is
        generated now, within the memory budget, so that serving it costs no generation
        (a portal reads its files, it does not make them up on each download)."""
        data = None
        if file.size <= min(MEMORY_BODY, MEMORY_BUDGET - self._in_memory):
            data = file.read()
        return self._keep(Blob(key, file.size, None, None, synthetic=file, data=data))

    def _keep(self, blob: Blob) -> Blob:
        self.delete(blob.key)
        self._blobs[blob.key] = blob
        if blob.data is not None:
            self._in_memory += len(blob.data)
        return blob

    def _pop(self, key: str) -> Blob | None:
        blob = self._blobs.pop(key, None)
        if blob is not None and blob.data is not None:
            self._in_memory -= len(blob.data)
        return blob

    def rename(self, key: str, new_key: str) -> Blob | None:
        """Move a blob to ``new_key`` (replacing what was there) without copying it."""
        blob = self._pop(key)
        if blob is not None:
            blob.key = new_key
            self._keep(blob)
        return blob

    def delete(self, key: str) -> None:
        blob = self._pop(key)
        if blob is not None and blob.path is not None:
            blob.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Forget every blob and remove the temporary directory."""
        self._blobs.clear()
        self._in_memory = 0
        if self._cleanup is not None:
            self._cleanup()
        self._dir = self._cleanup = None
