"""Migrations out of Opendatasoft, against the simulators; assertions on the final state."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from interrupt import kill_when_journaled
from leaks import assert_no_key

from bulkport.cli import main
from bulkport.config import load_job
from bulkport.errors import ConfigError
from bulkport.http import HttpClient
from bulkport.portals import registry
from bulkport.portals.ckan.mapping import MARK
from bulkport.portals.ods.settings import OdsSourceSettings
from bulkport.portals.ods.source import OdsSource
from bulkport.settings import from_table
from bulkport.testing import (
    CkanStore,
    Faults,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
    seed_ods,
)
from bulkport.testing.ods.explore import render
from bulkport.testing.ods.seed import LICENSES

ODS_KEY, CKAN_KEY = "ods-source-key-5e1f", "ckan-target-key-8c2a"
WRITES = ("package_create", "package_update", "package_patch", "package_delete",
          "resource_create", "resource_update", "resource_patch", "resource_delete",
          "organization_create")
DOWNLOADS = ("GET /datasets/{uid}/resources/files/{file_uid}/download/",
             "GET /datasets/{uid}/attachments/{attachment_uid}/download/",
             "GET /api/explore/v2.1/catalog/datasets/{dataset_id}/exports/{format}")
MAPPED = {("default", f) for f in ("title", "description", "keyword", "modified", "language",
                                   "publisher", "references")} | {("internal", "license_id")}
LICENCE_MAP = "\n".join(f'"{pivot}" = "{ods}"' for pivot, ods in LICENSES.items())
REVERSE = {ods: pivot for pivot, ods in LICENSES.items()}


@dataclass
class Sites:
    ods: OdsStore
    ckan: CkanStore
    ods_url: str
    ckan_url: str


@pytest.fixture
def sites() -> Iterator[Any]:
    servers: list[ThreadedServer] = []

    def make(datasets: int = 30, faults: Faults | None = None, ods: OdsStore | None = None,
             ods_middleware: Any = None) -> Sites:
        if ods is None:
            ods = OdsStore(seed=8)
            seed_ods(ods, datasets=datasets, resources=3, file_size=2500, seed=8,
                     large_export_rows=3000)
        ckan = CkanStore(seed=9)

        def ods_app() -> web.Application:
            app = create_ods_app(ods, api_keys={ODS_KEY}, faults=faults, processing_time=0.02)
            if ods_middleware is not None:
                app.middlewares.insert(0, ods_middleware)
            return app

        o = ThreadedServer(ods_app).start()
        c = ThreadedServer(lambda: create_ckan_app(ckan, api_keys={CKAN_KEY: "admin"},
                                                   faults=faults)).start()
        servers.extend([o, c])
        return Sites(ods, ckan, o.url, c.url)

    yield make
    for server in servers:
        server.stop()


def write_job(directory: Path, sites: Sites, *, ods_key: str = ODS_KEY, source: str = "") -> Path:
    """An Opendatasoft → CKAN job; ``source`` adds lines to the [source] table."""
    return job_file(directory, f"""
[source]
type = "ods"
url = "{sites.ods_url}"
api_key = "{ods_key}"
{source}
[source.licenses]
{LICENCE_MAP}
[target]
type = "ckan"
url = "{sites.ckan_url}"
api_key = "${{T_CKAN_KEY}}"
""")


def job_file(directory: Path, tables: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    job = directory / "job.toml"
    job.write_text(f"""kind = "migrate"
