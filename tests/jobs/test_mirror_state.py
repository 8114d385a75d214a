"""The mirror's state, diff and guards, without any portal."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from bulkport.checkpoint import Journal
from bulkport.errors import ConfigError
from bulkport.jobs.mirror_state import (
    STATE_FILE,
    Entry,
    Guards,
    MirrorState,
    march,
    prune_reports,
    refusal,
    report_path,
)
from bulkport.moments import canonical_time
from bulkport.portals.base import Listing

SRC, DST = "https://source.example", "https://target.example"


def test_one_moment_in_every_spelling_compares_equal() -> None:
    spellings = ["2024-05-01T12:00:00.123456", "2024-05-01T12:00:00.123Z",
                 "2024-05-01T14:00:00.123+02:00", " 2024-05-01T12:00:00.1239 "]
    assert {canonical_time(s) for s in spellings} == {"2024-05-01T12:00:00.123Z"}
    assert canonical_time("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00.000Z"
    assert canonical_time("2024-05-01") == "2024-05-01T00:00:00.000Z"
    assert canonical_time(None) is canonical_time("") is canonical_time("yesterday") is None


def state_with(*ids: str, modified: str = "2024-01-01T00:00:00.000Z") -> MirrorState:
    return MirrorState(source=SRC, target=DST,
                       datasets={i: Entry(f"name-{i}", f"hash-{i}", modified) for i in ids})


def test_march_reads_new_and_changed_and_finds_what_is_gone() -> None:
    state = state_with("a", "b", "c")
    listing = Listing({"a": "2024-01-01T00:00:00Z",  # unchanged (another spelling)
                       "b": "2024-03-01T00:00:00.5Z",  # changed
                       "d": "2024-02-01T00:00:00Z",  # new
                       "e": None})  # no date: read it to be safe
    plan = march(listing, state)
    assert plan.fetch == {"b", "d", "e"}
    assert plan.gone == {"c"}
    assert plan.listed == 4 and plan.watermark == "2024-03-01T00:00:00.500Z"


@pytest.mark.parametrize(("listed", "gone", "held", "guards", "refused"), [
    (0, 0, 0, Guards(), None),  # first run on an empty source
    (0, 100, 100, Guards(max_fraction=1.0), "lists 0 datasets"),  # never, whatever the guard
    (97, 3, 100, Guards(), None),
    (50, 50, 100, Guards(), "50 of the 100 mirrored datasets (50%"),
    (50, 50, 100, Guards(max_fraction=0.5), None),
    (90, 10, 100, Guards(max_fraction=1.0, max_count=5), "more than max_delete_count 5"),
    (95, 5, 100, Guards(max_count=5), None),
])
def test_guards(listed: int, gone: int, held: int, guards: Guards, refused: str | None) -> None:
    state = state_with(*(str(i) for i in range(held)))
    listing = Listing({str(i): "2024-01-01T00:00:00Z" for i in range(gone, gone + listed)})
    plan = march(listing, state)
    assert len(plan.gone) == gone
    reason = refusal(plan, held, guards)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_state_commits_atomically_and_folds_the_journal(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        state = MirrorState.load(tmp_path, source=SRC, target=DST)
        assert state.datasets == {} and state.watermark is None
        state.mirrored(journal, "a", Entry("name-a", "h1", "2024-01-01T00:00:00.000Z"))
        state.mirrored(journal, "b", Entry("name-b", "h2", None))
        state.commit(tmp_path, journal, watermark="2024-01-01T00:00:00.000Z")
        assert journal.path.stat().st_size == 0  # compacted into the state file
    assert not list(tmp_path.glob("*.tmp"))
    saved = orjson.loads((tmp_path / STATE_FILE).read_bytes())
    assert saved["watermark"] == "2024-01-01T00:00:00.000Z" and set(saved["datasets"]) == {"a", "b"}

    # A run killed after some work: the file is untouched, the journal holds the progress.
    with Journal(tmp_path) as journal:
        state = MirrorState.load(tmp_path, source=SRC, target=DST)
        state.mirrored(journal, "c", Entry("name-c", "h3", None))
        state.removed(journal, "a", "deleted")
        state.mirrored(journal, "a", Entry("name-a", "h4", None))  # back at the source
        state.removed(journal, "b", "deleted")
    assert orjson.loads((tmp_path / STATE_FILE).read_bytes()) == saved
    with Journal(tmp_path) as journal:
        state = MirrorState.load(tmp_path, source=SRC, target=DST)
        assert state.replay(journal) == 3  # the last line of each record wins
        assert {k: v.hash for k, v in state.datasets.items()} == {"a": "h4", "c": "h3"}
        assert state.watermark == "2024-01-01T00:00:00.000Z"  # not moved by unfinished work


def test_state_of_another_mirror_or_a_broken_file_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path) as journal:
        MirrorState(source=SRC, target=DST).commit(tmp_path, journal, watermark=None)
    with pytest.raises(ConfigError, match="belongs to the mirror"):
        MirrorState.load(tmp_path, source=SRC, target="https://elsewhere.example")
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable mirror state"):
        MirrorState.load(tmp_path, source=SRC, target=DST)


def test_run_reports_are_named_by_start_and_pruned(tmp_path: Path) -> None:
    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    paths = []
    for n in range(4):
        path = report_path(tmp_path, started)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
        os.utime(path, (1000 + n, 1000 + n))
        paths.append(path)
    assert [p.name for p in paths] == ["20260102T030405Z.json", "20260102T030405Z-2.json",
                                       "20260102T030405Z-3.json", "20260102T030405Z-4.json"]
    assert prune_reports(tmp_path, keep=2) == paths[:2]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == sorted(
        p.name for p in paths[2:])
