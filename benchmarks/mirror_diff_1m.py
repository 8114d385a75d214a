"""Benchmark: a mirror's listing and diff over 1,000,000 ids, with no server.

A state store's mirror table is filled with ``--held`` synthetic records (the state a
mirror of that many datasets keeps); then the mirror's own listing-and-diff code runs in a
fresh process against a generated source listing, fed page by page as a portal's pages
come: ``--changed`` of the held records with a newer modified date, ``--new`` more ids,
``--gone`` of the held ones no longer listed. That process lists into the store, diffs in
SQL, checks the guards, looks again at the deletion candidates by id, and walks the ids to
read and to remove, as a run does. It prints the time and its peak RSS
(``getrusage().ru_maxrss``); the goals are under 60 s and under 150 MB.

    python benchmarks/mirror_diff_1m.py [--held 1000000] [--page 1000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

GOAL_SECONDS, GOAL_MB = 60.0, 150.0
SOURCE, TARGET = "https://source.example", "https://target.example"
HELD_DATE = "2024-01-01T00:00:00.000Z"  # canonical, as the state keeps it
LISTED_DATE = "2024-01-01T00:00:00.000000"  # as a CKAN package dict spells the same moment
CHANGED_DATE = "2024-06-01T12:30:00.250000"


def ident(n: int) -> str:
    """A UUID-shaped id, in no particular order (as package ids come)."""
    return str(uuid.UUID(int=(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))


class Catalog:
    """Which generated ids are listed, and with which date."""

    def __init__(self, held: int, changed: float, new: float, gone: float) -> None:
        self.held = held
        self.new = round(held * new)
        self.changed_every = round(1 / changed) if changed else 0
        self.gone_every = round(1 / gone) if gone else 0

    def is_gone(self, n: int) -> bool:
        return bool(self.gone_every) and n < self.held and n % self.gone_every == 7

    def listed(self) -> Iterator[tuple[str, str]]:
        for n in range(self.held + self.new):
            if self.is_gone(n):
                continue
            changed = n >= self.held or (self.changed_every and n % self.changed_every == 3)
            yield ident(n), CHANGED_DATE if changed else LISTED_DATE


class GeneratedSource:
    """The listing side of a mirror source, generated: pages of ``page`` ids."""

    def __init__(self, catalog: Catalog, page: int) -> None:
        self.catalog, self.page = catalog, page

    async def list_ids(self, listing: object, *, page_concurrency: int,
                       ids: Collection[str] | None = None) -> None:
        import anyio.lowlevel

        if ids is not None:  # the second look: none of the candidates is back
            return
        rows = self.catalog.listed()
        while True:
            page = [row for _, row in zip(range(self.page), rows, strict=False)]
            if not page:
                return
            for sid, modified in page:
                listing.add(sid, modified)  # type: ignore[attr-defined]
            listing.announced += len(page)  # type: ignore[attr-defined]
            await anyio.lowlevel.checkpoint()  # between pages, the event loop runs


def fill(state_dir: Path, held: int) -> float:
    """A state store holding ``held`` mirrored records; returns the seconds it took."""
    from bulkport.jobs.mirror_state import MirrorState
    from bulkport.store import StateStore, transaction

    started = time.monotonic()
    with StateStore(state_dir) as store:
        MirrorState.open(store, source=SOURCE, target=TARGET).claim()
        with transaction(store.db):
            store.db.executemany(
                "INSERT INTO mirror (source_id, target_key, hash, modified) VALUES (?, ?, ?, ?)",
                ((ident(n), f"dataset-{n}", f"{n:064x}", HELD_DATE) for n in range(held)))
        store.set_meta("mirror watermark", HELD_DATE)
    return time.monotonic() - started


def measure(state_dir: Path, catalog: Catalog, page: int) -> None:
    """The listing and diff of one run; prints one line of figures (read by :func:`main`)."""
    import anyio

    from bulkport.jobs.mirror import list_source, look_again
    from bulkport.jobs.mirror_diff import Guards, StoredListing, march, refusal
    from bulkport.jobs.mirror_state import MirrorState
    from bulkport.store import StateStore

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with StateStore(state_dir) as store:
        state = MirrorState.open(store, source=SOURCE, target=TARGET)
        held = state.held()
        listing = StoredListing(store)
        source = GeneratedSource(catalog, page)
        anyio.run(lambda: list_source(source, listing, page_concurrency=4))  # type: ignore[arg-type]
        listed_at = time.monotonic()
        plan = march(listing)
        reason = refusal(plan, held, Guards())
        assert reason is None, reason
        anyio.run(lambda: look_again(source, listing, page_concurrency=4))  # type: ignore[arg-type]
        to_read = sum(len(chunk) for chunk in listing.unread())
        to_remove = sum(len(chunk) for chunk in listing.unlisted())
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT held={held} listed={plan.listed} fetch={plan.fetch} gone={plan.gone} "
          f"to_read={to_read} to_remove={to_remove} watermark={plan.watermark} "
          f"list_seconds={listed_at - started:.2f} seconds={seconds:.2f} "
          f"base_kb={base} peak_kb={peak}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=1_000_000)
    parser.add_argument("--page", type=int, default=1000, help="ids per listing page")
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--new", type=float, default=0.005)
    parser.add_argument("--gone", type=float, default=0.001)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    catalog = Catalog(args.held, args.changed, args.new, args.gone)
    if args.measure is not None:
        measure(args.measure, catalog, args.page)
        return

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        filled = fill(state, args.held)
        # A fresh process: its peak RSS is the listing and diff's, not the filling's.
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(state), *sys.argv[1:]],
            check=True, capture_output=True, text=True)
        size = sum(p.stat().st_size for p in state.iterdir() if p.is_file())
    line = next(x for x in child.stdout.splitlines() if x.startswith("RESULT "))
    figures = dict(item.split("=", 1) for item in line.split()[1:])
    seconds, peak_mb = float(figures["seconds"]), int(figures["peak_kb"]) / 1024
    base_mb = int(figures["base_kb"]) / 1024
    print(f"mirror listing + diff: {int(figures['held']):,} held, {int(figures['listed']):,} "
          f"listed in pages of {args.page:,} (state filled in {filled:.1f}s, "
          f"{size / 2**20:,.0f} MB on disk after the run)")
    print(f"  diff: {int(figures['fetch']):,} to read ({int(figures['to_read']):,} by id), "
          f"{int(figures['gone']):,} gone ({int(figures['to_remove']):,} to remove), "
          f"watermark {figures['watermark']}")
    print(f"  time:     {seconds:.1f} s (listing {float(figures['list_seconds']):.1f} s) "
          f"— goal < {GOAL_SECONDS:.0f} s: {'met' if seconds < GOAL_SECONDS else 'NOT met'}")
    print(f"  peak RSS: {peak_mb:.0f} MB (after imports {base_mb:.0f} MB) "
          f"— goal < {GOAL_MB:.0f} MB: {'met' if peak_mb < GOAL_MB else 'NOT met'}")


if __name__ == "__main__":
    main()
