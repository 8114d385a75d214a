"""One state store per state directory: an SQLite database that one run writes at a time.

``<state-dir>/state.sqlite`` holds what runs finished (the journal, :mod:`bulkport.checkpoint`),
what a mirror holds on its target (:mod:`bulkport.jobs.mirror_state`), and every run with each
record it acted on (:mod:`bulkport.history`). It runs in WAL mode, one transaction per
finished unit: a committed unit survives a kill -9 of the process, a torn one never
happened, and lookups go to the database, so memory does not grow with the catalog. A lock
file keeps two runs off one state; ``flock`` dies with its process, so a killed run leaves
no stale lock. The format is ``PRAGMA user_version``; earlier state files (``journal.jsonl``,
``mirror.json``) are imported once (:mod:`bulkport.legacy`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bulkport.checkpoint import Journal
from bulkport.errors import ConfigError
from bulkport.outputs import check_directory

DATABASE = "state.sqlite"
LOCK = "lock"
FORMAT = 1
BUSY_MS = 10_000  # a reader (history, show) or a refused run's history row waits this long

log = logging.getLogger("bulkport")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
-- finished units: (kind, key) → the entry, ref a second key some kinds look up by
CREATE TABLE IF NOT EXISTS journal (
    kind TEXT NOT NULL, key TEXT NOT NULL, ref TEXT, body BLOB NOT NULL,
    PRIMARY KEY (kind, key));
CREATE INDEX IF NOT EXISTS journal_ref ON journal (kind, ref) WHERE ref IS NOT NULL;
-- a mirror's records on its target
CREATE TABLE IF NOT EXISTS mirror (
    source_id TEXT PRIMARY KEY, target_key TEXT NOT NULL, hash TEXT NOT NULL, modified TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS mirror_target ON mirror (target_key);
-- one mirror run's listing of the source (emptied when the next run lists)
CREATE TABLE IF NOT EXISTS listing (
    source_id TEXT PRIMARY KEY, modified TEXT, listed INTEGER NOT NULL DEFAULT 1,
    seen INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started TEXT NOT NULL, ended TEXT, job TEXT, name TEXT,
    kind TEXT, dry_run INTEGER NOT NULL DEFAULT 0, source TEXT, target TEXT, version TEXT,
    options BLOB, exit_code INTEGER, aborted TEXT, counts BLOB, failures INTEGER,
    report TEXT, pruned INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY, run INTEGER NOT NULL REFERENCES runs (id), entity TEXT NOT NULL,
    action TEXT NOT NULL, source_id TEXT, source_url TEXT, target_id TEXT, target_url TEXT,
    parent TEXT, reason TEXT, extra BLOB);
CREATE INDEX IF NOT EXISTS actions_run ON actions (run, action);
CREATE INDEX IF NOT EXISTS actions_record ON actions (entity, source_id);
"""


def check_state_dir(path: Path) -> None:
    """Refuse, before any request, a state directory a run could not keep its state in.

    Raises:
        ConfigError: ``path`` is a file, or cannot be created or written.
    """
    check_directory(path, "state directory")


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode: each statement is its own transaction unless
    :func:`transaction` groups several."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
    return db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Statements that land together or not at all."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _create(db: sqlite3.Connection) -> None:
    """The tables, and the format they are in, made together (executescript would commit
    before each statement)."""
    with transaction(db):
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {FORMAT}")


class StateStore:
    """The state of one job. Use as a context manager: entering takes the lock (unless
    ``shared``), opens or creates the database and imports older state files."""

    def __init__(self, state_dir: Path | None, *, shared: bool = False) -> None:
        """Args:
            state_dir: None for a throw-away store in memory (verify, tests).
            shared: open without the lock, to read (history, show, export) or to add the
                history row of a run that was refused.
        """
        self.state_dir = state_dir
        self.shared = shared
        self.path = state_dir / DATABASE if state_dir is not None else None
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "the state store is not open"
        return self._db

    @property
    def journal(self) -> Journal:
        return Journal(self)

    def __enter__(self) -> StateStore:
        if self.state_dir is None or self.path is None:
            self._db = connect(":memory:")
            _create(self._db)
            return self
        check_state_dir(self.state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"state directory {self.state_dir}: cannot create it: "
                              f"{exc.strerror}") from None
        for name in (DATABASE, LOCK):
            path = self.state_dir / name
            if path.exists() and not path.is_file():
                raise ConfigError(f"{path}: not a file, so not bulkport's {name}; move it away "
                                  "or pass another --state-dir")
        if not self.shared:
            self._take_lock()
        try:
            self._open()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _take_lock(self) -> None:
        assert self.state_dir is not None
        fd = os.open(self.state_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"{self.state_dir}: another bulkport run (pid {holder}) is using this state "
                "directory; wait for it to finish or pass a different --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _open(self) -> None:
        assert self.path is not None and self.state_dir is not None
        if not self.path.exists():
            # Private to its user: it holds ids and URLs of private datasets. SQLite gives
            # its -wal and -shm files the database file's mode.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            self._db = db = connect(self.path)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > FORMAT:
                raise ConfigError(
                    f"{self.path}: written by a newer bulkport (state format {version}, this "
                    f"one reads up to {FORMAT}); upgrade bulkport or use another --state-dir")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # in WAL: durable across a crash of
            # the process at every commit; only a power cut may lose the last ones
            db.execute("PRAGMA foreign_keys = ON")
            if version < FORMAT:
                _create(db)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: unreadable state database ({exc}); move it away "
                              "to start over: the next run reads the whole source again and "
                              "finds its copies on the target, nothing is lost") from None
        if not self.shared:
            from bulkport.legacy import import_old_files

            for line in import_old_files(self.state_dir, db):
                log.warning("%s", line)

    def meta(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0]) if row[0] is not None else None

    def set_meta(self, name: str, value: str | None) -> None:
        self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                        "DO UPDATE SET value = excluded.value", (name, value))
