"""The mirror job with DataPress on either side, against the simulators: which writes each
run makes, what the target ends up holding, what a failed export and DataPress's missing
delete lead to."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from datapress_sites import (
    SiteFactory,
    by_mark,
    ckan_write_counts,
    dp_add,
    dp_drop,
    dp_edit,
    dp_replace_file,
    dp_write_counts,
    hand_made,
    run,
    verify,
    with_files,
    write_job,
)
from mirror_sites import add, drop, edit, last_report, state_of
from mirror_sites import by_mark as ckan_by_mark

from bulkport.portals.ckan.mapping import MARK as CKAN_MARK


@pytest.fixture
def sites() -> Iterator[SiteFactory]:
    make = SiteFactory()
    yield make
    make.close()


# ---- DataPress → CKAN ------------------------------------------------------------------


def test_datapress_to_ckan_second_run_makes_exactly_the_writes_the_changes_need(
        sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=120, source="datapress", file_size=300, files_every=40)
    job = write_job(tmp_path, s, source="datapress", kind="mirror", options="retries = 2")
    state = tmp_path / "state"
    assert run(job, state) == 0
    assert set(ckan_by_mark(s.ckan)) == set(s.dp.datasets)
    first = state_of(state)
    assert len(first["datasets"]) == 120 and first["watermark"]

    # The source changes: 6 datasets in their metadata, 1 only in a file, 3 deleted, 4 new.
    ids = sorted(s.dp.datasets)
    file_changed = with_files(s.dp)[0]
    others = [i for i in ids if i != file_changed]
    edited, deleted = others[:6], others[-3:]
    for n, dataset_id in enumerate(edited):
        dp_edit(s.dp, dataset_id, title=f"Edited title {n}")
    changed_resource = dp_replace_file(s.dp, file_changed)
    for dataset_id in deleted:
        dp_drop(s.dp, dataset_id)
    added = [dp_add(s.dp, others[50 + n], n) for n in range(4)]
    s.reset_stats()

    assert run(job, state) == 0
    assert ckan_write_counts(s.ckan) == {"package_patch": 6, "resource_patch": 1,
                                         "package_create": 4, "resource_create": 4,
                                         "package_delete": 3}
    assert s.dp.stats["datapress:download"] == 1  # only the changed file travelled
    # The export twice (ids and dates, then the changes), the 3 missing ids looked up again.
    assert s.dp.stats["datapress:export"] == 2 and s.dp.stats["datapress:get"] == 3
    counts = last_report(state)["counts"]
    assert (counts["datasets_updated"], counts["datasets_created"],
            counts["datasets_deleted"]) == (7, 4, 3)
    # Only what changed since the watermark (less the safety margin) went on to be mapped.
    since = datetime.fromisoformat(first["watermark"].replace("Z", "+00:00")) - timedelta(hours=1)
    touched = {*edited, file_changed, *added}
    assert counts["datasets_unchanged"] == sum(
        1 for i, doc in s.dp.datasets.items() if i not in touched
        and datetime.fromisoformat(doc["updatedAt"].replace("Z", "+00:00")) >= since)

    copies = ckan_by_mark(s.ckan)
    assert set(copies) == set(s.dp.datasets) and set(added) <= set(copies)
    assert all(copies[i]["title"] == f"Edited title {n}" for n, i in enumerate(edited))
    everything = ckan_by_mark(s.ckan, state=None)
    assert all(everything[i]["state"] == "deleted" for i in deleted)
    resource = s.dp.datasets[file_changed]["resources"][changed_resource]
    copy = next(r for r in copies[file_changed]["resources"] if r[CKAN_MARK] == changed_resource)
    assert s.ckan.blobs.get(copy["id"]).sha256 == s.dp.blobs.get(resource["origin"]).sha256
    second = state_of(state)
    assert second["watermark"] > first["watermark"]
    assert set(second["datasets"]) == set(s.dp.datasets)

    capsys.readouterr()
    assert verify(job) == 0
    assert "they match" in capsys.readouterr().out

    s.reset_stats()
    assert run(job, state) == 0  # nothing changed: no write
    assert ckan_write_counts(s.ckan) == {} and s.dp.stats["datapress:download"] == 0
    assert s.dp.stats.requests == 3  # whoami, the export for the ids, the export for changes

    # A silent update (a PATCH that leaves updatedAt alone) is invisible to the listing:
    # verify shows it, --full copies it.
    silent = sorted(s.dp.datasets)[7]
    s.dp.datasets[silent]["title"] = "Silently edited"
    assert run(job, state) == 0 and ckan_write_counts(s.ckan) == {}
    capsys.readouterr()
    assert verify(job) == 1
    assert f"differs: {ckan_by_mark(s.ckan)[silent]['name']}: title" in capsys.readouterr().out
    assert run(job, state, "--full") == 0
    assert ckan_write_counts(s.ckan) == {"package_patch": 1}
    assert verify(job) == 0


def test_a_failed_export_deletes_nothing(sites, tmp_path: Path, capsys) -> None:
    failing = [False]

    @web.middleware
    async def export_fails(request: web.Request, handler: Any) -> web.StreamResponse:
        if failing[0] and request.path.endswith("/export.json"):
            return web.json_response({"statusCode": 503, "statusMessage": "Unavailable",
                                      "message": "Unavailable"}, status=503)
        return await handler(request)

    s = sites(datasets=40, source="datapress", file_size=300, files_every=40,
              middleware=export_fails)
    job = write_job(tmp_path, s, source="datapress", kind="mirror", options="retries = 2")
    state = tmp_path / "state"
    assert run(job, state) == 0
    before = state_of(state)
    ids = sorted(s.dp.datasets)
    dp_drop(s.dp, ids[0])
    dp_edit(s.dp, ids[1], title="changed")
    failing[0] = True
    s.reset_stats()
    capsys.readouterr()
    assert run(job, state) == 2
    assert "listing the source failed, so nothing was written or deleted" in capsys.readouterr().out
    assert ckan_write_counts(s.ckan) == {} and state_of(state) == before

    failing[0] = False
    assert run(job, state) == 0
    assert ckan_write_counts(s.ckan) == {"package_delete": 1, "package_patch": 1}


# ---- CKAN → DataPress ------------------------------------------------------------------


def dp_job(tmp_path: Path, s: Any, on_delete: str | None) -> Path:
    options = "retries = 2" + (f'\non_delete = "{on_delete}"' if on_delete else "")
    return write_job(tmp_path, s, kind="mirror", options=options, extra="touch_updated_at = true")


def test_ckan_to_datapress_hides_what_the_source_drops_and_shows_it_again(
        sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=60, file_size=300, files_every=20)
    by_hand = hand_made(s.dp, "Made on the site")
    made = json.loads(json.dumps(s.dp.datasets[by_hand]))
    job, state = dp_job(tmp_path, s, "private"), tmp_path / "state"
    assert run(job, state) == 0
    active = sorted(p["id"] for p in s.ckan.packages.values() if p["state"] == "active")
    assert set(by_mark(s.dp)) == set(active)

    # The source changes: 5 titles, 3 public datasets dropped, 2 new ones.
    public = [i for i in active if not s.ckan.packages[i]["private"]]
    edited, dropped = public[:5], public[-3:]
    for n, pkg_id in enumerate(edited):
        edit(s.ckan, pkg_id, title=f"Edited title {n}")
    for pkg_id in dropped:
        drop(s.ckan, pkg_id)
    added = [add(s.ckan, active[10 + n], n) for n in range(2)]
    hidden_before = {i: by_mark(s.dp)[i]["updatedAt"] for i in dropped}
    s.reset_stats()

    assert run(job, state) == 0
    # 5 title patches, 3 sharing patches, 2 creates (their links go in with the create).
    assert dp_write_counts(s.dp) == {"patch": 8, "create": 2}
    copies = by_mark(s.dp)
    assert all(copies[i]["title"] == f"Edited title {n}" for n, i in enumerate(edited))
    for pkg_id in dropped:
        assert copies[pkg_id]["sharing"] == "private"
        assert copies[pkg_id]["updatedAt"] > hidden_before[pkg_id]  # touch_updated_at
    assert set(added) <= set(copies)
    assert last_report(state)["counts"]["datasets_hidden"] == 3
    assert s.dp.datasets[by_hand] == made

    capsys.readouterr()
    assert verify(job) == 0
    out = capsys.readouterr().out
    assert f"{len(copies):,} copies on the target (3 hidden): they match" in out

    s.reset_stats()
    assert run(job, state) == 0  # nothing changed: no write
    assert dp_write_counts(s.dp) == {}
    assert s.dp.stats.requests == 3  # the target check: whoami, site, teams

    edit(s.ckan, dropped[0], state="active")  # back at the source
    s.reset_stats()
    assert run(job, state) == 0
    assert dp_write_counts(s.dp) == {"patch": 1}
    assert by_mark(s.dp)[dropped[0]]["sharing"] == "public"
    assert verify(job) == 0
    assert s.dp.datasets[by_hand] == made


def test_ckan_to_datapress_refuses_on_delete_delete_before_any_request(
        sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=5, file_size=300, files_every=5)
    s.reset_stats()
    assert run(dp_job(tmp_path, s, None), tmp_path / "state") == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "cannot delete datasets" in line]
    assert len(lines) == 1
    assert 'on_delete = "private"' in lines[0] and '"keep"' in lines[0]
    assert s.dp.stats.requests == 0 and s.ckan.stats.requests == 0
    assert not s.dp.datasets


def test_verify_finds_what_differs_on_a_datapress_target_and_full_repairs_it(
        sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=12, file_size=300, files_every=4)
    job, state = dp_job(tmp_path, s, "keep"), tmp_path / "state"
    assert run(job, state) == 0
    assert verify(job) == 0
    copies = by_mark(s.dp)
    with_file = next(i for i, doc in copies.items() if doc["resources"])
    with_link = next(i for i, doc in copies.items() if doc["links"] and i != with_file)
    edited, removed = [i for i in copies if i not in (with_file, with_link)][:2]
    s.dp.datasets[copies[edited]["id"]]["title"] = "edited on the site"
    held = next(iter(s.dp.datasets[copies[with_file]["id"]]["resources"].values()))
    held["size"] += 1
    links = s.dp.datasets[copies[with_link]["id"]]["links"]
    link_title = links.pop(next(iter(links)))["title"]
    del s.dp.datasets[copies[removed]["id"]]
    capsys.readouterr()
    assert verify(job) == 1
    out = capsys.readouterr().out
    name = {i: s.ckan.packages[i]["name"] for i in copies}
    assert f"differs: {name[edited]}: title" in out
    assert f"differs: {name[with_file]}: resource {held['title']!r} size {held['size']}" in out
    assert f"differs: {name[with_link]}: resource {link_title!r} missing" in out
    assert f"missing on the target: {name[removed]}" in out
    assert "4 difference(s)" in out

    assert run(job, state) == 0 and verify(job) == 1  # nothing changed at the source
    assert run(job, state, "--full") == 0  # compares every dataset with its copy
    assert verify(job) == 0
