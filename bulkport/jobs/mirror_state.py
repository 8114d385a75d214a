"""What a mirror remembers between runs, and the diff and guards of one run.

``<state-dir>/mirror.json`` holds the watermark (the newest source modified date of the last
successful run) and the map of every source record the mirror holds on the target: its key
there, the hash of its content, its modified date at the source. The file is only ever
replaced whole (temp file, fsync, ``os.replace``), at the end of a run, so a killed run leaves
the previous one intact. During a run, progress goes to the checkpoint journal instead; the
next run replays it on top of the file, and a finished run folds it into the file and
empties the journal, so neither grows with the number of runs.

A run's diff is rclone's march reduced to ids: records listed by the source but not held
(or held with another modified date) are read in full; records held but no longer listed
are deletion candidates, which the guards may refuse as a whole.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import orjson

from bulkport.checkpoint import Journal
from bulkport.errors import ConfigError
from bulkport.moments import canonical_time
from bulkport.outputs import write_atomically
from bulkport.portals.base import Listing
from bulkport.redact import safe_url

STATE_FILE = "mirror.json"
REPORTS_DIR = "reports"
FORMAT = 1
JOURNAL_KIND = "mirror"  # one journal line per record written or removed


@dataclass
class Entry:
    """One record held on the target."""

    key: str  # where it is on the target (CKAN name, Opendatasoft dataset_id)
    hash: str  # fingerprint of the pivot record last written
    modified: str | None  # its modified date at the source then (canonical form)


@dataclass
class MirrorState:
    """The watermark and the source → target map of one mirror job."""

    source: str
    target: str
    watermark: str | None = None
    committed_at: str | None = None
    datasets: dict[str, Entry] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path, *, source: str, target: str) -> MirrorState:
        """Read the state of ``state_dir`` (an empty one on the first run).

        Args:
            source, target: the portals' URLs (kept without user info or query, so that
                no credential a URL may carry is written to disk).

        Raises:
            ConfigError: the file is unreadable, was written by a newer bulkport, or belongs
                to a mirror of other portals.
        """
        source, target = safe_url(source, keep_query=False), safe_url(target, keep_query=False)
        path = state_dir / STATE_FILE
        if not path.exists():
            return cls(source=source, target=target)
        saved = _read(path)
        if (saved.source, saved.target) != (source, target):
            raise ConfigError(
                f"{path}: this state belongs to the mirror {saved.source} → "
                f"{saved.target}, not {source} → {target}; pass another --state-dir")
        return cls(source=source, target=target, watermark=saved.watermark,
                   committed_at=saved.committed_at,
                   datasets={sid: Entry(*row) for sid, row in saved.datasets.items()})

    def replay(self, journal: Journal) -> int:
        """Apply what an interrupted run journaled; return how many records it touched."""
        entries = journal.entries(JOURNAL_KIND)  # the last line of each record wins
        for entry in entries:
            if entry.get("removed"):
                self.datasets.pop(entry["key"], None)
            elif isinstance(entry.get("target"), str) and isinstance(entry.get("hash"), str):
                self.datasets[entry["key"]] = Entry(entry["target"], entry["hash"],
                                                    entry.get("modified"))
            else:
                raise ConfigError(f"{journal.path}: a {JOURNAL_KIND} entry for {entry['key']!r} "
                                  f"has no target or hash (the file is damaged); {_RECOVER}")
        return len(entries)

    def mirrored(self, journal: Journal, source_id: str, entry: Entry) -> None:
        """Record a record written to the target (journaled at once, committed later)."""
        journal.record(JOURNAL_KIND, source_id, target=entry.key, hash=entry.hash,
                       modified=entry.modified)
        self.datasets[source_id] = entry

    def removed(self, journal: Journal, source_id: str, outcome: str) -> None:
        """Record a record the mirror no longer holds (deleted, hidden or not ours)."""
        journal.record(JOURNAL_KIND, source_id, removed=outcome)
        self.datasets.pop(source_id, None)

    def commit(self, state_dir: Path, journal: Journal, *, watermark: str | None) -> None:
        """Write the state atomically with ``watermark``, then empty the journal.

        A kill between the two leaves a journal that replays to the same state.
        """
        self.watermark = watermark
        self.committed_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        body = {"format": FORMAT, "source": self.source, "target": self.target,
                "watermark": self.watermark, "committed_at": self.committed_at,
                "datasets": {sid: list(asdict(e).values())
                             for sid, e in sorted(self.datasets.items())}}
        write_atomically(state_dir / STATE_FILE, orjson.dumps(body), durable=True,
                         label="mirror state")
        journal.clear()


class _Saved(msgspec.Struct, kw_only=True):
    """The shape of ``mirror.json``: anything else is a damaged file, refused whole."""

    format: int = FORMAT
    source: str | None = None
    target: str | None = None
    watermark: str | None = None
    committed_at: str | None = None
    datasets: dict[str, tuple[str, str, str | None]]


_RECOVER = ("move it away to start over: the next run reads the whole source again and "
            "finds its copies on the target, nothing is lost")


def _read(path: Path) -> _Saved:
    if not path.is_file():
        raise ConfigError(f"{path}: not a file, so not a mirror state; {_RECOVER}")
    try:
        raw = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the mirror state: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: unreadable mirror state (not JSON: {exc}); "
                          f"{_RECOVER}") from None
    version = raw.get("format") if isinstance(raw, dict) else None
    if isinstance(version, int) and version > FORMAT:
        raise ConfigError(f"{path}: written by a newer bulkport (state format {version}); "
                          "upgrade bulkport to use it")
    try:
        return msgspec.convert(raw, _Saved)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: unreadable mirror state ({_shape(str(exc))}); "
                          f"{_RECOVER}") from None


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


@dataclass
class Plan:
    """One run's diff between the source listing and the state."""

    listed: int
    fetch: set[str]  # listed ids new to the mirror or with another modified date
    gone: set[str]  # held ids the source no longer lists (deletion candidates)
    watermark: str | None  # the newest modified date listed


