"""Interrupting a run in a subprocess once part of its work is journaled (shared by the
kill -9 and SIGTERM tests)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


def wait_for_journal(proc: subprocess.Popen, journal: Path, marker: bytes, count: int,
                     *, timeout: float = 60) -> None:
    """Return once ``journal`` holds ``count`` occurrences of ``marker``, the run ended, or
    ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(marker) >= count:
            return
        time.sleep(0.005)


def kill_when_journaled(command: list[str], env: Mapping[str, str], journal: Path,
                        marker: bytes, count: int) -> int:
    """Start ``command``, SIGKILL it once ``journal`` holds ``count`` ``marker``s: some,
    not all, of its work done. Returns the killed process's pid."""
    proc = subprocess.Popen(command, env=dict(env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_journal(proc, journal, marker, count)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid
