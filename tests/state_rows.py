"""Reading a run's state store from a test, as a second process would while it runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from bulkport.store import DATABASE


def _query(state: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    path = state / DATABASE
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # created but its tables not yet
        return []
    finally:
        db.close()


def count_journaled(state: Path, kind: str | None = None) -> int:
    """Journal entries of ``kind`` (None: all) in ``state``."""
    if kind is None:
        rows = _query(state, "SELECT count(*) FROM journal")
    else:
        rows = _query(state, "SELECT count(*) FROM journal WHERE kind = ?", (kind,))
    return int(rows[0][0]) if rows else 0


def journaled(state: Path, kind: str) -> list[dict[str, Any]]:
    """The journal entries of ``kind``, in the order first recorded."""
    return [orjson.loads(body) for (body,) in _query(
        state, "SELECT body FROM journal WHERE kind = ? ORDER BY rowid", (kind,))]


def runs(state: Path) -> list[dict[str, Any]]:
    """The history's runs, oldest first."""
    names = ("id", "kind", "dry_run", "exit_code", "aborted")
    return [dict(zip(names, row, strict=True)) for row in _query(
        state, "SELECT id, kind, dry_run, exit_code, aborted FROM runs ORDER BY id")]


def every_byte(state: Path) -> bytes:
    """Everything the state directory holds, database and its WAL included (for leak
    checks)."""
    return b"".join(p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file())
