"""The files a run writes (reports, CSV, state, log): checked before the run, written safely.

A regular file is replaced atomically (a temporary file in the same directory, then
``os.replace``), so a reader sees the old content or the new, whole. A symlink is followed:
the file it points to is replaced, in its own directory, and the link stays. Anything else
(a directory, a FIFO, a device, a socket) is refused before the run starts, never replaced:
``--report /dev/full`` must not swap a device node for a JSON file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from bulkport.errors import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: os.umask can only be read by setting it
_KINDS = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO (named pipe)",
          stat.S_ISCHR: "a device", stat.S_ISBLK: "a device", stat.S_ISSOCK: "a socket"}


def _what(mode: int) -> str:
    return next((name for test, name in _KINDS.items() if test(mode)), "not a regular file")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def real_path(path: Path) -> Path:
    """Where writing ``path`` lands: symlinks followed (a dangling one names the file to create)."""
    return Path(os.path.realpath(path))


def check_directory(path: Path, label: str, *, shown: Path | None = None) -> None:
    """Refuse a directory bulkport could not create or write in.

    Args:
        shown: the path the user gave, when ``path`` is the directory it lands in.

    Raises:
        ConfigError: ``path`` is not a directory, or cannot be created or written.
    """
    given = shown or path
    existing = path
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # dangling: mkdir would fail on it
            raise ConfigError(f"{label} {given}: {existing} is a broken symlink")
        existing = existing.parent
    if not existing.is_dir():
        what = "not a directory" if existing == given else f"{existing} is not a directory"
        raise ConfigError(f"{label} {given}: {what}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == given else f" ({existing})"
        raise ConfigError(f"{label} {given}: no permission to write there{where}")


def check_output(path: Path, label: str) -> None:
    """Refuse, before any work, an output bulkport could not write safely.

    Args:
        label: how the message names it, e.g. ``"--report"``.

    Raises:
        ConfigError: one line saying what ``path`` is and why it cannot be written.
    """
    real = real_path(path)
    try:
        mode = real.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):  # the folder check below says which
        mode = None
    except OSError as exc:
        raise ConfigError(f"{label} {path}: {_reason(exc)}") from None
    if mode is not None and not stat.S_ISREG(mode):
        shown = f"{path} (→ {real})" if path.is_symlink() else str(path)
        raise ConfigError(f"{label} {shown}: is {_what(mode)}, not a regular file; name a "
                          "file to write")
    if mode is not None and not os.access(real, os.W_OK):
        raise ConfigError(f"{label} {path}: the file is read-only")
    check_directory(real.parent, label, shown=path)


def check_distinct(paths: dict[str, Path | None]) -> None:
    """Refuse two outputs (or an output and an input) that are one file."""
    seen: dict[Path, str] = {}
    for label, path in paths.items():
        if path is None:
            continue
        real = real_path(path)
        if real in seen:
            raise ConfigError(f"{label} {path}: the same file as {seen[real]}; name another file")
        seen[real] = label


@contextlib.contextmanager
def replacing(path: Path, *, durable: bool = False, label: str = "output") -> Iterator[BinaryIO]:
    """A binary file whose content replaces ``path`` when the block ends without error.

    Args:
        durable: fsync the file and its directory, so the new content survives a power cut.
        label: how an error names the file (it was checked before the run: this is a race).

    Raises:
        ConfigError: ``path`` is not a regular file (it is left as it was) or cannot be written.
    """
    real = real_path(path)
    check_output(path, label)
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"{label} {path}: cannot write: {_reason(exc)}") from None
    try:
        mode = stat.S_IMODE(real.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)  # mkstemp makes it 0600; keep what the file had
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ConfigError(f"{label} {path}: cannot write: {_reason(exc)}") from None
        raise
    if durable:
        directory = os.open(real.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)


def write_atomically(path: Path, data: bytes, *, durable: bool = False,
                     label: str = "output") -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, whole."""
    with replacing(path, durable=durable, label=label) as f:
        f.write(data)
