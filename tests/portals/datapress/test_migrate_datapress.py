"""Migrations CKAN ⇄ DataPress against the simulators; assertions on the final state."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from datapress_sites import (
    SiteFactory,
    assert_no_key,
    by_mark,
    check_ckan_in_datapress,
    check_datapress_in_ckan,
    ckan_writes,
    dp_writes,
    files_of,
    run,
    write_job,
)

from bulkport.cli import main
from bulkport.testing.core.files import SyntheticFile
from bulkport.testing.core.server import ThreadedServer, build_simulator, parse_args

if sys.version_info >= (3, 11):
    import tomllib
else:  # the project's fallback for 3.10
    import tomli as tomllib


@pytest.fixture
def sites() -> Iterator[SiteFactory]:
    make = SiteFactory()
    yield make
    make.close()


def test_ckan_to_datapress_then_a_second_run_writes_nothing(sites, tmp_path: Path,
                                                            capsys) -> None:
    s = sites(datasets=20)
    job = write_job(tmp_path, s)
    assert run(job, tmp_path / "state") == 0
    check_ckan_in_datapress(s)
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["datasets_created"] == 20
    assert_no_key(capsys, tmp_path / "state")

    # Without the journal: one export read, one GET each, and no write at all.
    writes, requests = dp_writes(s.dp), s.dp.stats.requests
    s.patches.clear()
    assert run(job, tmp_path / "fresh") == 0
    assert dp_writes(s.dp) == writes and s.patches == []
    # The target check (whoami, site, teams), the export, GETs.
    assert s.dp.stats.requests - requests == 3 + 1 + 20
    # With it: nothing but the target check.
    assert run(job, tmp_path / "state") == 0
    assert dp_writes(s.dp) == writes and s.dp.stats.requests - requests == 24 + 3


def test_a_changed_title_is_one_patch_of_that_path(sites, tmp_path: Path) -> None:
    s = sites(datasets=5)
    job = write_job(tmp_path, s)
    assert run(job, tmp_path / "state") == 0
    pkg = next(p for p in s.ckan.packages.values() if p["state"] == "active")
    doc = by_mark(s.dp)[pkg["id"]]
    doc["custom"]["curated_by"] = "site team"  # made on the site: must survive
    s.ckan.save_package({**pkg, "title": "Un titre tout neuf"})
    writes = dp_writes(s.dp)
    s.patches.clear()
    assert run(job, tmp_path / "fresh") == 0
    assert s.patches == [[{"op": "replace", "path": "/title", "value": "Un titre tout neuf"}]]
    assert dp_writes(s.dp) == writes + 1
    after = s.dp.datasets[doc["id"]]
    assert after["title"] == "Un titre tout neuf" and after["custom"]["curated_by"] == "site team"


def test_dry_run_plans_and_writes_nothing(sites, tmp_path: Path) -> None:
    s = sites(datasets=6)
    assert run(write_job(tmp_path, s), tmp_path / "state", "--dry-run") == 0
    assert dp_writes(s.dp) == 0 and not s.dp.datasets
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["would_create"] == 6


def test_the_v4_api_prefix(sites, tmp_path: Path) -> None:
    s = sites(datasets=4, prefix="/api")
    assert run(write_job(tmp_path, s, prefix="/api"), tmp_path / "state") == 0
    check_ckan_in_datapress(s)
    back = sites(datasets=4, source="datapress", prefix="/api")
    assert run(write_job(tmp_path, back, source="datapress", prefix="/api"),
               tmp_path / "back") == 0
    assert len(back.ckan.packages) == 4


def test_datapress_to_ckan_keeps_fields_files_and_links(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=20, source="datapress")
    job = write_job(tmp_path, s, source="datapress")
    assert run(job, tmp_path / "state") == 0
    assert_no_key(capsys, tmp_path / "state")
    check_datapress_in_ckan(s)
    writes = ckan_writes(s.ckan)
    assert run(job, tmp_path / "fresh") == 0
    assert ckan_writes(s.ckan) == writes


def test_a_file_replaced_at_the_same_size_is_sent_again(sites, tmp_path: Path) -> None:
    """DataPress files carry no date: their MD5 (``hash``) tells a new version apart."""
    s = sites(datasets=3, source="datapress")
    job = write_job(tmp_path, s, source="datapress")
    assert run(job, tmp_path / "state") == 0
    doc = next(d for d in s.dp.datasets.values() if d["resources"])
    res = next(iter(doc["resources"].values()))
    new = SyntheticFile(res["size"], seed=991)
    s.dp.blobs.put_synthetic(res["origin"], new)
    res["hash"] = hashlib.md5(b"".join(new.iter_chunks())).hexdigest()
    uploads = s.ckan.stats["ckan:resource_patch"]

    assert run(job, tmp_path / "state") == 0
    assert s.ckan.stats["ckan:resource_patch"] == uploads + 1
    check_datapress_in_ckan(s)  # byte for byte, this file included


def test_datapress_to_datapress_round_trip_through_ckan(sites, tmp_path: Path) -> None:
    """DataPress → CKAN → DataPress: the second DataPress holds what the first did."""
    first = sites(datasets=6, source="datapress")
    assert run(write_job(tmp_path, first, source="datapress"), tmp_path / "a") == 0
    second = sites(datasets=0)
    second.ckan, second.ckan_url = first.ckan, first.ckan_url
    assert run(write_job(tmp_path, second), tmp_path / "b") == 0
    copies = {d["custom"]["name"]: d for d in second.dp.datasets.values()}
    for doc in first.dp.datasets.values():
        copy = copies[doc["id"]]
        for key in ("title", "description", "licence", "contact", "sharing", "nextReviewDate"):
            assert copy[key] == doc[key], key
        assert sorted(copy["tags"]) == sorted(doc["tags"])  # CKAN keeps tags sorted
        assert doc["custom"].items() <= copy["custom"].items()
        assert files_of(first.dp, doc) == files_of(second.dp, copy)
        assert sorted(map(str, doc["links"].values())) == sorted(map(str, copy["links"].values()))


def test_validation_errors_are_reported_per_field(sites, tmp_path: Path) -> None:
    s = sites(datasets=4)
    victim = next(p for p in s.ckan.packages.values() if p["state"] == "active")
    s.ckan.save_package({**victim, "title": "   "})  # DataPress requires a title
    assert run(write_job(tmp_path, s), tmp_path / "state") == 1
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    [failure] = report["failures"]
    assert victim["name"] in failure["unit"]
    assert "title: This field is required" in failure["reason"]
    assert len(s.dp.datasets) == 3


def test_a_file_over_the_size_limit_is_reported_and_the_run_goes_on(sites,
                                                                     tmp_path: Path) -> None:
    s = sites(datasets=3)
    assert run(write_job(tmp_path, s, extra="max_file_size = 2000"), tmp_path / "state") == 1
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["failures"] and all("over the site's limit of 2,000" in f["reason"]
                                      for f in report["failures"])
    assert len(s.dp.datasets) == 3 and s.dp.stats["datapress:upload"] == 0
    # Not taken for done: once the limit allows them, the next run sends the files.
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    assert s.dp.stats["datapress:upload"] > 0 and len(s.dp.datasets) == 3
    assert all(d["resources"] for d in s.dp.datasets.values())


def test_the_shipped_job_runs_against_the_simulators_as_its_header_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jobs/ckan-to-datapress.toml, only its URLs changed, against the sites `bulkport
    simulate ckan` and `bulkport simulate datapress` serve: its team and masthead exist."""
    shipped = Path(__file__).parents[3] / "jobs" / "ckan-to-datapress.toml"
    target = tomllib.loads(shipped.read_text())["target"]
    ckan = ThreadedServer(lambda: build_simulator(parse_args(["ckan", "--datasets", "3"])))
    datapress = ThreadedServer(lambda: build_simulator(parse_args(["datapress"])))
    with ckan, datapress:
        assert datapress.app is not None and ckan.app is not None
        store = datapress.app["store"]
        assert target["team"] in store.teams and target["masthead"] in store.mastheads
        assert f'team = "{target["team"]}"' in "\n".join(datapress.app["banner"])
        job = tmp_path / "job.toml"
        job.write_text(shipped.read_text()
                       .replace('"https://ckan.example.org"', f'"{ckan.url}"')
                       .replace('"https://data.example.org"', f'"{datapress.url}"'))
        monkeypatch.setenv("CKAN_API_KEY", "simulator-key")
        monkeypatch.setenv("DATAPRESS_API_KEY", "simulator-key")
        assert main(["run", str(job), "--state-dir", str(tmp_path / "state"),
                     "--no-progress"]) == 0
    copies = list(by_mark(store).values())
    assert len(copies) == 3
    assert {(d["team"], d["masthead"]) for d in copies} == {(target["team"], target["masthead"])}
    store.close()
    ckan.app["store"].close()
