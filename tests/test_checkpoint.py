"""The state store and the checkpoint journal on it."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bulkport.errors import ConfigError
from bulkport.redact import register_secret
from bulkport.store import DATABASE, StateStore, transaction


def test_replays_finished_units(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        store.journal.record("dataset", "a", hash="h1")
        store.journal.record("file", "a/1", size=3)
    with StateStore(tmp_path) as store:
        journal = store.journal
        assert journal.get("dataset", "a")["hash"] == "h1"
        assert journal.get("file", "a/1")["size"] == 3
        assert journal.get("dataset", "b") is None
        assert journal.count("dataset") == 1
        assert [e["key"] for e in journal.entries("dataset")] == ["a"]


def test_entries_keep_their_first_order_and_a_second_key(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        journal = store.journal
        for key in ("c", "a", "b"):
            journal.record("id", key, ref=f"target-{key}", n=1)
        journal.record("id", "c", ref="target-c2", n=2)  # rewritten: keeps its place
        assert [(e["key"], e["n"]) for e in journal.entries("id")] == [
            ("c", 2), ("a", 1), ("b", 1)]
        assert journal.find("id", "target-c2") == "c"
        assert journal.find("id", "target-c") is None
        journal.clear("id")
        assert journal.count("id") == 0


def test_a_unit_committed_survives_a_kill_9(tmp_path: Path) -> None:
    """Each record is committed when record() returns: a process killed right after it
    (no close, no flush) leaves it in the store."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from bulkport.store import StateStore\n"
        "store = StateStore(Path(sys.argv[1])).__enter__()\n"
        "for n in range(200):\n"
        "    store.journal.record('dataset', str(n), hash='h')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)])
    assert proc.returncode == -signal.SIGKILL
    with StateStore(tmp_path) as store:  # the killed run's lock died with it
        assert store.journal.count("dataset") == 200


def test_a_transaction_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        with pytest.raises(RuntimeError), transaction(store.db):
            store.journal.record("dataset", "a", hash="h1")
            raise RuntimeError("killed between the two")
        assert store.journal.get("dataset", "a") is None


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    with StateStore(tmp_path):
        pass
    db = sqlite3.connect(tmp_path / DATABASE)
    db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(ConfigError, match=r"state.sqlite: written by a newer bulkport \(state "
                                          r"format 7, this one reads up to 1\)"):
        StateStore(tmp_path).__enter__()


def test_a_damaged_database_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / DATABASE).write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ConfigError, match=r"state.sqlite: unreadable state database .* move it "
                                          r"away to start over"):
        StateStore(tmp_path).__enter__()


def test_second_run_on_same_state_is_refused(tmp_path: Path) -> None:
    with StateStore(tmp_path), pytest.raises(ConfigError, match="another bulkport run"):
        StateStore(tmp_path).__enter__()
    with StateStore(tmp_path), StateStore(tmp_path, shared=True) as reader:
        assert reader.journal.count("dataset") == 0  # readers are not refused


def test_secrets_never_reach_the_store(tmp_path: Path) -> None:
    register_secret("journal-secret-123")
    with StateStore(tmp_path) as store:
        store.journal.record("file", "x", url="https://h.test/f?X-Amz-Signature=zzzz",
                             note="journal-secret-123")
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"journal-secret-123" not in stored
    assert b"zzzz" not in stored


# ---- state files of earlier versions ----

def test_an_old_journal_is_imported_once_with_a_line(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    old = tmp_path / "journal.jsonl"
    old.write_bytes(b'{"journal":1}\n{"kind":"dataset","key":"a","hash":"h1"}\n'
                    b'{"kind":"dataset","key":"b","hash":"h2"}\n'
                    b'{"kind":"dataset","key":"c","ha')  # torn by a kill: not finished
    with caplog.at_level(logging.WARNING, "bulkport"), StateStore(tmp_path) as store:
        assert store.journal.get("dataset", "a") == {"kind": "dataset", "key": "a", "hash": "h1"}
        assert store.journal.count("dataset") == 2
    assert f"{old}: imported 2 entries into the state database" in caplog.text
    assert not old.exists() and (tmp_path / "journal.jsonl.imported").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "bulkport"), StateStore(tmp_path) as store:
        assert store.journal.count("dataset") == 2
    assert "imported" not in caplog.text


def test_an_old_journal_without_a_format_line_is_read_as_before(tmp_path: Path) -> None:
    (tmp_path / "journal.jsonl").write_bytes(b'{"kind": "dataset", "key": "a", "hash": "h1"}')
    with StateStore(tmp_path) as store:
        assert store.journal.get("dataset", "a") == {"kind": "dataset", "key": "a", "hash": "h1"}


def test_an_import_killed_before_the_rename_is_not_repeated(tmp_path: Path) -> None:
    old = tmp_path / "journal.jsonl"
    old.write_bytes(b'{"kind":"dataset","key":"a","hash":"h1"}\n')
    with StateStore(tmp_path) as store:
        store.journal.record("dataset", "a", hash="h2")  # newer work after the import
    (tmp_path / "journal.jsonl.imported").rename(old)  # as if killed before the rename
    with StateStore(tmp_path) as store:
        assert store.journal.get("dataset", "a")["hash"] == "h2"
    assert not old.exists()


@pytest.mark.parametrize(("content", "message"), [
    (b'{"journal": 2}\n', r"journal.jsonl: written by a newer bulkport \(journal format 2, "
                          r"this one reads up to 1\)"),
    (b'{"kind":"dataset","key":"a"}\nnot json\n{"kind":"dataset","key":"b"}\n',
     r"journal.jsonl: line 2 is not a journal entry \(the file is damaged or not bulkport's\); "
     r"move it away to start over"),
])
def test_a_damaged_or_newer_old_journal_is_refused(tmp_path: Path, content: bytes,
                                                  message: str) -> None:
    (tmp_path / "journal.jsonl").write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        StateStore(tmp_path).__enter__()
    assert (tmp_path / "journal.jsonl").exists()  # left as it was
    with StateStore(tmp_path, shared=True) as reader:  # and nothing half-imported
        assert reader.journal.count("dataset") == 0


def test_the_store_is_private_to_its_user(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state"):
        pass
    mode = os.stat(tmp_path / "state" / DATABASE).st_mode & 0o777
    assert mode & 0o007 == 0  # no access for others: it holds ids and URLs of private data
