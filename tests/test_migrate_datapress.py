"""Migrations into and out of DataPress, against the simulators; assertions on final state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bulkport.cli import main
from bulkport.mappers.ckan import MARK as CKAN_MARK
from bulkport.mappers.datapress import LICENCES, MARK, RESOURCES
from bulkport.testing import (
    CkanStore,
    DataPressStore,
    Faults,
    ThreadedServer,
    create_ckan_app,
    create_datapress_app,
    seed_ckan,
    seed_datapress,
)
from bulkport.testing.responses import drop_connection

CKAN_KEY, DP_KEY = "ckan-key-5d1e90", "datapress-key-c47a21"
PART = 1024  # the part size of these tests (the simulator's minimum is lowered to match)
DP_WRITES = ("create", "patch", "upload", "chunk", "complete")
CKAN_WRITES = ("package_create", "package_patch", "package_update", "resource_create",
               "resource_update", "resource_patch", "resource_delete", "organization_create")


@dataclass
class Sites:
    ckan: CkanStore
    ckan_url: str
    dp: DataPressStore
    dp_url: str
    team: str
    patches: list[Any]  # the body of every PATCH the DataPress site received


def dp_writes(store: DataPressStore) -> int:
    return sum(store.stats[f"datapress:{label}"] for label in DP_WRITES)


def ckan_writes(store: CkanStore) -> int:
    return sum(store.stats[f"ckan:{action}"] for action in CKAN_WRITES)


@pytest.fixture
def sites() -> Iterator[Any]:
    servers: list[ThreadedServer] = []
    stores: list[Any] = []

    def make(datasets: int = 20, *, source: str = "ckan", faults: Faults | None = None,
             latency: float = 0.0, prefix: str = "/api/v3", middleware: Any = None) -> Sites:
        ckan, dp = CkanStore(seed=5), DataPressStore(seed=6)
        stores.extend([ckan, dp])
        if source == "ckan":
            seed_ckan(ckan, datasets=datasets, resources=3, file_size=2500, seed=5)
        else:
            seed_datapress(dp, datasets=datasets, resources=3, file_size=2500, seed=5)
        team = dp.add_team("Migrated datasets")["id"]
        dp.add_user("Migration Admin", "admin@example.org", admin=True, key=DP_KEY)
        if latency:
            faults = Faults(latency=latency)
        servers.append(ThreadedServer(lambda: create_ckan_app(
            ckan, api_keys={CKAN_KEY: "admin"}, faults=faults)).start())
        patches: list[Any] = []

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "PATCH":
                patches.append(json.loads(await request.read()))  # read() keeps the body
            return await handler(request)

        def datapress() -> web.Application:
            app = create_datapress_app(dp, faults=faults, min_part_size=PART, prefix=prefix)
            app.middlewares.insert(0, record)
            if middleware is not None:
                app.middlewares.insert(1, middleware)
            return app

        servers.append(ThreadedServer(datapress).start())
        return Sites(ckan, servers[-2].url, dp, servers[-1].url, team, patches)

    yield make
    for server in servers:
        server.stop()
    for store in stores:
        store.close()


def write_job(tmp_path: Path, sites: Sites, *, source: str = "ckan", dp_key: str = "${T_DP_KEY}",
              prefix: str = "/api/v3", extra: str = "") -> Path:
    ckan = f"""type = "ckan"
url = "{sites.ckan_url}"
api_key = "${{T_CKAN_KEY}}"
"""
    dp = f"""type = "datapress"
