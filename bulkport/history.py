"""Every run of a job and each record it acted on, kept in the state store.

A run gets its row when it starts (dry runs and refused runs included) and its outcome when
it ends; each dataset, file and token it created, updated, deleted, hid, revoked or failed
on gets an action row with the source and target ids and URLs. Nothing is replaced by a
later run: ``bulkport history`` lists the runs, ``bulkport show`` one run's actions, and
``bulkport export --redirects`` the old → new URLs a migration leaves behind. URLs are kept
without user info or credentials in their query; reasons pass through the redactor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import orjson

from bulkport import __version__
from bulkport.redact import redact, safe_url
from bulkport.store import StateStore, transaction

# What a record became; the redirect map follows the latest of these per record.
WRITTEN = ("created", "updated", "unchanged")
REMOVED = ("deleted", "hidden")
ENTITIES = ("dataset", "file", "token")


@dataclass(frozen=True)
class Run:
    """One row of the history."""

    id: int
    started: str
    ended: str | None
    job: str | None
    name: str | None
    kind: str | None
    dry_run: bool
    source: str | None
    target: str | None
    version: str | None
    exit_code: int | None
    aborted: str | None
    counts: Mapping[str, int]
    failures: int | None
    report: str | None
    pruned: bool


@dataclass(frozen=True)
class Action:
    """One record a run acted on."""

    run: int
    entity: str
    action: str
    source_id: str | None
    source_url: str | None
    target_id: str | None
    target_url: str | None
    parent: str | None
    reason: str | None
    extra: Mapping[str, Any]


_RUN_COLUMNS = ("id, started, ended, job, name, kind, dry_run, source, target, version, "
                "exit_code, aborted, counts, failures, report, pruned")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _url(url: str | None) -> str | None:
    return safe_url(url) if url else None


class History:
    """The runs and actions of one state store."""

    def __init__(self, store: StateStore) -> None:
        self.db = store.db

    def begin(self, *, job: str, name: str, kind: str, dry_run: bool, source: str | None,
              target: str | None, options: Mapping[str, Any], started: datetime) -> int:
        """Add the row of a run that starts; return its id."""
        cursor = self.db.execute(
            "INSERT INTO runs (started, job, name, kind, dry_run, source, target, version, "
            "options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (started.astimezone(timezone.utc).isoformat(timespec="seconds"), job, name, kind,
             int(dry_run), _url(source), _url(target), __version__,
             redact(orjson.dumps(dict(options)).decode())))
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end(self, run: int, *, exit_code: int, aborted: str | None, counts: Mapping[str, int],
            failures: int, report: str | None) -> None:
        """Record how a run ended."""
        self.db.execute(
            "UPDATE runs SET ended = ?, exit_code = ?, aborted = ?, counts = ?, failures = ?, "
            "report = ? WHERE id = ?",
            (_now(), exit_code, redact(aborted) if aborted else None,
             orjson.dumps(dict(counts)), failures, report, run))

    def act(self, run: int, entity: str, action: str, *, source_id: str | None = None,
            source_url: str | None = None, target_id: str | None = None,
            target_url: str | None = None, parent: str | None = None,
            reason: str | None = None, **extra: Any) -> None:
        """Record one record acted on (committed at once, as the journal is)."""
        self.db.execute(
            "INSERT INTO actions (run, entity, action, source_id, source_url, target_id, "
            "target_url, parent, reason, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run, entity, action, source_id, _url(source_url), target_id, _url(target_url),
             parent, redact(reason) if reason else None,
             redact(orjson.dumps(extra).decode()) if extra else None))

    def runs(self) -> list[Run]:
        """Every run, oldest first."""
        return [_run(row) for row in self.db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id")]

    def get(self, run: int) -> Run | None:
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run,)).fetchone()
        return None if row is None else _run(row)

    def last(self) -> Run | None:
        """The newest run."""
        row = self.db.execute(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT 1"
                              ).fetchone()
        return None if row is None else _run(row)

    def actions(self, run: int, *, actions: tuple[str, ...] = (),
                entities: tuple[str, ...] = ()) -> Iterator[Action]:
        """What ``run`` did, in order (only ``actions`` of ``entities`` when given)."""
        where, params = ["run = ?"], [run]
        for column, values in (("action", actions), ("entity", entities)):
            if values:
                where.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)  # type: ignore[arg-type]
        for row in self.db.execute(
                "SELECT run, entity, action, source_id, source_url, target_id, target_url, "
                f"parent, reason, extra FROM actions WHERE {' AND '.join(where)} ORDER BY id",
                params):
            run_id, entity, action, source_id, source_url, target_id, target_url, parent, \
                reason, extra = row
            yield Action(run_id, entity, action, source_id, source_url, target_id, target_url,
                         parent, reason, orjson.loads(extra) if extra else {})

    def action_counts(self, run: int) -> dict[tuple[str, str], int]:
        """(entity, action) → how many, for one run."""
        return {(entity, action): n for entity, action, n in self.db.execute(
            "SELECT entity, action, count(*) FROM actions WHERE run = ? GROUP BY 1, 2",
            (run,))}

    def locations(self) -> Iterator[tuple[str, str, str]]:
        """(entity, old URL, new URL) of every dataset and file the job's real runs wrote
        and still hold: the latest action per record decides, across runs, so a migration
        resumed over several runs maps all of it and a later deletion drops the entry."""
        latest = (
            "SELECT a.id, a.entity, a.source_url, a.target_url FROM actions AS a JOIN runs AS r "
            "ON r.id = a.run WHERE r.dry_run = 0 AND a.entity IN ('dataset', 'file') AND "
            "a.id = (SELECT max(b.id) FROM actions AS b WHERE b.entity = a.entity AND "
            "b.source_id = a.source_id AND coalesce(b.parent, '') = coalesce(a.parent, '') "
            f"AND b.action IN ({_quoted(WRITTEN + REMOVED)})) "
            f"AND a.action IN ({_quoted(WRITTEN)}) AND a.source_url IS NOT NULL AND "
            "a.target_url IS NOT NULL")
        # One entry per old URL (two records sharing one: the first written wins).
        yield from self.db.execute(
            "SELECT entity, source_url, target_url FROM (SELECT entity, source_url, "
            f"target_url, min(id) AS first FROM ({latest}) GROUP BY source_url) ORDER BY first")

    def prune(self, keep: int) -> list[str]:
        """Keep the reports and actions of the ``keep`` newest runs; drop older runs'
        (their history rows stay, marked pruned). Returns the report files to delete."""
        if keep <= 0:
            return []
        old = self.db.execute(
            "SELECT id, report FROM runs WHERE pruned = 0 AND id NOT IN "
            "(SELECT id FROM runs ORDER BY id DESC LIMIT ?)", (keep,)).fetchall()
        with transaction(self.db):
            for run, _ in old:
                self.db.execute("DELETE FROM actions WHERE run = ?", (run,))
                self.db.execute("UPDATE runs SET pruned = 1 WHERE id = ?", (run,))
        return [report for _, report in old if report]


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _run(row: tuple[Any, ...]) -> Run:
    values = list(row)
    values[6] = bool(values[6])
    values[12] = orjson.loads(values[12]) if values[12] else {}
    values[15] = bool(values[15])
    return Run(*values)
