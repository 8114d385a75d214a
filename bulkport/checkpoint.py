"""The checkpoint journal: what a run has finished, so that a re-run skips it.

One JSON object per line, appended as each unit (a dataset, a file, a token) finishes, in
``<state-dir>/journal.jsonl``; the first line states the format (``{"journal": 1}``). A kill
-9 can tear the last line at most; it is cut off on the next open. Any other unreadable line
stops the run with one line naming the file: a damaged journal is never half-trusted. A lock
file keeps two runs off the same state. Lines hold ids and hashes only: every line passes
through the redactor before it is written. Each module that journals names its kinds of entry
as constants.
"""

from __future__ import annotations

import fcntl
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from bulkport.errors import ConfigError
from bulkport.outputs import check_directory
from bulkport.redact import redact

JOURNAL = "journal.jsonl"
LOCK = "lock"
FORMAT = 1  # read: 0 (no header line, the same entries) and 1


def check_state_dir(path: Path) -> None:
    """Refuse, before any request, a state directory a run could not keep its journal in.

    Raises:
        ConfigError: ``path`` is a file, or cannot be created or written.
    """
    check_directory(path, "state directory")


class Journal:
    """Append-only record of finished units, keyed by ``(kind, key)``.

    Use as a context manager: entering takes the lock and replays the journal.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / JOURNAL
        self._done: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock_fd: int | None = None
        self._file: Any = None
        self._headed = False

    def __enter__(self) -> Journal:
        check_state_dir(self.state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"state directory {self.state_dir}: cannot create it: "
                              f"{exc.strerror}") from None
        for name in (JOURNAL, LOCK):
            path = self.state_dir / name
            if path.exists() and not path.is_file():
                raise ConfigError(f"{path}: not a file, so not bulkport's {name}; move it away "
                                  "or pass another --state-dir")
        self._take_lock()
        self._replay()
        self._file = self.path.open("ab", buffering=0)
        self._headed = self.path.stat().st_size > 0  # written with the first entry
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _take_lock(self) -> None:
        # flock dies with the process, so a run killed with -9 never leaves a stale lock.
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

    def _replay(self) -> None:
        if not self.path.exists():
            return
        good_end, unended = 0, False
        with self.path.open("rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    entry = orjson.loads(line)
                    if number == 1 and isinstance(entry, dict) and "journal" in entry:
                        self._check_format(entry["journal"])
                    elif (isinstance(entry, dict) and isinstance(entry.get("kind"), str)
                          and isinstance(entry.get("key"), str)):
                        self._done[(entry["kind"], entry["key"])] = entry
                    else:
                        raise TypeError("not an entry")
                except (orjson.JSONDecodeError, TypeError):
                    # A crash can tear the last line only, and every line starts an object.
                    if not line.endswith(b"\n") and line.startswith(b"{"):
                        break  # torn last line from a crash: dropped below
                    raise ConfigError(
                        f"{self.path}: line {number} is not a journal entry (the file is "
                        "damaged or not bulkport's); move it away to start over: the next "
                        "run reads the whole source again, nothing is lost") from None
                good_end = f.tell()
                unended = not line.endswith(b"\n")
        if good_end < self.path.stat().st_size:
            with self.path.open("r+b") as f:
                f.truncate(good_end)
        elif good_end and unended:  # whole but cut before its newline: end it, or the next
            with self.path.open("ab") as f:  # entry would be glued onto it
                f.write(b"\n")

    def _check_format(self, version: object) -> None:
        if not isinstance(version, int) or version > FORMAT:
            raise ConfigError(
                f"{self.path}: written by a newer bulkport (journal format {version!r}, this "
                f"one reads up to {FORMAT}); upgrade bulkport or use another --state-dir")

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The journal entry of a finished unit, or None."""
        return self._done.get((kind, key))

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self._done if k == kind)

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """Every entry of one kind, in the order first recorded."""
        return [entry for (k, _), entry in self._done.items() if k == kind]

    def clear(self) -> None:
        """Forget everything: a job that finished for good starts its next run afresh."""
        os.ftruncate(self._file.fileno(), 0)
        self._headed = False
        self._done.clear()

    def record(self, kind: str, key: str, **fields: Any) -> None:
        """Journal a finished unit. The line reaches the OS before this returns, so it
        survives a kill -9 of the process."""
        entry = {"kind": kind, "key": key, **fields,
                 "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        line = redact(orjson.dumps(entry).decode()) + "\n"
        if not self._headed:
            line = orjson.dumps({"journal": FORMAT}).decode() + "\n" + line
            self._headed = True
        self._file.write(line.encode())
        self._done[(kind, key)] = entry
