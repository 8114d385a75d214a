"""The check every end-to-end test makes: no key in what a user can read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from state_rows import every_byte


def assert_no_key(capsys: Any, state: Path, *keys: str) -> None:
    """None of ``keys`` in the run's output or in any file of its state directory (its
    database, WAL and reports included)."""
    output = capsys.readouterr()
    for data in (output.out.encode(), output.err.encode(), every_byte(state)):
        for key in keys:
            assert key.encode() not in data