url = "{sites.dp_url}"
api_key = "{dp_key}"
prefix = "{prefix}"
"""
    if source == "ckan":
        tables = (f"[source]\n{ckan}include_private = true\n"
                  f'[target]\n{dp}team = "{sites.team}"\nmasthead = "simulator"\n'
                  f"part_size = {PART}\n")
    else:
        tables = f"[source]\n{dp}[target]\n{ckan}"
    job = tmp_path / "job.toml"
    job.write_text(f'kind = "migrate"\nname = "dp"\n{tables}{extra}\n'
                   "[options]\nconnections = 8\nretries = 8\n")
    return job


def run(job: Path, state: Path, *args: str) -> int:
    os.environ.update(T_CKAN_KEY=CKAN_KEY, T_DP_KEY=DP_KEY)
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def by_mark(store: DataPressStore) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in store.datasets.values():
        mark = doc["custom"].get(MARK)
        assert mark not in found, f"duplicate of {mark}"
        found[mark] = doc
    return found


def check_ckan_in_datapress(sites: Sites) -> None:
    """Every CKAN package once in DataPress: fields mapped, files byte-identical, links."""
    copies = by_mark(sites.dp)
    packages = [p for p in sites.ckan.packages.values() if p["state"] == "active"]
    assert set(copies) == {p["id"] for p in packages}
    for pkg in packages:
        doc = copies[pkg["id"]]
        assert doc["title"] == pkg["title"] and doc["description"] == (pkg.get("notes") or "")
        assert doc["tags"] == [t["name"] for t in pkg["tags"]]
        assert doc["sharing"] == ("private" if pkg["private"] else "public")
        assert doc["team"] == sites.team and doc["masthead"] == "simulator"
        assert doc["custom"]["name"] == pkg["name"]
        if pkg["license_id"] in LICENCES:
            assert doc["licence"] == LICENCES[pkg["license_id"]]
        else:  # unknown licences kept verbatim
            assert (doc["custom"].get("license_id") or doc["licence"]["title"]) == pkg["license_id"]
        extras = {e["key"]: e["value"] for e in pkg["extras"] if e["key"] != "language"}
        assert extras.items() <= doc["custom"].items()
        entries = doc["custom"].get(RESOURCES, {})
        uploads = [r for r in pkg["resources"] if r.get("url_type") == "upload"]
        links = [r for r in pkg["resources"] if r.get("url_type") != "upload"]
        assert len(doc["resources"]) == len(uploads) and len(doc["links"]) == len(links)
        for res in uploads:
            held = doc["resources"][entries[res["id"]]["id"]]
            assert sites.dp.blobs.get(held["origin"]).sha256 == sites.ckan.blobs.get(
                res["id"]).sha256
            assert (held["title"], held["description"]) == (res["name"], res["description"])
        for res in links:  # links stay links
            link = doc["links"][entries[res["id"]]["id"]]
            assert (link["url"], link["title"]) == (res["url"], res["name"])


def test_ckan_to_datapress_then_a_second_run_writes_nothing(sites, tmp_path: Path,
                                                            capsys) -> None:
    s = sites(datasets=20)
    job = write_job(tmp_path, s)
    assert run(job, tmp_path / "state") == 0
    check_ckan_in_datapress(s)
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["datasets_created"] == 20
    output = capsys.readouterr()
    for text in (output.out, output.err, *(p.read_text() for p in (tmp_path / "state").iterdir()
                                           if p.is_file())):
        assert CKAN_KEY not in text and DP_KEY not in text

    # Without the journal: one export read, one GET each, and no write at all.
    writes, requests = dp_writes(s.dp), s.dp.stats.requests
    s.patches.clear()
    assert run(job, tmp_path / "fresh") == 0
    assert dp_writes(s.dp) == writes and s.patches == []
    assert s.dp.stats.requests - requests == 1 + 1 + 20  # whoami, export, GETs
    # With it: nothing but the key check.
    assert run(job, tmp_path / "state") == 0
    assert dp_writes(s.dp) == writes and s.dp.stats.requests - requests == 22 + 1


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


def test_lost_replies_are_looked_up_not_repeated(sites, tmp_path: Path) -> None:
    """The first create, upload, part, completion and PATCH each succeed on the site but
    their reply is lost: the run finds what they did instead of doing it twice."""
    lost: list[str] = []

    @web.middleware
    async def lose_first_reply(request: web.Request, handler: Any) -> web.StreamResponse:
        kind = f"{request.method} {request.path.rsplit('/', 1)[-1]}"
        if request.method in ("POST", "PATCH") and kind not in lost:
            lost.append(kind)
            response = await handler(request)
            drop_connection(request)
            return response
        return await handler(request)

    s = sites(datasets=3, middleware=lose_first_reply)
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    assert {"POST dataset", "POST upload", "POST chunk", "POST complete"} <= set(lost)
    assert any(k.startswith("PATCH") for k in lost)
    check_ckan_in_datapress(s)  # one dataset, file and link each: nothing made twice


def test_datapress_to_ckan_keeps_fields_files_and_links(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=20, source="datapress")
    job = write_job(tmp_path, s, source="datapress")
    assert run(job, tmp_path / "state") == 0
    output = capsys.readouterr()
    for text in (output.out, output.err, *(p.read_text() for p in (tmp_path / "state").iterdir()
                                           if p.is_file())):
        assert CKAN_KEY not in text and DP_KEY not in text
    copies: dict[str, dict[str, Any]] = {}
    for pkg in s.ckan.packages.values():
        mark = next(e["value"] for e in pkg["extras"] if e["key"] == CKAN_MARK)
        assert mark not in copies
        copies[mark] = pkg
    assert set(copies) == set(s.dp.datasets)
    for doc in s.dp.datasets.values():
        pkg = copies[doc["id"]]
        assert pkg["title"] == doc["title"] and pkg["notes"] == doc["description"]
        assert sorted(t["name"] for t in pkg["tags"]) == sorted(doc["tags"])
        assert pkg["private"] == (doc["sharing"] == "private")
        assert pkg["maintainer"] == ((doc["contact"] or {}).get("name") or "")
        extras = {e["key"]: e["value"] for e in pkg["extras"]}
        assert {k: v for k, v in doc["custom"].items() if k != "language"}.items() <= extras.items()
        files = sorted(doc["resources"].values(), key=lambda r: r["order"])
        uploads = [r for r in pkg["resources"] if r.get("url_type") == "upload"]
        assert [r["name"] for r in uploads] == [r["title"] for r in files]
        for mine, theirs in zip(uploads, files, strict=True):
            assert s.ckan.blobs.get(mine["id"]).sha256 == s.dp.blobs.get(theirs["origin"]).sha256
        links = [r for r in pkg["resources"] if r.get("url_type") != "upload"]
        assert sorted((r["url"], r["name"]) for r in links) == sorted(
            (link["url"], link["title"]) for link in doc["links"].values())
    writes = ckan_writes(s.ckan)
    assert run(job, tmp_path / "fresh") == 0
    assert ckan_writes(s.ckan) == writes


def test_datapress_to_datapress_round_trip_through_ckan(sites, tmp_path: Path) -> None:
    """DataPress → CKAN → DataPress: the second DataPress holds what the first did."""
    first = sites(datasets=6, source="datapress")
    assert run(write_job(tmp_path, first, source="datapress"), tmp_path / "a") == 0
    second = sites(datasets=0)
    second.ckan_url = first.ckan_url
    second.ckan = first.ckan
    assert run(write_job(tmp_path, second), tmp_path / "b") == 0
    copies = {d["custom"]["name"]: d for d in second.dp.datasets.values()}
    for doc in first.dp.datasets.values():
        copy = copies[doc["id"]]
        for key in ("title", "description", "licence", "contact", "sharing", "nextReviewDate"):
            assert copy[key] == doc[key], key
        assert sorted(copy["tags"]) == sorted(doc["tags"])  # CKAN keeps tags sorted
        assert doc["custom"].items() <= copy["custom"].items()
        def files(store: DataPressStore, held: dict[str, Any]) -> list[Any]:
            return sorted((r["title"], r["order"], r["format"], r["timeFrame"] or {},
                           store.blobs.get(r["origin"]).sha256) for r in held.values())

        assert files(first.dp, doc["resources"]) == files(second.dp, copy["resources"])
        assert sorted(map(str, doc["links"].values())) == sorted(map(str, copy["links"].values()))


def test_ten_percent_faults_end_complete_without_duplicates(sites, tmp_path: Path) -> None:
    s = sites(datasets=30, faults=Faults(error_rate=0.1, retry_after=0, seed=4))
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    assert s.dp.stats["faults"] > 5 and s.dp.stats["faults:drop_after"] > 0
    check_ckan_in_datapress(s)  # also: no duplicate dataset, file or link

    back = sites(datasets=30, source="datapress", faults=Faults(error_rate=0.1, retry_after=0,
                                                                seed=9))
    assert run(write_job(tmp_path, back, source="datapress"), tmp_path / "back") == 0
    assert back.dp.stats["faults"] > 5
    assert len(back.ckan.packages) == 30


def test_wrong_key_stops_at_the_first_request(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=5)
    code = run(write_job(tmp_path, s, dp_key="not-the-key-0000"), tmp_path / "state")
    assert code == 2 and s.dp.stats.requests == 1 and s.ckan.stats.requests == 0
    err = capsys.readouterr().err
    [line] = [text for text in err.splitlines() if "ABORTED" in text]
    assert "API key was refused (whoami answered null)" in line and "[target] api_key" in line
    assert "not-the-key-0000" not in err

    back = sites(datasets=5, source="datapress")
    code = run(write_job(tmp_path, back, source="datapress", dp_key="not-the-key-0000"),
               tmp_path / "back")
    assert code == 2 and back.dp.stats.requests == 1
    assert "[source] api_key" in capsys.readouterr().err


def test_a_wrong_prefix_or_field_map_is_one_clear_line(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=2)
    assert run(write_job(tmp_path, s, prefix="/api"), tmp_path / "state") == 2
    assert "is [target] prefix right ('/api/v3' or '/api')?" in capsys.readouterr().err
    job = write_job(tmp_path, s, extra='[target.fields]\nlanguag = "custom.lang"')
    assert run(job, tmp_path / "state") == 2
    assert "[target.fields] unknown pivot field(s): languag" in capsys.readouterr().err
    assert s.dp.stats.requests == 1 and not s.dp.datasets


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


def _final_state(store: DataPressStore) -> dict[str, Any]:
    """What a user sees: each dataset's fields, links, and files by content."""
    state: dict[str, Any] = {}
    for doc in store.datasets.values():
        files = sorted((r["title"], r["order"], store.blobs.get(r["origin"]).sha256)
                       for r in doc["resources"].values())
        links = sorted((link["url"], link["title"]) for link in doc["links"].values())
        fields = {k: v for k, v in doc.items()
                  if k not in ("id", "resources", "links", "createdAt", "updatedAt", "custom")}
        custom = {k: v for k, v in doc["custom"].items() if k != RESOURCES}
        state[doc["custom"][MARK]] = (fields, custom, files, links)
    return state


def test_kill_9_then_resume_equals_an_uninterrupted_run(sites, tmp_path: Path) -> None:
    reference = sites(datasets=30, latency=0.01)
    for name in ("ref", "killed"):
        (tmp_path / name).mkdir()
    assert run(write_job(tmp_path / "ref", reference), tmp_path / "ref-state") == 0

    s = sites(datasets=30, latency=0.01)
    job = write_job(tmp_path / "killed", s)
    state = tmp_path / "killed-state"
    env = {**os.environ, "T_CKAN_KEY": CKAN_KEY, "T_DP_KEY": DP_KEY}
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress"]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    journal = state / "journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once some, not all, work is journaled
        if journal.exists() and journal.read_bytes().count(b'"kind":"dataset"') >= 10:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = journal.read_bytes().count(b'"kind":"dataset"')
    assert 10 <= done < 30  # really interrupted mid-run

    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0
    check_ckan_in_datapress(s)
    assert _final_state(s.dp) == _final_state(reference.dp)
