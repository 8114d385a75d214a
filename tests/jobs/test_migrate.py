"""The whole CKAN → Opendatasoft job against the simulators; assertions on the final state."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from interrupt import kill_at_random_moments, kill_when_journaled, wait_for_journal
from leaks import assert_no_key

from bulkport.cli import main
from bulkport.demo import check_target
from bulkport.portals.ods.mapping import dataset_id_for
from bulkport.testing import (
    CkanStore,
    Faults,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

CKAN_KEY = "ckan-test-key-4f8a1c"
ODS_KEY = "ods-test-key-9b2d7e"
WRITES = ("POST", "PUT", "DELETE")


@dataclass
class Portals:
    ckan: CkanStore
    ods: OdsStore
    ckan_url: str
    ods_url: str


def ods_writes(store: OdsStore) -> int:
    return sum(n for label, n in store.stats.items() if label.startswith(WRITES))


@pytest.fixture
def make_portals() -> Iterator:
    servers: list[ThreadedServer] = []

    def make(datasets: int = 30, faults: Faults | None = None,
             ods_middleware: object = None, search_requires_post: bool = False,
             ckan_middleware: object = None) -> Portals:
        ckan, ods = CkanStore(), OdsStore(custom_templates={"bulkport": ["source_extras"]})
        seed_ckan(ckan, datasets=datasets, resources=2, file_size=3000, seed=3)

        def ods_app() -> web.Application:
            app = create_ods_app(ods, api_keys={ODS_KEY}, faults=faults, processing_time=0.02)
            if ods_middleware is not None:
                app.middlewares.insert(0, ods_middleware)
            return app

        def ckan_app() -> web.Application:
            app = create_ckan_app(ckan, api_keys={CKAN_KEY: "admin"}, faults=faults,
                                  search_requires_post=search_requires_post)
            if ckan_middleware is not None:
                app.middlewares.insert(0, ckan_middleware)
            return app

        c = ThreadedServer(ckan_app).start()
        o = ThreadedServer(ods_app).start()
        servers.extend([c, o])
        return Portals(ckan, ods, c.url, o.url)

    yield make
    for server in servers:
        server.stop()


def write_job(tmp_path: Path, portals: Portals, *, ods_key: str = ODS_KEY, extra: str = "") -> Path:
    job = tmp_path / "job.toml"
    job.write_text(f"""
