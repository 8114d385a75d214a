"""The checkpoint journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkport.checkpoint import Journal
from bulkport.errors import ConfigError
from bulkport.redact import register_secret


def test_replays_finished_units(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.record("dataset", "a", hash="h1")
        journal.record("file", "a/1", size=3)
    with Journal(tmp_path) as journal:
        assert journal.get("dataset", "a")["hash"] == "h1"
        assert journal.get("file", "a/1")["size"] == 3
        assert journal.get("dataset", "b") is None
        assert journal.count("dataset") == 1


def test_torn_last_line_is_dropped(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        journal.record("dataset", "a", hash="h1")
    with (tmp_path / "journal.jsonl").open("ab") as f:
        f.write(b'{"kind": "dataset", "key": "b", "ha')  # killed mid-write
    with Journal(tmp_path) as journal:
        assert journal.get("dataset", "b") is None
        journal.record("dataset", "c", hash="h3")
    with Journal(tmp_path) as journal:
        assert journal.get("dataset", "a") and journal.get("dataset", "c")
    lines = (tmp_path / "journal.jsonl").read_bytes().splitlines()
    assert lines[0] == b'{"journal":1}' and len(lines) == 3  # the format, then a and c


def test_a_journal_states_its_format_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        assert not (tmp_path / "journal.jsonl").read_bytes()  # nothing journaled, no header
        journal.record("dataset", "a", hash="h1")
        journal.clear()
        journal.record("dataset", "b", hash="h2")
    assert (tmp_path / "journal.jsonl").read_bytes().startswith(b'{"journal":1}\n{"kind"')
    (tmp_path / "journal.jsonl").write_bytes(b'{"journal": 2}\n')
    with pytest.raises(ConfigError, match=r"journal.jsonl: written by a newer bulkport \(journal "
                                          r"format 2, this one reads up to 1\)"):
        Journal(tmp_path).__enter__()


def test_a_journal_without_a_format_line_is_read_as_before(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_bytes(b'{"kind": "dataset", "key": "a", "hash": "h1"}\n')
    with Journal(tmp_path) as journal:
        assert journal.get("dataset", "a") == {"kind": "dataset", "key": "a", "hash": "h1"}
        journal.record("dataset", "b", hash="h2")
    with Journal(tmp_path) as journal:
        assert journal.count("dataset") == 2


def test_second_run_on_same_state_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path), pytest.raises(ConfigError, match="another bulkport run"):
        Journal(tmp_path).__enter__()


def test_secrets_never_reach_the_journal(tmp_path: Path) -> None:
    register_secret("journal-secret-123")
    with Journal(tmp_path) as journal:
        journal.record("file", "x", url="https://h.test/f?X-Amz-Signature=zzzz", note="journal-secret-123")
    text = (tmp_path / "journal.jsonl").read_text()
    assert "journal-secret-123" not in text
    assert "zzzz" not in text
