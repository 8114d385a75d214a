"""State files of earlier bulkport versions, imported once into the state store.

``journal.jsonl`` (one JSON entry per line, a first line ``{"journal": 1}`` or none) and
``mirror.json`` (the mirror's watermark and source → target map, written whole) are read
into the database in one transaction, which also notes that they were; then each file is
renamed ``*.imported``. A kill between the two leaves the note, so nothing is imported twice.
A damaged file stops the run with one line, as it did before: it is never half-trusted.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson

from bulkport.errors import ConfigError

JOURNAL_FILE = "journal.jsonl"
MIRROR_FILE = "mirror.json"
JOURNAL_FORMAT = 1  # read: 0 (no header line, the same entries) and 1
MIRROR_FORMAT = 1
OLD_MIRROR_KIND = "mirror"  # an old journal's entries for a mirror's records
RECOVER = ("move it away to start over: the next run reads the whole source again and "
           "finds its copies on the target, nothing is lost")


def import_old_files(state_dir: Path, db: sqlite3.Connection) -> list[str]:
    """Import what ``state_dir`` holds in the old formats; return a line for each file."""
    from bulkport.store import transaction

    lines = []
    # The mirror's map first: an interrupted run's journal entries apply on top of it.
    for name, read in ((MIRROR_FILE, _mirror_rows), (JOURNAL_FILE, _journal_rows)):
        path = state_dir / name
        if not path.exists() and not path.is_symlink():
            continue
        done = db.execute("SELECT 1 FROM meta WHERE name = ?", (f"imported {name}",)).fetchone()
        if done is None:
            rows = read(path)
            with transaction(db):
                count = rows(db)
                db.execute("INSERT INTO meta (name, value) VALUES (?, '1')", (f"imported {name}",))
            lines.append(f"{path}: imported {count:,} entries into the state database "
                         f"{state_dir / 'state.sqlite'}; the old file is kept as {name}.imported")
        path.replace(path.with_name(name + ".imported"))
    return lines


Writer = Callable[[sqlite3.Connection], int]  # writes the rows, returns how many


def _journal_rows(path: Path) -> Writer:
    def write(db: sqlite3.Connection) -> int:
        count = 0
        for entry in _read_journal(path):  # streamed: an old journal can be large
            count += 1
            if entry["kind"] == OLD_MIRROR_KIND:
                _fold_mirror_entry(db, path, entry)
                continue
            db.execute("INSERT INTO journal (kind, key, body) VALUES (?, ?, ?) ON CONFLICT "
                       "(kind, key) DO UPDATE SET body = excluded.body",
                       (entry["kind"], entry["key"], orjson.dumps(entry)))
        return count

    return write


def _read_journal(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"{path}: not a file, so not bulkport's journal; move it away "
                          "or pass another --state-dir")
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            try:
                entry = orjson.loads(line)
                if number == 1 and isinstance(entry, dict) and "journal" in entry:
                    version = entry["journal"]
                    if not isinstance(version, int) or version > JOURNAL_FORMAT:
                        raise ConfigError(
                            f"{path}: written by a newer bulkport (journal format {version!r}, "
                            f"this one reads up to {JOURNAL_FORMAT}); upgrade bulkport or use "
                            "another --state-dir")
                elif (isinstance(entry, dict) and isinstance(entry.get("kind"), str)
                      and isinstance(entry.get("key"), str)):
                    yield entry
                else:
                    raise TypeError("not an entry")
            except (orjson.JSONDecodeError, TypeError):
                # A crash can tear the last line only, and every line starts an object.
                if not line.endswith(b"\n") and line.startswith(b"{"):
                    return  # torn last line from a crash: that unit was not finished
                raise ConfigError(
                    f"{path}: line {number} is not a journal entry (the file is damaged or "
                    f"not bulkport's); {RECOVER}") from None


def _fold_mirror_entry(db: sqlite3.Connection, path: Path, entry: dict[str, Any]) -> None:
    """What an interrupted mirror run journaled, applied to the mirror's map (its
    watermark stays: that run did not finish)."""
    if entry.get("removed"):
        db.execute("DELETE FROM mirror WHERE source_id = ?", (entry["key"],))
    elif isinstance(entry.get("target"), str) and isinstance(entry.get("hash"), str):
        db.execute("INSERT OR REPLACE INTO mirror (source_id, target_key, hash, modified) "
                   "VALUES (?, ?, ?, ?)", (entry["key"], entry["target"], entry["hash"],
                                           entry.get("modified")))
    else:
        raise ConfigError(f"{path}: a {OLD_MIRROR_KIND} entry for {entry['key']!r} has no "
                          f"target or hash (the file is damaged); {RECOVER}")


class _Saved(msgspec.Struct, kw_only=True):
    """The shape of ``mirror.json``: anything else is a damaged file, refused whole."""

    format: int = MIRROR_FORMAT
    source: str | None = None
    target: str | None = None
    watermark: str | None = None
    committed_at: str | None = None
    datasets: dict[str, tuple[str, str, str | None]]


def _mirror_rows(path: Path) -> Writer:
    saved = _read_mirror(path)

    def write(db: sqlite3.Connection) -> int:
        for name in ("source", "target", "watermark", "committed_at"):
            db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO "
                       "UPDATE SET value = excluded.value", (f"mirror {name}",
                                                             getattr(saved, name)))
        db.executemany("INSERT OR REPLACE INTO mirror (source_id, target_key, hash, modified) "
                       "VALUES (?, ?, ?, ?)",
                       ((sid, *row) for sid, row in saved.datasets.items()))
        return len(saved.datasets)

    return write


def _read_mirror(path: Path) -> _Saved:
    if not path.is_file():
        raise ConfigError(f"{path}: not a file, so not a mirror state; {RECOVER}")
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the mirror state: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: unreadable mirror state (not JSON: {exc}); "
                          f"{RECOVER}") from None
    version = raw.get("format") if isinstance(raw, dict) else None
    if isinstance(version, int) and version > MIRROR_FORMAT:
        raise ConfigError(f"{path}: written by a newer bulkport (state format {version}); "
                          "upgrade bulkport to use it")
    try:
        return msgspec.convert(raw, _Saved)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: unreadable mirror state ({_shape(str(exc))}); "
                          f"{RECOVER}") from None


def _shape(message: str) -> str:
    """msgspec's "Expected `object`, got `array` - at `$.datasets`", said for a person."""
    found = re.match(r"^(?P<what>.*?)(?: - at `\$\.?(?P<where>[^`]*)`)?$", message)
    assert found is not None  # the pattern matches any text
    where, what = found["where"] or "the file", found["what"]
    types = re.match(r"^Expected `([^`]+)`, got `([^`]+)`$", what)
    if types:
        return f"{where} must be {types[1]}, not {types[2]}"
    what = what.replace("`", "")
    return f"{where}: {what[:1].lower()}{what[1:]}"
