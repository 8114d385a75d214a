"""One mirror run's listing of the source, its diff with the state, and the guards.

The listing goes into the state store (``listing`` table), never into memory, and the
diff is rclone's march reduced to ids, done in SQL: records listed but not held (or held
with another modified date, or listed without one) are read in full; records held but no
longer listed are deletion candidates, which the guards may refuse as a whole.
What a run must walk through (the records to read by id, the records to remove) is read
back in sorted chunks, so memory holds one chunk whatever the catalog's size.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from bulkport.moments import canonical_time
from bulkport.store import StateStore, transaction

BATCH = 5_000  # listed ids held back before they are staged, in one transaction
CHUNK = 1_000  # ids read back at a time
T = TypeVar("T")

# Listed, and new to the mirror or with another (or no) modified date.
_FETCH = ("l.listed = 1 AND (m.source_id IS NULL OR l.modified IS NULL "
          "OR m.modified IS NOT l.modified)")
# Held, and neither listed nor read in full during this run.
_GONE = "NOT EXISTS (SELECT 1 FROM listing AS l WHERE l.source_id = m.source_id)"


class StoredListing:
    """A :class:`bulkport.portals.base.Listing` in the state store: ids with their
    modified dates (canonical form), and which ids this run read in full.

    Ids come in the portal's order, which for most is no order at all: inserted one batch
    at a time into the table, each batch would touch pages all over it. They are appended to
    a temporary table instead, and moved into ``listing`` sorted, in one pass, before the
    first question is asked of it.
    """

    def __init__(self, store: StateStore) -> None:
        """Empties the previous run's listing."""
        self.db: sqlite3.Connection = store.db
        self.announced = 0
        self._pending: list[tuple[str, str | None]] = []
        self._staged = 0
        self.db.execute("CREATE TEMP TABLE IF NOT EXISTS listing_staged "
                        "(source_id TEXT NOT NULL, modified TEXT)")
        with transaction(self.db):
            self.db.execute("DELETE FROM temp.listing_staged")
            self.db.execute("DELETE FROM listing")

    def add(self, source_id: str, modified: str | None) -> None:
        self._pending.append((source_id, canonical_time(modified)))
        if len(self._pending) >= BATCH:
            self._stage()

    def _stage(self) -> None:
        if not self._pending:
            return
        with transaction(self.db):
            self.db.executemany("INSERT INTO temp.listing_staged VALUES (?, ?)", self._pending)
        self._staged += len(self._pending)
        self._pending.clear()

    def flush(self) -> None:
        """Move what :meth:`add` holds back into the listing (the last date of an id
        listed twice wins)."""
        self._stage()
        if not self._staged:
            return
        with transaction(self.db):
            self.db.execute(
                "INSERT INTO listing (source_id, modified) SELECT source_id, modified FROM "
                "temp.listing_staged WHERE true ORDER BY source_id, rowid ON CONFLICT "
                "(source_id) DO UPDATE SET modified = excluded.modified, listed = 1")
            self.db.execute("DELETE FROM temp.listing_staged")
        self._staged = 0

    def __len__(self) -> int:
        self.flush()
        return int(self.db.execute("SELECT count(*) FROM listing WHERE listed = 1")
                   .fetchone()[0])

    def mark_read(self, source_id: str) -> None:
        """``source_id`` was read in full during this run: listed or not, it is no deletion
        candidate, nor to be read again by id."""
        self.flush()
        self.db.execute("INSERT INTO listing (source_id, listed, seen) VALUES (?, 0, 1) "
                        "ON CONFLICT (source_id) DO UPDATE SET seen = 1", (source_id,))

    def modified(self, source_id: str) -> str | None:
        """The modified date listed for ``source_id`` (None: not listed, or without one)."""
        self.flush()
        row = self.db.execute("SELECT modified FROM listing WHERE source_id = ? AND "
                              "listed = 1", (source_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def unread(self) -> Iterator[list[str]]:
        """The ids to read that this run has not read yet, in sorted chunks."""
        self.flush()
        yield from _chunks(self.db, "SELECT l.source_id FROM listing AS l LEFT JOIN mirror AS m "
                                    f"ON m.source_id = l.source_id WHERE {_FETCH} AND "
                                    "l.seen = 0 AND l.source_id > ? ORDER BY l.source_id "
                                    "LIMIT ?", lambda row: str(row[0]))

    def unlisted(self) -> Iterator[list[tuple[str, str]]]:
        """(source id, target key) of the held records neither listed nor read, in sorted
        chunks (safe to remove their rows between chunks)."""
        self.flush()
        yield from _chunks(self.db, "SELECT m.source_id, m.target_key FROM mirror AS m WHERE "
                                    f"{_GONE} AND m.source_id > ? ORDER BY m.source_id LIMIT ?",
                           lambda row: (str(row[0]), str(row[1])))


def _chunks(db: sqlite3.Connection, sql: str, make: Callable[[tuple[Any, ...]], T]
            ) -> Iterator[list[T]]:
    """Keyset pages of ``sql`` (which takes the last id and a limit), each read whole."""
    last = ""
    while True:
        rows = db.execute(sql, (last, CHUNK)).fetchall()
        if not rows:
            return
        last = str(rows[-1][0])
        yield [make(row) for row in rows]


@dataclass(frozen=True)
class Plan:
    """One run's diff between the source listing and the state, in counts."""

    listed: int
    fetch: int  # listed ids new to the mirror or with another modified date
    gone: int  # held ids the source no longer lists (deletion candidates)
    watermark: str | None  # the newest modified date listed


def march(listing: StoredListing) -> Plan:
    """Compare the source's ids and dates with what the mirror holds.

    One walk through the listing in id order, each id looked up among the held records
    (also stored in id order): the records held but not in the listing are the others.
    """
    listing.flush()
    held = listing.db.execute("SELECT count(*) FROM mirror").fetchone()[0]
    listed, watermark, fetch, found = listing.db.execute(
        "SELECT count(*) FILTER (WHERE l.listed = 1), max(l.modified) FILTER (WHERE "
        f"l.listed = 1), count(*) FILTER (WHERE {_FETCH}), count(m.source_id) FROM listing "
        "AS l LEFT JOIN mirror AS m ON m.source_id = l.source_id").fetchone()
    return Plan(listed=int(listed), fetch=int(fetch), gone=int(held) - int(found),
                watermark=None if watermark is None else str(watermark))


@dataclass(frozen=True)
class Guards:
    """How much one run may delete."""

    max_fraction: float = 0.10
    max_count: int = 0  # 0: no limit by count


def refusal(plan: Plan, held: int, guards: Guards, *, deleting: bool = True) -> str | None:
    """Why the run must not delete (then it deletes nothing), or None when it may.

    Args:
        deleting: False when nothing held will be deleted or hidden (``on_delete =
            "keep"``): only an empty listing is refused then.
    """
    if plan.listed == 0 and held:
        return (f"the source lists 0 datasets while the mirror holds {held:,}: refusing to "
                "delete anything (a source outage or a wrong filter?)")
    count = plan.gone if deleting else 0
    if not count:
        return None
    if guards.max_count and count > guards.max_count:
        return (f"this run would delete {count:,} datasets, more than max_delete_count "
                f"{guards.max_count:,}; nothing was written. If the source is right, allow "
                f"it for one run with --max-delete-count {count}")
    fraction = count / held if held else 1.0
    if fraction > guards.max_fraction:
        return (f"this run would delete {count:,} of the {held:,} mirrored datasets "
                f"({fraction:.0%}, more than max_delete_fraction {guards.max_fraction:.0%}); "
                "nothing was written. If the source is right, allow it for one run with "
                f"--max-delete-fraction {min(1.0, fraction + 0.005):.2f}")
    return None
