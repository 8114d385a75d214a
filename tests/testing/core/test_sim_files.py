"""Synthetic files and the blob store."""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from bulkport.testing.core import files
from bulkport.testing.core.files import MEMORY_BODY, BlobStore, BlobTooLarge, SyntheticFile


@pytest.mark.parametrize("size", [0, 1, 10, 33, 65535, 65536, 65537, 200_003])
@pytest.mark.parametrize("kind", ["csv", "pdf", "bin"])
def test_synthetic_file_has_the_exact_size_and_a_streamed_hash(size: int, kind: str) -> None:
    file = SyntheticFile(size, seed=5, kind=kind)
    data = file.read()
    assert len(data) == size
    assert file.sha256() == hashlib.sha256(data).hexdigest()


def test_synthetic_file_is_deterministic_and_independent_of_chunk_size() -> None:
    one = SyntheticFile(300_000, seed=9)
    assert b"".join(one.iter_chunks(1000)) == b"".join(SyntheticFile(300_000, 9).iter_chunks())
    assert one.sha256() != SyntheticFile(300_000, seed=10).sha256()
    sizes = [len(chunk) for chunk in one.iter_chunks(4096)]
    assert set(sizes[:-1]) == {4096} and 0 < sizes[-1] <= 4096


def test_csv_content_looks_like_csv_and_stays_utf8() -> None:
    for size in (100, 1234, 70_001):
        text = SyntheticFile(size, seed=size).read().decode("utf-8")
        assert text.startswith("id,name,city,value,date,comment\n")
        assert text.endswith("\n")
    assert SyntheticFile(50, 1, "pdf").read().startswith(b"%PDF-")


def test_a_large_file_is_never_held_in_memory() -> None:
    file = SyntheticFile(64 * 1024 * 1024, seed=3)
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in file.iter_chunks())
        file.sha256()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == file.size
    assert peak < 4 * 1024 * 1024


async def _chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def test_blob_store_streams_to_a_lazy_temp_dir_and_cleans_up() -> None:
    store = BlobStore()
    assert store._dir is None  # nothing on disk before the first body
    data = SyntheticFile(MEMORY_BODY + 10_000, 4).read()
    blob = await store.write("a", _chunks(data))
    assert blob.path is not None and blob.path.exists()
    assert (blob.size, blob.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert blob.read() == data and store.get("a") is blob
    synthetic = store.put_synthetic("s", SyntheticFile(5000, 1))
    assert synthetic.path is None and synthetic.size == 5000
    assert synthetic.sha256 == SyntheticFile(5000, 1).sha256()
    moved = store.rename("a", "b")
    assert moved is blob and blob.key == "b" and "a" not in store and store.get("b") is blob
    directory = store.directory
    store.close()
    assert not directory.exists() and len(store) == 0


async def test_blob_store_refuses_a_body_over_the_limit_and_keeps_nothing() -> None:
    store = BlobStore()
    with pytest.raises(BlobTooLarge):
        await store.write("big", _chunks(b"x" * 5000), max_size=4000)
    assert "big" not in store
    assert list(store.directory.iterdir()) == []
    store.close()


async def test_small_bodies_stay_in_memory_within_a_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MEMORY_BUDGET", 25_000)
    store = BlobStore()
    data = SyntheticFile(10_000, 4).read()
    one = await store.write("one", _chunks(data))
    two = store.put_bytes("two", data)
    assert one.path is None and two.path is None and store._dir is None
    assert one.read() == data and one.sha256 == hashlib.sha256(data).hexdigest()
    third = await store.write("three", _chunks(data))  # over the budget: on disk
    assert third.path is not None and third.read() == data
    store.delete("one")
    assert (await store.write("four", _chunks(data))).path is None  # room again
    assert store.put_synthetic("five", SyntheticFile(10_000, 4)).data is None  # no room
    store.delete("four")
    synthetic = store.put_synthetic("six", SyntheticFile(10_000, 4))
    assert synthetic.data == data and synthetic.read() == data
    assert store.put_synthetic("big", SyntheticFile(MEMORY_BODY + 1, 4)).data is None
    store.close()
