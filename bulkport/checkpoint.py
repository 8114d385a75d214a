"""The checkpoint journal: what a run has finished, so that a re-run skips it.

Each unit (a dataset, a file, a token) is one row of the state store's ``journal`` table,
keyed by ``(kind, key)`` and committed as the unit finishes, so it survives a kill -9 of the
process; lookups go to the database. Rows hold ids and hashes only: every entry passes
through the redactor before it is written. Each module that journals names its kinds of
entry as constants.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from bulkport.redact import redact

if TYPE_CHECKING:
    from bulkport.store import StateStore


class Journal:
    """Finished units of one state store, keyed by ``(kind, key)``."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.state_dir = store.state_dir
        self.path = store.path

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The journal entry of a finished unit, or None."""
        row = self.store.db.execute("SELECT body FROM journal WHERE kind = ? AND key = ?",
                                    (kind, key)).fetchone()
        return None if row is None else _entry(row[0])

    def find(self, kind: str, ref: str) -> str | None:
        """The key of the entry of ``kind`` recorded with ``ref`` (its second key), or None."""
        row = self.store.db.execute("SELECT key FROM journal WHERE kind = ? AND ref = ? LIMIT 1",
                                    (kind, ref)).fetchone()
        return None if row is None else str(row[0])

    def index_by(self, kind: str, field: str) -> None:
        """Give the entries of ``kind`` without a ``ref`` their ``field`` as one (entries
        imported from an older journal), so that :meth:`find` finds them."""
        self.store.db.execute("UPDATE journal SET ref = json_extract(body, ?) WHERE kind = ? "
                              "AND ref IS NULL", (f"$.{field}", kind))

    def held(self, source_id: str) -> str | None:
        """The target key under which a mirror holds ``source_id`` (None: not held)."""
        row = self.store.db.execute("SELECT target_key FROM mirror WHERE source_id = ?",
                                    (source_id,)).fetchone()
        return None if row is None else str(row[0])

    def holder(self, target_key: str) -> str | None:
        """The source id a mirror holds under ``target_key`` (None: none)."""
        row = self.store.db.execute("SELECT source_id FROM mirror WHERE target_key = ? LIMIT 1",
                                    (target_key,)).fetchone()
        return None if row is None else str(row[0])

    def count(self, kind: str) -> int:
        return int(self.store.db.execute("SELECT count(*) FROM journal WHERE kind = ?",
                                         (kind,)).fetchone()[0])

    def entries(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every entry of one kind, in the order first recorded, read as they are used."""
        # A cursor of its own, so that records written while it is read do not disturb it.
        cursor = self.store.db.execute("SELECT body FROM journal WHERE kind = ? ORDER BY rowid",
                                       (kind,))
        for (body,) in cursor:
            yield _entry(body)

    def clear(self, *kinds: str) -> None:
        """Forget ``kinds`` (every kind when none is named): a job that finished for good
        starts its next run afresh."""
        if kinds:
            self.store.db.execute(f"DELETE FROM journal WHERE kind IN "
                                  f"({', '.join('?' * len(kinds))})", kinds)
        else:
            self.store.db.execute("DELETE FROM journal")

    def record(self, kind: str, key: str, *, ref: str | None = None, **fields: Any) -> None:
        """Journal a finished unit; it is committed before this returns.

        Args:
            ref: a second key :meth:`find` looks the entry up by (e.g. where it was written).
        """
        entry = {"kind": kind, "key": key, **fields,
                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        body = redact(orjson.dumps(entry).decode()).encode()
        self.store.db.execute(
            "INSERT INTO journal (kind, key, ref, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key) DO UPDATE SET ref = excluded.ref, body = excluded.body",
            (kind, key, ref, body))


def _entry(body: bytes | str) -> dict[str, Any]:
    entry = orjson.loads(body)
    assert isinstance(entry, dict)
    return entry
