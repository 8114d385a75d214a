"""What a mirror remembers between runs, in the state store.

The ``mirror`` table holds every source record the mirror holds on the target: its key
there, the hash of its content, its modified date at the source. Meta rows name the two
portals (``mirror source``, ``mirror target``: a state is never used for another mirror),
the watermark (the newest source modified date of the last successful run) and when that
run committed. Each record written or removed changes its row at once, in the same
transaction as its journal row and its history actions, so a kill -9 at any moment leaves
a state the next run resumes from exactly. The journal rows only count what an interrupted
run had done already; a finished run sets the watermark and clears them in one transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

from bulkport.errors import ConfigError
from bulkport.redact import safe_url
from bulkport.store import StateStore, transaction

JOURNAL_KIND = "mirror"  # one journal row per record written or removed by the current run
SOURCE, TARGET = "mirror source", "mirror target"
WATERMARK, COMMITTED_AT = "mirror watermark", "mirror committed_at"


@dataclass(frozen=True)
class Entry:
    """One record held on the target."""

    key: str  # where it is on the target (CKAN name, Opendatasoft dataset_id)
    hash: str  # fingerprint of the pivot record last written
    modified: str | None  # its modified date at the source then (canonical form)


class MirrorState:
    """The watermark and the source → target map of one mirror job, read from and written
    to its state store as the run goes."""

    def __init__(self, store: StateStore, *, source: str, target: str) -> None:
        """Use :meth:`open`, which checks that the state is this mirror's."""
        self.store = store
        self.source, self.target = source, target

    @property
    def db(self) -> sqlite3.Connection:
        return self.store.db

    @classmethod
    def open(cls, store: StateStore, *, source: str, target: str) -> MirrorState:
        """The state of the mirror ``source`` → ``target`` in ``store``.

        Args:
            source, target: the portals' URLs (kept without user info or query, so that
                no credential a URL may carry is written to disk).

        Raises:
            ConfigError: the store holds the state of a mirror of other portals.
        """
        state = cls(store, source=safe_url(source, keep_query=False),
                    target=safe_url(target, keep_query=False))
        saved = store.meta(SOURCE), store.meta(TARGET)
        if saved != (None, None) and saved != (state.source, state.target):
            where = store.path or "the state"
            raise ConfigError(
                f"{where}: this state belongs to the mirror {saved[0]} → {saved[1]}, not "
                f"{state.source} → {state.target}; pass another --state-dir")
        return state

    @property
    def watermark(self) -> str | None:
        return self.store.meta(WATERMARK)

    @property
    def committed_at(self) -> str | None:
        return self.store.meta(COMMITTED_AT)

    def claim(self) -> None:
        """Name this mirror's portals in the state before its first write."""
        with transaction(self.db):
            self.store.set_meta(SOURCE, self.source)
            self.store.set_meta(TARGET, self.target)

    def held(self) -> int:
        """How many records the mirror holds."""
        return int(self.db.execute("SELECT count(*) FROM mirror").fetchone()[0])

    def get(self, source_id: str) -> Entry | None:
        row = self.db.execute("SELECT target_key, hash, modified FROM mirror WHERE "
                              "source_id = ?", (source_id,)).fetchone()
        return None if row is None else Entry(*row)

    def resumed(self) -> int:
        """How many records an interrupted run had done already (they are in the table;
        :mod:`bulkport.legacy` folds an old journal's into it as it imports it)."""
        return self.store.journal.count(JOURNAL_KIND)

    def _put(self, source_id: str, entry: Entry) -> None:
        self.db.execute(
            "INSERT INTO mirror (source_id, target_key, hash, modified) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (source_id) DO UPDATE SET target_key = excluded.target_key, "
            "hash = excluded.hash, modified = excluded.modified",
            (source_id, entry.key, entry.hash, entry.modified))

    def mirrored(self, source_id: str, entry: Entry, outcome: str) -> None:
        """Record a record written to the target (inside the caller's transaction, with
        what else must land with it)."""
        self._put(source_id, entry)
        self.store.journal.record(JOURNAL_KIND, source_id, done=outcome, target=entry.key)

    def removed(self, source_id: str, outcome: str) -> None:
        """Record a record the mirror no longer holds (deleted, hidden, kept or not ours)."""
        self.db.execute("DELETE FROM mirror WHERE source_id = ?", (source_id,))
        self.store.journal.record(JOURNAL_KIND, source_id, done=outcome)

    def touch(self, source_id: str, modified: str) -> None:
        """A record read again and found unchanged: remember its new modified date, so
        that the next listing does not read it again."""
        self.db.execute("UPDATE mirror SET modified = ? WHERE source_id = ?",
                        (modified, source_id))

    def commit(self, *, watermark: str | None) -> None:
        """End a run: set ``watermark`` and forget the run's journal rows, together."""
        with transaction(self.db):
            self.store.set_meta(WATERMARK, watermark)
            self.store.set_meta(COMMITTED_AT,
                                datetime.now(timezone.utc).isoformat(timespec="seconds"))
            self.store.journal.clear(JOURNAL_KIND)