def march(listing: Listing, state: MirrorState) -> Plan:
    """Compare the source's ids and dates with what the mirror holds."""
    fetch: set[str] = set()
    newest: str | None = None
    for sid, modified in listing.modified.items():
        stamp = canonical_time(modified)
        if stamp is not None and (newest is None or stamp > newest):
            newest = stamp
        held = state.datasets.get(sid)
        if held is None or stamp is None or held.modified != stamp:
            fetch.add(sid)
    gone = set(state.datasets) - set(listing.modified)
    return Plan(listed=len(listing.modified), fetch=fetch, gone=gone, watermark=newest)


@dataclass(frozen=True)
class Guards:
    """How much one run may delete."""

    max_fraction: float = 0.10
    max_count: int = 0  # 0: no limit by count


def refusal(plan: Plan, held: int, guards: Guards) -> str | None:
    """Why the run must not delete (then it deletes nothing), or None when it may."""
    if plan.listed == 0 and held:
        return (f"the source lists 0 datasets while the mirror holds {held:,}: refusing to "
                "delete anything (a source outage or a wrong filter?)")
    count = len(plan.gone)
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


def report_path(state_dir: Path, started: datetime) -> Path:
    """A new file under ``<state-dir>/reports/`` named after the run's start (UTC)."""
    folder = state_dir / REPORTS_DIR
    stem = started.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path, n = folder / f"{stem}.json", 1
    while path.exists():  # two runs in one second (a dry run, then the real one)
        n += 1
        path = folder / f"{stem}-{n}.json"
    return path


def prune_reports(state_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest run reports; return those deleted."""
    folder = state_dir / REPORTS_DIR
    if keep <= 0 or not folder.is_dir():
        return []
    # Only the run reports themselves: a link or a folder named *.json is not one of them.
    reports = sorted((p for p in folder.glob("*.json") if p.is_file() and not p.is_symlink()),
                     key=lambda p: (p.stat().st_mtime, p.name))
    old = reports[:-keep]
    for path in old:
        path.unlink(missing_ok=True)
    return old
