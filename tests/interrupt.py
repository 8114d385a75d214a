"""Interrupting a run in a subprocess once part of its work is journaled (shared by the
kill -9 and SIGTERM tests)."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from state_rows import count_journaled, runs


def wait_for_journal(proc: subprocess.Popen, state: Path, kind: str | None, count: int,
                     *, timeout: float = 60) -> None:
    """Return once the state store in ``state`` holds ``count`` journal entries of ``kind``
    (None: of any kind), the run ended, or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if count_journaled(state, kind) >= count:
            return
        time.sleep(0.005)


def kill_when_journaled(command: list[str], env: Mapping[str, str], state: Path,
                        kind: str | None, count: int) -> int:
    """Start ``command``, SIGKILL it once its state holds ``count`` entries of ``kind``:
    some, not all, of its work done. Returns the killed process's pid."""
    proc = subprocess.Popen(command, env=dict(env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_journal(proc, state, kind, count)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def kill_at_random_moments(command: list[str], env: Mapping[str, str], *, seed: int,
                           kills: int, longest: float, state: Path | None = None) -> list[float]:
    """Run ``command`` again and again, each time SIGKILLed after a random delay (up to
    ``longest`` seconds, from ``seed``), ``kills`` times (a run that ends sooner is not
    killed). Returns the delays after which a run was killed; the caller runs the command
    once more to its end and compares the result with an uninterrupted run's.

    Args:
        state: when given, each delay counts from the moment the run has begun its history
            row there (its start-up done), so that a slow start on a loaded machine does not
            use up the delays before any work.
    """
    rng = random.Random(seed)
    killed = []
    for _ in range(kills):
        delay = rng.uniform(0.05, longest)
        begun = len(runs(state)) if state is not None else 0
        proc = subprocess.Popen(command, env=dict(env), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if state is not None:
            deadline = time.monotonic() + 60
            while (len(runs(state)) == begun and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.005)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.append(round(delay, 3))
    return killed