name = "from-ods"
{tables}
[options]
connections = 8
retries = 10
""")
    return job


def run(job: Path, state: Path, *args: str) -> int:
    os.environ["T_CKAN_KEY"] = CKAN_KEY
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def ckan_writes(store: CkanStore) -> int:
    return sum(store.stats[f"ckan:{action}"] for action in WRITES)


def copies(store: CkanStore) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for pkg in store.packages.values():
        mark = next(e["value"] for e in pkg["extras"] if e["key"] == MARK)
        assert mark not in found, f"duplicate of {mark}"
        found[mark] = pkg
    return found


def expected_files(ods: OdsStore, uid: str) -> list[tuple[str, str, str]]:
    """(kind, name, sha256 or URL) of what a dataset's copy must hold, sorted."""
    dataset = ods.datasets[uid]
    files: list[tuple[str, str, str]] = []
    for resource in dataset.resources.values():
        source = resource["datasource"]
        if source["type"] == "uploaded_file":
            files.append(("upload", resource["title"], ods.blobs.get(source["file"]["uid"]).sha256))
        elif source["type"] == "http":
            files.append(("link", resource["title"],
                          source["connection"]["url"] + source["relative_url"]))
    files += [("upload", a.filename, ods.blobs.get(a.uid).sha256)
              for a in dataset.attachments.values()]
    if any(r["datasource"]["type"] == "ftp" for r in dataset.resources.values()):
        body = b"".join(render(ods.records[uid], delimiter=",", with_bom=False))
        title = dataset.metadata["default"]["title"]["value"]
        files.append(("upload", f"{title} (CSV export)", hashlib.sha256(body).hexdigest()))
    return sorted(files)


