"""The check every end-to-end test makes: no key in what a user can read."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def assert_no_key(capsys: Any, state: Path, *keys: str) -> None:
    """None of ``keys`` in the run's output or in a file of its state directory."""
    output = capsys.readouterr()
    for text in (output.out, output.err, *(p.read_text() for p in state.iterdir() if p.is_file())):
        for key in keys:
            assert key not in text
