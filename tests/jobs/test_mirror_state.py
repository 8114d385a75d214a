"""The mirror's state, its diff in the state store and its guards, without any portal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from bulkport.errors import ConfigError
from bulkport.jobs import mirror_diff
from bulkport.jobs.mirror_diff import Guards, StoredListing, march, refusal
from bulkport.jobs.mirror_state import JOURNAL_KIND, Entry, MirrorState
from bulkport.moments import canonical_time
from bulkport.store import StateStore, transaction

SRC, DST = "https://source.example", "https://target.example"
JAN = "2024-01-01T00:00:00.000Z"


@pytest.fixture
def store() -> Iterator[StateStore]:
    with StateStore(None) as opened:
        yield opened


def test_one_moment_in_every_spelling_compares_equal() -> None:
    spellings = ["2024-05-01T12:00:00.123456", "2024-05-01T12:00:00.123Z",
                 "2024-05-01T14:00:00.123+02:00", " 2024-05-01T12:00:00.1239 "]
    assert {canonical_time(s) for s in spellings} == {"2024-05-01T12:00:00.123Z"}
    assert canonical_time("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00.000Z"
    assert canonical_time("2024-05-01") == "2024-05-01T00:00:00.000Z"
    assert canonical_time(None) is canonical_time("") is canonical_time("yesterday") is None


def holding(store: StateStore, *ids: str, modified: str | None = JAN) -> MirrorState:
    state = MirrorState.open(store, source=SRC, target=DST)
    with transaction(store.db):
        for i in ids:
            state.mirrored(i, Entry(f"name-{i}", f"hash-{i}", modified), "created")
    return state


def test_the_diff_reads_new_changed_and_undated_and_finds_what_is_gone(store) -> None:
    holding(store, "a", "b", "c")
    holding(store, "u", "v", modified=None)  # held without a date
    listing = StoredListing(store)
    listing.add("a", "2024-01-01T00:00:00Z")  # unchanged (another spelling)
    listing.add("b", "2024-03-01T00:00:00.5Z")  # changed
    listing.add("c2", JAN)  # new
    listing.add("e", None)  # new, and no date
    listing.add("u", JAN)  # now with a date
    listing.add("v", None)  # still without one: read it to be safe
    plan = march(listing)
    assert (plan.listed, plan.fetch, plan.gone) == (6, 5, 1)
    assert plan.watermark == "2024-03-01T00:00:00.500Z"
    assert [i for chunk in listing.unread() for i in chunk] == ["b", "c2", "e", "u", "v"]
    assert [i for chunk in listing.unlisted() for i in chunk] == [("c", "name-c")]
    assert listing.modified("b") == "2024-03-01T00:00:00.500Z"  # stored in canonical form
    assert listing.modified("e") is listing.modified("c") is None


def test_an_id_listed_twice_keeps_its_last_date(store, monkeypatch) -> None:
    monkeypatch.setattr(mirror_diff, "BATCH", 2)  # the two dates in two batches
    listing = StoredListing(store)
    for sid, modified in (("a", JAN), ("b", JAN), ("c", JAN), ("a", "2024-02-01T00:00:00Z")):
        listing.add(sid, modified)
    assert len(listing) == 3
    assert listing.modified("a") == "2024-02-01T00:00:00.000Z"


def test_records_read_in_full_are_neither_read_again_nor_gone(store) -> None:
    holding(store, "a", "b")
    listing = StoredListing(store)
    listing.add("a", "2024-05-01T00:00:00Z")
    listing.mark_read("a")
    listing.mark_read("b")  # read, though the listing missed it (created since)
    listing.mark_read("z")  # new and not listed
    assert len(listing) == 1  # only what was listed counts as listed
    assert march(listing).gone == 0
    assert list(listing.unread()) == []
    assert listing.modified("z") is None


def test_each_run_lists_afresh(store) -> None:
    holding(store, "a")
    first = StoredListing(store)
    first.add("a", JAN)
    first.add("b", JAN)
    assert len(first) == 2
    second = StoredListing(store)
    second.add("b", JAN)
    plan = march(second)
    assert (plan.listed, plan.gone) == (1, 1)


def test_chunks_come_sorted_and_survive_removals_between_them(store, monkeypatch) -> None:
    monkeypatch.setattr(mirror_diff, "CHUNK", 3)
    monkeypatch.setattr(mirror_diff, "BATCH", 4)
    ids = [f"id-{n:02d}" for n in range(10)]
    state = holding(store, *reversed(ids))
    listing = StoredListing(store)
    listing.add("new", JAN)
    seen = []
    for chunk in listing.unlisted():
        assert len(chunk) <= 3
        for sid, _ in chunk:
            seen.append(sid)
            with transaction(store.db):
                state.removed(sid, "deleted")  # as the removals do, between chunks
    assert seen == ids and state.held() == 0
    assert [c for c in listing.unread()] == [["new"]]


@pytest.mark.parametrize(("listed", "gone", "held", "guards", "refused"), [
    (0, 0, 0, Guards(), None),  # first run on an empty source
    (0, 100, 100, Guards(max_fraction=1.0), "lists 0 datasets"),  # never, whatever the guard
    (97, 3, 100, Guards(), None),
    (50, 50, 100, Guards(), "50 of the 100 mirrored datasets (50%"),
    (50, 50, 100, Guards(max_fraction=0.5), None),
    (90, 10, 100, Guards(max_fraction=1.0, max_count=5), "more than max_delete_count 5"),
    (95, 5, 100, Guards(max_count=5), None),
])
def test_guards(store, listed: int, gone: int, held: int, guards: Guards,
                refused: str | None) -> None:
    holding(store, *(f"{i:03d}" for i in range(held)))
    listing = StoredListing(store)
    for i in range(gone, gone + listed):
        listing.add(f"{i:03d}", "2024-01-01T00:00:00Z")
    plan = march(listing)
    assert plan.gone == gone
    reason = refusal(plan, held, guards)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason
    if listed:  # keeping what the source dropped deletes nothing: no guard to pass
        assert refusal(plan, held, guards, deleting=False) is None


def test_each_record_lands_at_once_and_a_commit_moves_the_watermark(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        state = MirrorState.open(store, source=SRC, target=DST)
        state.claim()
        with transaction(store.db):
            state.mirrored("a", Entry("name-a", "h1", JAN), "created")
        with transaction(store.db):
            state.mirrored("b", Entry("name-b", "h2", None), "created")
        state.commit(watermark=JAN)
        assert store.journal.count(JOURNAL_KIND) == 0  # a finished run leaves no journal

    # A run killed after some work: its rows are in the table, the watermark is unmoved.
    with StateStore(tmp_path) as store:
        state = MirrorState.open(store, source=SRC, target=DST)
        with transaction(store.db):
            state.mirrored("c", Entry("name-c", "h3", None), "created")
        with transaction(store.db):
            state.removed("a", "deleted")
        state.touch("b", JAN)
    with StateStore(tmp_path) as store:
        state = MirrorState.open(store, source=SRC, target=DST)
        assert state.resumed() == 2  # "resumed an interrupted run: 2 datasets were done"
        assert state.get("a") is None
        assert state.get("b") == Entry("name-b", "h2", JAN)
        assert state.get("c") == Entry("name-c", "h3", None)
        assert state.watermark == JAN and state.committed_at is not None
        assert state.held() == 2


def test_state_of_another_mirror_is_refused_with_one_line(store) -> None:
    MirrorState.open(store, source=SRC, target=DST).claim()
    with pytest.raises(ConfigError, match=r"^the state: this state belongs to the mirror "
                                          r"https://source.example → https://target.example, "
                                          r"not https://source.example → https://elsewhere"):
        MirrorState.open(store, source=SRC, target="https://elsewhere.example")
    # The same portals, with credentials in the URL: the same mirror (and none kept).
    state = MirrorState.open(store, source="https://user:pw@source.example?key=s3cret",
                             target=DST)
    state.claim()
    assert store.meta("mirror source") == SRC


def test_an_old_mirror_json_is_imported_once_with_its_interrupted_run(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "mirror.json").write_bytes(orjson.dumps({
        "format": 1, "source": SRC, "target": DST, "watermark": JAN,
        "committed_at": "2024-01-02T00:00:00+00:00",
        "datasets": {"a": ["name-a", "h1", JAN], "b": ["name-b", "h2", None]}}))
    (tmp_path / "journal.jsonl").write_bytes(b'{"journal":1}\n' + b"\n".join(orjson.dumps(e) for e in (
        {"kind": "mirror", "key": "c", "target": "name-c", "hash": "h3", "modified": None},
        {"kind": "mirror", "key": "a", "removed": "deleted"})) + b"\n")
    with caplog.at_level(logging.WARNING, "bulkport"), StateStore(tmp_path) as store:
        state = MirrorState.open(store, source=SRC, target=DST)
        # The old run's journal lands on the imported map; its watermark stays.
        assert state.watermark == JAN and state.held() == 2
        assert state.get("a") is None and state.get("c") == Entry("name-c", "h3", None)
    assert f"{tmp_path / 'mirror.json'}: imported 2 entries into the state database" in (
        caplog.text)
    assert not (tmp_path / "mirror.json").exists()
    with pytest.raises(ConfigError, match="belongs to the mirror"), StateStore(tmp_path) as store:
        MirrorState.open(store, source=SRC, target="https://elsewhere.example")
