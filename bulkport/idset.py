"""A set of ids kept on disk, so that remembering every id of a listing costs no memory.

A source that drops the duplicates of a shifting listing must remember every id it listed;
in a set that grows with the catalog (about 100 bytes an id, 100 MB for a million). Here
the ids go to a private temporary SQLite database (``sqlite3.connect("")``): SQLite keeps a
bounded page cache in memory, writes the rest to a temporary file, and deletes the file when
the set is closed (or its process dies). The database is only made on the first add.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

CACHE_KIB = 2048  # SQLite's page cache for the set (its default): the most it holds in memory


class IdSet:
    """Ids seen so far. Use as a context manager, or call :meth:`close`."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._count = 0

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            # Scratch data: nothing to keep across a crash, so no fsync; a rollback journal in
            # memory (a page of ids at most).
            db.execute("PRAGMA journal_mode = MEMORY")
            db.execute("PRAGMA synchronous = OFF")
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY) WITHOUT ROWID")
            self._db = db
        return self._db

    def add(self, item: str) -> bool:
        """Add ``item``; True if it was not in the set yet."""
        return self.add_all((item,))[0]

    def add_all(self, items: Iterable[str]) -> list[bool]:
        """Add ``items`` in one transaction (a page of a listing at a time); for each, in
        order, True if it was new (a repeat within ``items`` is not)."""
        db = self._open()
        cursor = db.cursor()
        cursor.execute("BEGIN")
        try:
            fresh = [cursor.execute("INSERT OR IGNORE INTO ids (id) VALUES (?)",
                                    (item,)).rowcount == 1 for item in items]
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        self._count += sum(fresh)
        return fresh

    def __contains__(self, item: object) -> bool:
        if self._db is None or not isinstance(item, str):
            return False
        return self._db.execute("SELECT 1 FROM ids WHERE id = ?", (item,)).fetchone() is not None

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Forget every id and delete the database (an empty set can be used again)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self._count = 0

    def __enter__(self) -> IdSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
