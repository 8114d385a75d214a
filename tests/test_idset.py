"""The set of ids a listing keeps on disk."""

from __future__ import annotations

import subprocess
import sys

from bulkport.idset import IdSet


def test_add_says_whether_an_id_is_new() -> None:
    with IdSet() as seen:
        assert "a" not in seen and len(seen) == 0
        assert seen.add("a") is True
        assert seen.add("a") is False
        assert seen.add_all(["b", "a", "c", "b"]) == [True, False, True, False]
        assert len(seen) == 3 and "c" in seen and "d" not in seen and 3 not in seen
        assert seen.add_all([]) == []


def test_close_forgets_everything_and_the_set_can_be_used_again() -> None:
    seen = IdSet()
    seen.add_all(["x", "y"])
    seen.close()
    assert len(seen) == 0 and "x" not in seen
    assert seen.add("x") is True
    seen.close()
    seen.close()  # twice is harmless


def test_a_failed_batch_adds_nothing() -> None:
    with IdSet() as seen:
        seen.add("kept")
        try:
            seen.add_all(["new", object()])  # type: ignore[list-item]
        except Exception:
            pass
        else:
            raise AssertionError("an id that is not text must fail the batch")
        assert len(seen) == 1 and "new" not in seen and seen.add("new") is True


_MEASURE = """
import resource, uuid
from bulkport.idset import IdSet
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with IdSet() as seen:
    for page in range(300):
        batch = [str(uuid.UUID(int=(page * 1000 + n) * 7919 + 1)) for n in range(1000)]
        assert all(seen.add_all(batch))
    assert len(seen) == 300_000 and not any(seen.add_all([str(uuid.UUID(int=7920))]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def test_memory_stays_flat_with_many_ids() -> None:
    """300,000 ids (about 35 MB in a Python set) in pages of 1,000: what the set holds in
    memory is SQLite's bounded page cache. Measured in a process of its own, whose peak no
    other test has raised."""
    done = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True,
                          check=True, timeout=120)
    grown_kib = int(done.stdout.strip())
    assert grown_kib < 12 * 1024, f"the set grew the process by {grown_kib} KiB"