def held_files(ckan: CkanStore, pkg: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted(("upload", r["name"], ckan.blobs.get(r["id"]).sha256)
                  if r.get("url_type") == "upload" else ("link", r["name"], r["url"])
                  for r in pkg["resources"])


def check_copy(ods: OdsStore, ckan: CkanStore) -> None:
    """Every Opendatasoft dataset once in CKAN, mapped field by field, files byte for byte."""
    held = copies(ckan)
    assert set(held) == set(ods.datasets)
    for uid, dataset in ods.datasets.items():
        pkg = held[uid]
        meta = {t: {k: v["value"] for k, v in f.items()} for t, f in dataset.metadata.items()}
        default, internal = meta["default"], meta.get("internal", {})
        extras = {e["key"]: e["value"] for e in pkg["extras"]}
        assert pkg["name"] == dataset.dataset_id and pkg["title"] == default["title"]
        assert pkg["notes"] == default.get("description", "")
        assert pkg["url"] == default.get("references", "")
        assert pkg["private"] is dataset.is_restricted
        keywords = (json.loads(extras["bulkport_keywords"]) if "bulkport_keywords" in extras
                    else [t["name"] for t in pkg["tags"]])
        assert sorted(keywords) == sorted(default.get("keyword", []))
        licence = internal.get("license_id")
        assert pkg["license_id"] == (REVERSE.get(licence, licence) if licence else "")
        assert ckan.get_org(pkg["owner_org"])["title"] == default["publisher"]
        assert extras["language"] == default["language"]
        for template, values in meta.items():  # every other field of every template
            for name, value in values.items():
                if (template, name) not in MAPPED:
                    text = value if isinstance(value, str) else orjson.dumps(value).decode()
                    assert extras[f"ods:{template}.{name}"] == text, (template, name)
        assert held_files(ckan, pkg) == expected_files(ods, uid)


def test_ods_to_ckan_moves_every_dataset_field_and_file(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=30)
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    check_copy(s.ods, s.ckan)
    assert any(r.get("url_type") != "upload" for p in s.ckan.packages.values()
               for r in p["resources"])  # remote files stayed links
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["ok"] and report["counts"]["datasets_created"] == 30
    assert_no_key(capsys, tmp_path / "state", ODS_KEY, CKAN_KEY)


def test_a_second_run_writes_nothing(sites, tmp_path: Path) -> None:
    s = sites(datasets=20)
    job = write_job(tmp_path, s)
    assert run(job, tmp_path / "state") == 0
    writes, downloads = ckan_writes(s.ckan), sum(s.ods.stats[d] for d in DOWNLOADS)
    ods_before, ckan_before = s.ods.stats.requests, s.ckan.stats.requests

    assert run(job, tmp_path / "state") == 0  # from the journal: the source is listed, no more
    assert ckan_writes(s.ckan) == writes and s.ckan.stats.requests - ckan_before == 1
    # The list, then 2 lists per dataset, and the Explore API's list of the attachments of
    # a published one (their public links, for the redirect map, need its ids).
    explored = sum(1 for d in s.ods.datasets.values() if d.is_published and d.attachments)
    assert explored > 0
    assert s.ods.stats.requests - ods_before == 1 + 2 * 20 + explored

    assert run(job, tmp_path / "fresh-state") == 0  # no journal: compares, writes nothing
    assert ckan_writes(s.ckan) == writes
    assert sum(s.ods.stats[d] for d in DOWNLOADS) == downloads  # no file fetched again
    check_copy(s.ods, s.ckan)


def test_dry_run_plans_and_writes_nothing(sites, tmp_path: Path) -> None:
    s = sites(datasets=12)
    assert run(write_job(tmp_path, s), tmp_path / "state", "--dry-run") == 0
    assert ckan_writes(s.ckan) == 0 and sum(s.ods.stats[d] for d in DOWNLOADS) == 0
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["would_create"] == 12


def test_survives_ten_percent_faults(sites, tmp_path: Path) -> None:
    s = sites(datasets=30, faults=Faults(error_rate=0.1, retry_after=0, seed=4))
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    assert s.ods.stats["faults"] > 10 and s.ckan.stats["faults"] > 10
    assert s.ods.stats["faults:drop_after"] > 0 and s.ckan.stats["faults:drop_after"] > 0
    check_copy(s.ods, s.ckan)  # complete, and no dataset or file twice


def test_wrong_key_stops_at_the_first_request(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=10)
    assert run(write_job(tmp_path, s, ods_key="wrong-ods-key-0000"), tmp_path / "state") == 2
    assert s.ods.stats.requests == 1 and ckan_writes(s.ckan) == 0
    output = capsys.readouterr()
    [summary] = [line for line in output.out.splitlines() if "ABORTED" in line]
    assert "HTTP 401" in summary and "authentication" in summary
    assert "wrong-ods-key-0000" not in output.out + output.err


def test_a_dataset_deleted_while_listing_fails_alone(sites, tmp_path: Path) -> None:
    @web.middleware
    async def deleted(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith(f"/datasets/{victim.uid}/attachments/"):
            return web.json_response({"error_code": "not_found", "message": "Not found."},
                                     status=404)
        return await handler(request)

    ods = OdsStore(seed=8)
    seed_ods(ods, datasets=8, seed=8)
    victim = next(iter(ods.datasets.values()))
    s = sites(ods=ods, ods_middleware=deleted)
    assert run(write_job(tmp_path, s), tmp_path / "state") == 1
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["datasets_created"] == 7
    [failure] = report["failures"]
    assert victim.dataset_id in failure["unit"] and "HTTP 404" in failure["reason"]
    assert set(copies(s.ckan)) == set(ods.datasets) - {victim.uid}


def _state(ckan: CkanStore) -> dict[str, Any]:
    """What a user sees in CKAN: datasets by source id, their fields and files."""
    skip = {"id", "owner_org", "metadata_created", "metadata_modified", "indexed_ts", "resources",
            "tags", "organization", "creator_user_id", "revision_id"}
    return {mark: ({k: v for k, v in pkg.items() if k not in skip},
                   sorted(t["name"] for t in pkg["tags"]), held_files(ckan, pkg))
            for mark, pkg in copies(ckan).items()}


def test_kill_9_then_resume_equals_an_uninterrupted_run(sites, tmp_path: Path) -> None:
    latency = Faults(latency=0.01)
    reference = sites(datasets=50, faults=latency)
    assert run(write_job(tmp_path / "ref", reference), tmp_path / "ref-state") == 0

    s = sites(datasets=50, faults=latency)
    state = tmp_path / "killed-state"
    command = [sys.executable, "-m", "bulkport", "run", str(write_job(tmp_path / "killed", s)),
               "--state-dir", str(state), "--no-progress"]
    env = {**os.environ, "T_CKAN_KEY": CKAN_KEY}
    kill_when_journaled(command, env, state, None, 30)
    assert len(s.ckan.packages) < 50  # really interrupted mid-run

    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0
    check_copy(s.ods, s.ckan)
    assert _state(s.ckan) == _state(reference.ckan)


def test_ckan_to_ods_to_ckan_keeps_the_mapped_fields(sites, tmp_path: Path) -> None:
    origin = CkanStore(seed=5)
    seed_ckan(origin, datasets=25, resources=3, file_size=2500, seed=5)
    ods = OdsStore(seed=6, custom_templates={"bulkport": ["source_extras"]})
    back = sites(ods=ods)
    with ThreadedServer(lambda: create_ckan_app(origin, api_keys={CKAN_KEY: "admin"})) as first:
        there = job_file(tmp_path / "there", f"""
[source]
type = "ckan"
url = "{first.url}"
api_key = "${{T_CKAN_KEY}}"
include_private = true
[target]
type = "ods"
url = "{back.ods_url}"
api_key = "{ODS_KEY}"
extras_template = "bulkport"
[target.licenses]
{LICENCE_MAP}
""")
        assert run(there, tmp_path / "there-state") == 0
    assert len(ods.datasets) == 25
    home = write_job(tmp_path / "home", back, source='extras_template = "bulkport"')
    assert run(home, tmp_path / "home-state") == 0

    core = ("title", "notes", "author", "author_email", "maintainer", "maintainer_email",
            "version", "url", "license_id", "private")
    returned = {p["name"]: p for p in back.ckan.packages.values()}
    for pkg in origin.packages.values():
        copy = returned[pkg["name"]]
        for field in core:
            assert (copy.get(field) or "") == (pkg.get(field) or ""), field
        assert sorted(t["name"] for t in copy["tags"]) == sorted(t["name"] for t in pkg["tags"])
        mine = {e["key"]: e["value"] for e in copy["extras"]}
        theirs = {e["key"]: e["value"] for e in pkg["extras"]}
        # Added: the mark, and the source's own dates (CKAN sets its record dates itself).
        assert set(mine) - set(theirs) <= {MARK, "issued", "modified"}
        assert theirs.items() <= mine.items()
        assert back.ckan.org_name(copy["owner_org"]) == origin.org_name(pkg["owner_org"])
        assert [(r["name"], r["description"], r["format"]) for r in copy["resources"]] == [
            (r["name"], r["description"], r["format"]) for r in pkg["resources"]]
        assert held_files(back.ckan, copy) == held_files(origin, pkg)


def test_the_example_job_file_reads_an_ods_source(monkeypatch) -> None:
    monkeypatch.setenv("ODS_API_KEY", "k" * 12)
    monkeypatch.setenv("CKAN_API_KEY", "c" * 12)
    job = load_job(Path(__file__).parents[3] / "jobs" / "ods-to-ckan.toml")
    assert job.source is not None and job.target is not None
    assert (job.source.type, job.target.type) == ("ods", "ckan")
    source = registry.open_source(job.source, HttpClient(), job.options)
    assert isinstance(source, OdsSource) and source.limit == 1000
    assert source.read.export == "auto" and source.read.export_format == "csv"


@pytest.mark.parametrize(("settings", "message"), [
    ({}, "api_key is required"),
    ({"export": "sometimes"}, "export must be one of auto, always, never"),
    ({"export_format": "pdf"}, "export_format must be one of"),
])
def test_source_settings_are_checked(settings: dict[str, Any], message: str) -> None:
    table = {"type": "ods", "url": "https://x.test", **settings,
             **({"api_key": "k" * 12} if settings else {})}
    with pytest.raises(ConfigError, match=message):
        from_table(OdsSourceSettings, table, "job.toml: [source]")
