"""The mirror job CKAN → CKAN against the simulators: which writes each run makes, what the
target ends up holding, and what the guards refuse."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from mirror_sites import (
    SOURCE_KEY,
    Sites,
    add,
    by_mark,
    call,
    drop,
    edit,
    last_actions,
    last_report,
    replace_file,
    run,
    site_factory,
    state_of,
    verify,
    write_job,
)
from state_rows import count_journaled

from bulkport.portals.ckan.mapping import MARK
from bulkport.store import StateStore
from bulkport.testing.ckan.model import now_iso


@pytest.fixture
def sites() -> Iterator[Callable[..., Sites]]:
    yield from site_factory()


def test_second_run_makes_exactly_the_writes_the_source_changes_need(sites, tmp_path: Path,
                                                                     capsys) -> None:
    s: Sites = sites(datasets=1000, files_every=50)
    job, state = write_job(tmp_path, s), tmp_path / "state"

    # First run: a full migration.
    assert run(job, state) == 0
    assert set(by_mark(s.target)) == set(s.active_ids())
    first = state_of(state)
    assert len(first["datasets"]) == len(s.active_ids()) and first["watermark"]

    # The source changes: 9 datasets in their metadata, 1 only in a file, 3 deleted, 5 new.
    ids = s.active_ids()
    file_changed = s.with_files()[0]
    edited = [i for i in ids if i != file_changed][:9]
    deleted = [i for i in ids if i != file_changed][-3:]
    for n, pkg_id in enumerate(edited):
        edit(s.source, pkg_id, title=f"Edited title {n}")
    changed_resource = replace_file(s.source, file_changed)
    for pkg_id in deleted:
        drop(s.source, pkg_id)
    added = [add(s.source, ids[100 + n], n) for n in range(5)]
    s.reset_stats()

    assert run(job, state) == 0
    assert s.writes() == {"package_patch": 9, "resource_patch": 1, "package_create": 5,
                          "resource_create": 10, "package_delete": 3}
    assert s.source.stats["ckan:download"] == 1  # only the changed file travelled
    # Source reads: ids and dates (2 pages), the 3 missing ids checked again, one page of
    # changes; no full listing.
    assert s.source.stats["ckan:package_search"] == 4
    report = last_report(state)
    assert report["counts"]["datasets_updated"] == 10
    assert report["counts"]["datasets_created"] == 5
    assert report["counts"]["datasets_deleted"] == 3
    page = (state / "report.html").read_text()  # the page names the datasets deleted
    removed = re.findall(r'<tr data-removal="deleted"><td>deleted</td><td>([^<]+)</td>'
                         r'<td>([^<]+)</td>', page)
    assert sorted(source_id for _, source_id in removed) == sorted(deleted)

    copies = by_mark(s.target)
    assert set(copies) == set(s.active_ids())
    assert all(copies[i]["title"] == f"Edited title {n}" for n, i in enumerate(edited))
    everything = by_mark(s.target, state=None)
    assert all(everything[i]["state"] == "deleted" for i in deleted)  # undoable deletes
    copy = next(r for r in copies[file_changed]["resources"] if r[MARK] == changed_resource)
    assert s.target.blobs.get(copy["id"]).sha256 == s.source.blobs.get(changed_resource).sha256
    assert set(added) <= set(copies)
    # Each record acted on is in the run's history, with where it is on both sides.
    actions = last_actions(state)
    datasets = [a for a in actions if a["entity"] == "dataset"]
    assert sorted((a["action"], a["source_id"], a["target_id"]) for a in datasets
                  if a["action"] == "deleted") == sorted(
        ("deleted", i, everything[i]["name"]) for i in deleted)
    created = {a["source_id"]: a for a in datasets if a["action"] == "created"}
    assert set(created) == set(added)
    for pkg_id, action in created.items():
        name = copies[pkg_id]["name"]
        assert action["target_id"] == name and action["target_url"].endswith(f"/dataset/{name}")
        assert action["source_url"].startswith(s.source_url)
    assert sum(a["action"] == "updated" for a in datasets) == 10
    assert [a["source_id"] for a in actions if a["entity"] == "file"
            and a["action"] == "updated"] == [changed_resource]
    second = state_of(state)
    assert second["watermark"] > first["watermark"]
    assert set(second["datasets"]) == set(s.active_ids())
    assert count_journaled(state, "mirror") == 0  # a finished run leaves no journal

    capsys.readouterr()
    assert verify(job) == 0
    assert "they match" in capsys.readouterr().out
    assert verify(job, "--quiet", "--log-file", str(tmp_path / "verify.log")) == 0
    assert capsys.readouterr().out == ""
    assert "they match" in (tmp_path / "verify.log").read_text()

    # A third run with no change writes nothing and barely talks to the target.
    s.reset_stats()
    assert run(job, state) == 0
    assert s.writes() == {}
    assert s.target.stats.requests == 1  # user_show: the key check (a sysadmin's)
    assert len(list((state / "reports").glob("*.json"))) == 3



def test_resources_deleted_added_and_replaced_through_the_api_reach_the_copy(
        sites, tmp_path: Path) -> None:
    """A sysadmin's resource_delete leaves the dataset's metadata_modified as it was (as on
    CKAN 2.12): the listing sees the reindex (indexed_ts), and so does the since filter."""
    s: Sites = sites(datasets=30, files_every=10)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    linked = sorted((i for i in s.active_ids() if i not in s.with_files()),
                    key=lambda i: s.source.packages[i]["metadata_modified"])
    hosted = s.with_files()[0]
    shrunk, grown = linked[0], linked[1]  # the oldest: no safety margin covers them
    before = s.source.packages[shrunk]["metadata_modified"]
    call(s.source_url, SOURCE_KEY, "resource_delete",
         {"id": s.source.packages[shrunk]["resources"][0]["id"]})
    assert s.source.packages[shrunk]["metadata_modified"] == before
    call(s.source_url, SOURCE_KEY, "resource_create",
         {"package_id": grown, "url": "https://files.example.org/new.csv", "name": "added"})
    replaced = next(r["id"] for r in s.source.packages[hosted]["resources"]
                    if r.get("url_type") == "upload")
    new_bytes = b"a,b\n1,2\n3,4\n"
    call(s.source_url, SOURCE_KEY, "resource_patch", {"id": replaced},
         upload=("replaced.csv", new_bytes))
    s.reset_stats()

    assert run(job, state) == 0
    assert s.writes() == {"resource_delete": 1, "resource_create": 1, "resource_patch": 1}
    copies = by_mark(s.target)
    for pkg_id in (shrunk, grown, hosted):
        assert sorted(r[MARK] for r in copies[pkg_id]["resources"]) == sorted(
            r["id"] for r in s.source.packages[pkg_id]["resources"])
    copy = next(r for r in copies[hosted]["resources"] if r[MARK] == replaced)
    assert s.target.blobs.get(copy["id"]).sha256 == hashlib.sha256(new_bytes).hexdigest()

def test_hand_made_datasets_survive_every_run(sites, tmp_path: Path) -> None:
    s: Sites = sites(datasets=40)
    ids = s.active_ids()
    clash = s.source.packages[ids[0]]
    org = next(iter(s.source.organizations.values()))
    s.target.save_org(dict(org))
    by_hand = [
        {**clash, "id": "00000000-0000-4000-8000-000000000001", "resources": [], "extras": [],
         "title": "made by hand, same name"},
        {**s.source.packages[ids[1]], "id": "00000000-0000-4000-8000-000000000002",
         "name": "notes-of-the-team", "resources": [], "title": "made by hand",
         "extras": [{"key": "owner", "value": "target team"}]},
    ]
    for pkg in by_hand:
        s.target.save_package(pkg)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    variant = by_mark(s.target)[ids[0]]["name"]
    assert variant != clash["name"]  # the hand-made dataset kept its name

    # The copy of ids[2] is taken over by hand (its mark removed); then the source drops
    # it and the dataset whose name clashed.
    taken = by_mark(s.target)[ids[2]]
    s.target.save_package({**taken, "extras": [e for e in taken["extras"] if e["key"] != MARK]})
    drop(s.source, ids[0])
    drop(s.source, ids[2])
    assert run(job, state) == 0
    assert s.target.packages[taken["id"]]["state"] == "active"  # not ours any more: left alone
    assert s.target.get_package(variant)["state"] == "deleted"
    assert "no longer carries the ownership mark" in json.dumps(last_report(state)["notes"])
    assert run(job, state) == 0
    for pkg in by_hand:
        assert s.target.packages[pkg["id"]] == pkg  # never modified, never deleted
    assert verify(job) == 0  # datasets without the mark are not the mirror's to compare


def test_a_source_listing_nothing_deletes_nothing(sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=30)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    before = state_of(state)
    for pkg_id in s.active_ids():
        drop(s.source, pkg_id)
    s.reset_stats()
    assert run(job, state, "--max-delete-fraction", "1") == 2
    assert "the source lists 0 datasets while the mirror holds 30" in capsys.readouterr().out
    assert s.writes() == {} and state_of(state) == before


def test_a_listing_that_fails_midway_deletes_nothing(sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=60)
    job = write_job(tmp_path, s, source="rows = 20")
    state = tmp_path / "state"
    assert run(job, state) == 0
    before = state_of(state)
    drop(s.source, s.active_ids()[0])
    edit(s.source, s.active_ids()[1], title="changed")
    s.failing_listing.add(20)  # the second page of ids fails, retries included
    s.reset_stats()
    assert run(job, state) == 2
    out = capsys.readouterr().out
    assert "listing the source failed, so nothing was written or deleted" in out
    assert s.writes() == {} and state_of(state) == before

    s.failing_listing.clear()
    assert run(job, state) == 0
    assert s.writes() == {"package_delete": 1, "package_patch": 1}


def test_guards_refuse_a_run_that_would_delete_too_much(sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=40)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    ids = s.active_ids()
    for pkg_id in ids[:20]:
        drop(s.source, pkg_id)
    edit(s.source, ids[30], title="changed too")
    s.reset_stats()
    assert run(job, state) == 2
    out = capsys.readouterr().out
    assert "would delete 20 of the 40 mirrored datasets (50%, more than max_delete_fraction" in out
    assert s.writes() == {}  # refused before the first write, updates included

    job = write_job(tmp_path, s, options="max_delete_fraction = 1.0\nmax_delete_count = 10")
    assert run(job, state) == 2
    assert "more than max_delete_count 10" in capsys.readouterr().out
    assert s.writes() == {}

    job = write_job(tmp_path, s, options="max_delete_fraction = 0.5")
    assert run(job, state) == 0
    assert s.writes() == {"package_delete": 20, "package_patch": 1}


def test_on_delete_private_hides_and_a_return_shows_again(sites, tmp_path: Path) -> None:
    s: Sites = sites(datasets=30)
    job = write_job(tmp_path, s, options='on_delete = "private"')
    state = tmp_path / "state"
    assert run(job, state) == 0
    public = next(i for i in s.active_ids() if not s.source.packages[i]["private"])
    drop(s.source, public)
    assert run(job, state) == 0
    assert by_mark(s.target)[public]["private"] is True  # still there, private
    assert s.writes().get("package_delete", 0) == 0
    assert verify(job) == 0  # a hidden copy is what on_delete = "private" asks for

    edit(s.source, public, state="active")  # restored at the source
    assert run(job, state) == 0
    assert by_mark(s.target)[public]["private"] is False


def test_dry_run_prints_the_plan_and_writes_nothing(sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=30)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    ids = s.active_ids()
    edit(s.source, ids[0], title="new title")
    drop(s.source, ids[1])
    new = add(s.source, ids[2], 1)
    touched = ids[3]  # reindexed: a new date in the listing, the same content
    s.source.save_package({**s.source.packages[touched], "indexed_ts": now_iso()})
    before = state_of(state)
    capsys.readouterr()
    s.reset_stats()
    assert run(job, state, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "would create 1 dataset(s)\n  added-dataset-1" in out
    assert f"would update 1 dataset(s)\n  {s.source.packages[ids[0]]['name']}" in out
    assert f"would delete 1 dataset(s)\n  {by_mark(s.target)[ids[1]]['name']}" in out
    assert s.writes() == {} and state_of(state) == before  # not even the new date
    assert count_journaled(state, "mirror") == 0
    assert new not in by_mark(s.target)
    assert run(job, state) == 0  # the new date is kept: the next listing skips it
    key, digest, modified = state_of(state)["datasets"][touched]
    assert [key, digest] == before["datasets"][touched][:2]
    assert modified > before["datasets"][touched][2]


def test_an_overlapping_run_is_refused(sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=5)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    with StateStore(state):  # another run holds the state directory
        assert run(job, state) == 2
    assert "another bulkport run" in capsys.readouterr().err
    assert s.writes() == {}
    assert run(job, state) == 0


def test_quiet_run_prints_nothing_logs_a_line_and_keeps_few_reports(sites, tmp_path: Path,
                                                                    capsys) -> None:
    s: Sites = sites(datasets=10)
    job = write_job(tmp_path, s, options="keep_reports = 2")
    state, log = tmp_path / "state", tmp_path / "mirror.log"
    for _ in range(3):
        assert run(job, state, "--quiet", "--log-file", str(log)) == 0
    output = capsys.readouterr()
    assert output.out == output.err == ""
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and all("mirror nightly: OK" in line for line in lines)
    assert "datasets created 10" in lines[0]
    assert len(list((state / "reports").glob("*.json"))) == 2

    for pkg_id in s.active_ids()[:2]:  # 2 of 10 is over 10 %: refused, so printed
        drop(s.source, pkg_id)
    assert run(job, state, "--quiet", "--log-file", str(log)) == 2
    assert "ABORTED" in capsys.readouterr().out


def test_verify_finds_differences_and_a_full_run_repairs_them(sites, tmp_path: Path,
                                                              capsys) -> None:
    s: Sites = sites(datasets=20)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    ids = s.active_ids()
    copies = by_mark(s.target)
    s.target.save_package({**copies[ids[0]], "title": "edited on the target"})
    s.target.save_package({**copies[ids[1]], "resources": copies[ids[1]]["resources"][1:]})
    s.target.purge_package(copies[ids[2]]["id"])
    capsys.readouterr()
    assert verify(job) == 1
    out = capsys.readouterr().out
    assert f"differs: {copies[ids[0]]['name']}: title" in out
    assert f"differs: {copies[ids[1]]['name']}: resource" in out
    assert f"missing on the target: {s.source.packages[ids[2]]['name']}" in out

    assert run(job, state) == 0  # nothing changed at the source: nothing to do
    assert verify(job) == 1
    assert run(job, state, "--full") == 0  # compares every dataset with its copy
    assert verify(job) == 0


def test_a_failed_record_holds_the_watermark_and_is_retried_alone(sites, tmp_path: Path) -> None:
    s: Sites = sites(datasets=40)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    victim = s.active_ids()[7]
    good = s.source.packages[victim]
    s.source.save_package({**good, "extras": {"not": "a list"}})  # cannot be mapped
    assert run(job, state) == 1
    first = state_of(state)
    assert first["watermark"] is None  # not every record succeeded
    assert len(first["datasets"]) == 39  # but the finished ones are kept
    assert "extras" in last_report(state)["failures"][0]["reason"]
    failed = [a for a in last_actions(state) if a["action"] == "failed"]
    assert [a["source_id"] for a in failed] == [victim] and "extras" in failed[0]["reason"]

    edit(s.source, victim, extras=good["extras"])  # repaired at the source
    s.reset_stats()
    assert run(job, state) == 0
    assert s.writes() == {"package_create": 1, "resource_create": 2}  # only the one missing
    assert state_of(state)["watermark"] is not None
    assert set(by_mark(s.target)) == set(s.active_ids())


def test_an_old_mirror_json_is_imported_with_a_line_and_the_mirror_goes_on(
        sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=30)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    saved = state_of(state)
    old = tmp_path / "old-state"  # the same mirror, as an earlier bulkport left it
    old.mkdir()
    (old / "mirror.json").write_bytes(orjson.dumps({"format": 1, **saved}))
    edited = s.active_ids()[:2]
    for pkg_id in edited:
        edit(s.source, pkg_id, title="edited since")
    capsys.readouterr()
    s.reset_stats()

    assert run(job, old) == 0
    err = capsys.readouterr().err
    assert f"{old / 'mirror.json'}: imported 30 entries into the state database" in err
    assert s.writes() == {"package_patch": 2}  # what a run on the store would write
    now = state_of(old)
    assert now["watermark"] > saved["watermark"]
    assert {k: v for k, v in now["datasets"].items() if k not in edited} == {
        k: v for k, v in saved["datasets"].items() if k not in edited}
    assert (old / "mirror.json.imported").exists() and not (old / "mirror.json").exists()
    s.reset_stats()
    assert run(job, old) == 0  # imported once
    assert "imported" not in capsys.readouterr().err and s.writes() == {}