kind = "migrate"
name = "test"
[source]
type = "ckan"
url = "{portals.ckan_url}"
api_key = "${{TEST_CKAN_KEY}}"
include_private = true
[target]
type = "ods"
url = "{portals.ods_url}"
api_key = "{ods_key}"
extras_template = "bulkport"
[target.licenses]
"cc-by" = "lic-cc-by"
[options]
connections = 8
retries = 8
status_poll = 0.02
{extra}
""")
    return job


def run(job: Path, state: Path, *args: str) -> int:
    os.environ["TEST_CKAN_KEY"] = CKAN_KEY
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def test_migrates_every_dataset_and_file(make_portals, tmp_path: Path, capsys) -> None:
    portals = make_portals(datasets=40)
    assert run(write_job(tmp_path, portals), tmp_path / "state") == 0
    assert check_target(portals.ckan, portals.ods) == []
    assert len(portals.ods.datasets) == 40

    # Metadata mapped field by field, for every dataset.
    for pkg in portals.ckan.packages.values():
        target = portals.ods.datasets[portals.ods.dataset_ids[dataset_id_for(pkg["name"])]]
        default = target.metadata["default"]
        assert default["title"]["value"] == pkg["title"]
        assert default.get("keyword", {}).get("value", []) == [t["name"] for t in pkg["tags"]]
        if pkg["license_id"] == "cc-by":
            assert target.metadata["internal"]["license_id"]["value"] == "lic-cc-by"
        carried = orjson.loads(target.metadata["bulkport"]["source_extras"]["value"])
        if pkg.get("author"):
            assert carried["author"] == pkg["author"]

    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["ok"] and report["counts"]["datasets_created"] == 40
    assert report["requests"]["total"] > 0

    # No key anywhere a user can read.
    assert_no_key(capsys, tmp_path / "state", CKAN_KEY, ODS_KEY)


def test_second_run_writes_nothing(make_portals, tmp_path: Path) -> None:
    portals = make_portals(datasets=15)
    job = write_job(tmp_path, portals)
    assert run(job, tmp_path / "state") == 0
    writes, requests = ods_writes(portals.ods), portals.ods.stats.requests

    assert run(job, tmp_path / "state") == 0  # resumed from the journal: no lookups either
    assert ods_writes(portals.ods) == writes
    assert portals.ods.stats.requests - requests == 2  # only the key and template checks

    assert run(job, tmp_path / "fresh-state") == 0  # no journal: reads, compares, writes nothing
    assert ods_writes(portals.ods) == writes
    assert check_target(portals.ckan, portals.ods) == []


def test_first_run_on_an_empty_domain_creates_without_lookups(make_portals,
                                                               tmp_path: Path) -> None:
    portals = make_portals(datasets=12)
    assert run(write_job(tmp_path, portals), tmp_path / "state") == 0
    assert portals.ods.stats["GET /datasets/"] == 1  # the key check only
    assert portals.ods.stats["POST /datasets/"] == 12


def test_a_create_refused_as_taken_updates_the_dataset_there(make_portals,
                                                             tmp_path: Path) -> None:
    @web.middleware
    async def created_meanwhile(request: web.Request, handler):  # type: ignore[no-untyped-def]
        # Someone creates the victim just before bulkport does: bulkport's create is refused.
        creating = request.method == "POST" and request.path.endswith("/datasets/")
        if creating and f'"dataset_id":"{victim}"' in await request.text():
            await handler(request)
        return await handler(request)

    victim = "x"
    portals = make_portals(datasets=6, ods_middleware=created_meanwhile)
    victim = dataset_id_for(next(iter(portals.ckan.packages.values()))["name"])
    assert run(write_job(tmp_path, portals), tmp_path / "state") == 0
    assert len(portals.ods.datasets) == 6 and check_target(portals.ckan, portals.ods) == []
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["datasets_created"] == 5


def test_dry_run_writes_nothing_and_plans_everything(make_portals, tmp_path: Path) -> None:
    portals = make_portals(datasets=12)
    assert run(write_job(tmp_path, portals), tmp_path / "state", "--dry-run") == 0
    assert ods_writes(portals.ods) == 0 and not portals.ods.datasets
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["would_create"] == 12


def test_survives_ten_percent_faults(make_portals, tmp_path: Path) -> None:
    portals = make_portals(datasets=40, faults=Faults(error_rate=0.1, retry_after=0, seed=11))
    assert run(write_job(tmp_path, portals), tmp_path / "state") == 0
    assert portals.ods.stats["faults"] > 10 and portals.ckan.stats["faults"] > 0
    assert portals.ods.stats["faults:drop_after"] > 0
    # Every file sent exactly once: a duplicate resource or attachment would show here.
    assert check_target(portals.ckan, portals.ods) == []


def test_wrong_key_stops_at_first_refusal(make_portals, tmp_path: Path, capsys) -> None:
    portals = make_portals(datasets=20)
    code = run(write_job(tmp_path, portals, ods_key="wrong-key-123456"), tmp_path / "state")
    assert code == 2
    assert portals.ods.stats.requests == 1
    output = capsys.readouterr()
    assert "HTTP 401" in output.out and "ABORTED" in output.out
    assert "wrong-key-123456" not in output.out + output.err


def test_missing_extras_template_is_a_clear_error(make_portals, tmp_path: Path, capsys) -> None:
    portals = make_portals(datasets=3)
    job = write_job(tmp_path, portals)
    job.write_text(job.read_text().replace('extras_template = "bulkport"',
                                           'extras_template = "nope"'))
    assert run(job, tmp_path / "state") == 2
    assert "extras_template 'nope' does not exist" in capsys.readouterr().out
    assert ods_writes(portals.ods) == 0


def test_bad_record_is_reported_and_skipped(make_portals, tmp_path: Path) -> None:
    portals = make_portals(datasets=10)
    victim = next(iter(portals.ckan.packages.values()))
    broken = {**victim, "extras": {"not": "a list"}}
    portals.ckan.save_package(broken)
    assert run(write_job(tmp_path, portals), tmp_path / "state") == 1
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["datasets_created"] == 9
    [failure] = report["failures"]
    assert victim["name"] in failure["unit"] and "extras" in failure["reason"]


def test_non_json_reply_fails_one_dataset_only(make_portals, tmp_path: Path) -> None:
    @web.middleware
    async def html_for_one(request: web.Request, handler):  # type: ignore[no-untyped-def]
        # The victim's lookup, or its create when there is no lookup (an empty domain).
        creating = request.method == "POST" and request.path.endswith("/datasets/")
        body = await request.text() if creating else ""
        if (request.query.get("dataset_id", "").startswith(victim)
                or f'"dataset_id":"{victim}' in body):
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        return await handler(request)

    victim = "x"
    portals = make_portals(datasets=10, ods_middleware=html_for_one)
    victim = dataset_id_for(next(iter(portals.ckan.packages.values()))["name"])
    assert run(write_job(tmp_path, portals), tmp_path / "state") == 1
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["datasets_created"] == 9
    assert "expected JSON, got text/html" in report["failures"][0]["reason"]


def test_a_file_that_cannot_be_read_fails_its_dataset_only(make_portals, tmp_path: Path) -> None:
    """The files of a dataset travel side by side: one that fails on every attempt fails its
    dataset, as any other error of that dataset would, and the run goes on."""
    @web.middleware
    async def busy_for_one(request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.match_info.get("resource_id") == victim:
            return web.Response(status=503, text="busy")
        return await handler(request)

    victim = "x"
    portals = make_portals(datasets=10, ckan_middleware=busy_for_one)
    pkg = next(p for p in portals.ckan.packages.values()
               if p["state"] == "active" and len(p["resources"]) == 2)
    victim = pkg["resources"][1]["id"]
    job = write_job(tmp_path, portals)
    job.write_text(job.read_text().replace("retries = 8", "retries = 2"))
    assert run(job, tmp_path / "state") == 1
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["aborted"] is None and report["counts"]["failed"] == 1
    assert report["failures"][0]["unit"] == f"dataset {pkg['name']}"
    assert "HTTP 503" in report["failures"][0]["reason"]
    assert report["counts"]["datasets_created"] == report["counts"]["datasets_listed_by_source"] - 1


def _final_state(ods: OdsStore) -> dict[str, object]:
    """What a user sees on the target: datasets, metadata, resources and file contents."""
    state: dict[str, object] = {}
    for dataset in ods.datasets.values():
        resources = sorted((r["title"], ods.blobs.get(r["datasource"]["file"]["uid"]).sha256)
                           for r in dataset.resources.values())
        attachments = sorted((a.filename, ods.blobs.get(uid).sha256)
                             for uid, a in dataset.attachments.items())
        metadata = {t: {k: v.get("value") for k, v in values.items() if k != "modified"}
                    for t, values in dataset.metadata.items()}
        state[dataset.dataset_id] = (metadata, resources, attachments,
                                     dataset.is_published)
    return state


def test_kill_9_then_resume_equals_uninterrupted_run(make_portals, tmp_path: Path) -> None:
    latency = Faults(latency=0.01)
    reference = make_portals(datasets=60, faults=latency)
    for name in ("ref", "killed"):
        (tmp_path / name).mkdir()
    assert run(write_job(tmp_path / "ref", reference), tmp_path / "ref-state") == 0

    portals = make_portals(datasets=60, faults=latency)
    job = write_job(tmp_path / "killed", portals)
    state = tmp_path / "killed-state"
    env = {**os.environ, "TEST_CKAN_KEY": CKAN_KEY}
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress"]
    kill_when_journaled(command, env, state, None, 25)
    assert len(portals.ods.datasets) < 60  # really interrupted mid-run

    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0
    assert check_target(portals.ckan, portals.ods) == []
    assert _final_state(portals.ods) == _final_state(reference.ods)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_at_random_moments_then_resume_equals_uninterrupted_run(
        make_portals, tmp_path: Path, seed: int) -> None:
    latency = Faults(latency=0.01)
    reference = make_portals(datasets=50, faults=latency)
    (tmp_path / "ref").mkdir()
    ref_job = write_job(tmp_path / "ref", reference)
    assert run(ref_job, tmp_path / "ref-state") == 0

    portals = make_portals(datasets=50, faults=latency)
    (tmp_path / "killed").mkdir()
    job = write_job(tmp_path / "killed", portals)
    state = tmp_path / "killed-state"
    env = {**os.environ, "TEST_CKAN_KEY": CKAN_KEY}
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress"]
    delays = kill_at_random_moments(command, env, seed=seed, kills=4, longest=2.5)
    assert delays  # at least one run was cut off
    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0, delays
    assert check_target(portals.ckan, portals.ods) == [], delays
    assert _final_state(portals.ods) == _final_state(reference.ods), delays

    # The history, split over the killed runs, still maps every dataset and file once.
    maps = {}
    for name, folder, at in (("ref", ref_job, tmp_path / "ref-state"),
                             ("killed", job, state)):
        out = tmp_path / f"{name}.csv"
        assert main(["export", str(folder), "--state-dir", str(at), "--redirects",
                     str(out)]) == 0
        maps[name] = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert sorted(maps["killed"]) == sorted(maps["ref"]), delays
    assert maps["ref"].count("dataset") == 50


def test_search_falls_back_to_post_when_get_is_refused(make_portals, tmp_path: Path) -> None:
    portals = make_portals(datasets=12, search_requires_post=True)
    assert run(write_job(tmp_path, portals, extra="page_size = 5"), tmp_path / "state") == 0
    assert check_target(portals.ckan, portals.ods) == []
    assert portals.ckan.stats["ckan:package_search"] == 4  # one refused GET, then 3 POST pages


def test_sigterm_drains_then_resume_finishes(make_portals, tmp_path: Path) -> None:
    portals = make_portals(datasets=60, faults=Faults(latency=0.01))
    job = write_job(tmp_path, portals)
    state = tmp_path / "state"
    env = {**os.environ, "TEST_CKAN_KEY": CKAN_KEY}
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress"]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    wait_for_journal(proc, state, None, 10)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "SIGTERM: finishing the work in flight" in err
    report = json.loads((state / "report.json").read_text())
    assert "interrupted" in report["aborted"]
    # Drained, not abandoned: every dataset the target holds is complete and journaled.
    done = report["counts"].get("datasets_created", 0)
    assert 0 < done < 60 and len(portals.ods.datasets) == done

    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0
    assert check_target(portals.ckan, portals.ods) == []
