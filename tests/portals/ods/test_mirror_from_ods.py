"""The mirror job out of Opendatasoft (into CKAN, and into another Opendatasoft domain):
which writes each run makes, which source requests it needs, and what verify says."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from mirror_sites import TARGET_KEY, WRITES, by_mark, environment, state_of
from ods_edits import ByHand

from bulkport.cli import main
from bulkport.portals.ods.mapping import dataset_id_for
from bulkport.testing import (
    CkanStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ods,
)

ODS_KEY, ODS_TARGET_KEY = "mirror-ods-source-key-3d9e", "mirror-ods-target-key-6a0c"
DOWNLOADS = ("GET /datasets/{uid}/resources/files/{file_uid}/download/",
             "GET /datasets/{uid}/attachments/{attachment_uid}/download/",
             "GET /api/explore/v2.1/catalog/datasets/{dataset_id}/exports/{format}")
RESOURCES, ATTACHMENTS = "GET /datasets/{uid}/resources/", "GET /datasets/{uid}/attachments/"


@dataclass
class Sites:
    ods: OdsStore
    ckan: CkanStore
    ods_url: str = ""
    ckan_url: str = ""
    failing_listing: set[int] = field(default_factory=set)  # ``offset``s of /datasets/ pages

    @property
    def hand(self) -> ByHand:
        return ByHand(self.ods_url, ODS_KEY)

    def writes(self) -> dict[str, int]:
        """Writes the CKAN target received, by action (only those that happened)."""
        return {a: self.ckan.stats[f"ckan:{a}"] for a in WRITES if self.ckan.stats[f"ckan:{a}"]}

    def reset_stats(self) -> None:
        for stats in (self.ods.stats, self.ckan.stats):
            stats.clear()
            stats.requests = 0


def kinds(store: OdsStore, uid: str) -> set[str]:
    return {r["datasource"]["type"] for r in store.datasets[uid].resources.values()}


def without_export(store: OdsStore) -> list[str]:
    """The datasets whose data is not read from FTP. An export's date is its dataset's, so
    any change to such a dataset sends its export again (rightly, but it is not counted)."""
    return [uid for uid in sorted(store.datasets) if "ftp" not in kinds(store, uid)]


@pytest.fixture
def sites() -> Iterator[Callable[..., Sites]]:
    servers: list[ThreadedServer] = []

    def make(datasets: int = 120) -> Sites:
        made = Sites(OdsStore(seed=11), CkanStore(seed=12))
        seed_ods(made.ods, datasets=datasets, resources=2, file_size=300, seed=11,
                 large_export_rows=20)

        @web.middleware
        async def fail_listing(request: web.Request, handler: Any) -> web.StreamResponse:
            if (request.path.endswith("/datasets/") and request.method == "GET"
                    and int(request.query.get("offset", 0)) in made.failing_listing):
                return web.json_response({"error_code": "internal_error",
                                          "message": "A server error occurred."}, status=500)
            return await handler(request)

        def ods_app() -> web.Application:
            app = create_ods_app(made.ods, api_keys={ODS_KEY}, processing_time=0.01)
            app.middlewares.insert(0, fail_listing)
            return app

        servers.append(ThreadedServer(ods_app).start())
        made.ods_url = servers[-1].url
        servers.append(ThreadedServer(lambda: create_ckan_app(
            made.ckan, api_keys={TARGET_KEY: "admin"})).start())
        made.ckan_url = servers[-1].url
        return made

    yield make
    for server in servers:
        server.stop()


def write_job(folder: Path, s: Sites) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "mirror.toml"
    job.write_text(f"""
kind = "mirror"
name = "from-ods"
[source]
type = "ods"
url = "{s.ods_url}"
api_key = "{ODS_KEY}"
page_size = 50
safety_margin = 0
[target]
type = "ckan"
url = "{s.ckan_url}"
api_key = "${{M_TARGET_KEY}}"
[options]
connections = 8
retries = 2
""")
    return job


def run(job: Path, state: Path, *args: str) -> int:
    environment()
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def last_report(folder: Path) -> dict[str, Any]:
    newest = max((folder / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text())


def test_second_run_makes_exactly_the_writes_the_source_changes_need(sites, tmp_path: Path,
                                                                     capsys) -> None:
    s: Sites = sites()
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    assert set(by_mark(s.ckan)) == set(s.ods.datasets)
    first = state_of(state)

    # The source changes: 9 datasets in their metadata, 1 only in a file, 3 deleted, 5 new.
    plain = without_export(s.ods)
    file_changed = next(uid for uid in plain if "uploaded_file" in kinds(s.ods, uid))
    others = [uid for uid in plain if uid != file_changed]
    edited, deleted = others[:9], others[-3:]
    publisher = s.ods.datasets[others[20]].metadata["default"]["publisher"]["value"]

    async def change() -> list[str]:
        for n, uid in enumerate(edited):
            await s.hand.set_field(uid, "default", "title", f"Edited title {n}")
        await s.hand.replace_file(file_changed, b"id,value\n1,changed\n2,again\n")
        for uid in deleted:
            await s.hand.delete(uid)
        return [await s.hand.add(f"added-{n}", f"Added {n}", publisher) for n in range(5)]

    added = anyio.run(change)
    # Read again although unchanged: the dataset that set the watermark (since is inclusive).
    at_watermark = {uid for uid, entry in first["datasets"].items()
                    if entry[2] == first["watermark"]} - set(edited) - set(deleted)
    s.reset_stats()

    assert run(job, state) == 0
    assert s.writes() == {"package_patch": 9, "resource_patch": 1, "package_create": 5,
                          "resource_create": 5, "package_delete": 3}
    assert sum(s.ods.stats[d] for d in DOWNLOADS) == 1  # only the changed file travelled
    read = len(edited) + 1 + len(added) + len(at_watermark)
    assert s.ods.stats[RESOURCES] == s.ods.stats[ATTACHMENTS] == read  # details: changes only
    assert s.ods.stats["GET /datasets/"] == 2 * 3  # ids and dates, then changes: 3 pages each
    assert s.ods.stats["GET /datasets/{uid}/"] == 3  # the missing ones, looked up again
    report = last_report(state)
    assert report["counts"]["datasets_updated"] == 10
    assert report["counts"]["datasets_created"] == 5
    assert report["counts"]["datasets_deleted"] == 3
    assert "datasets_read_by_id" not in report["counts"]

    copies = by_mark(s.ckan)
    assert set(copies) == set(s.ods.datasets)
    assert all(copies[uid]["title"] == f"Edited title {n}" for n, uid in enumerate(edited))
    copy = next(r for r in copies[file_changed]["resources"] if r.get("url_type") == "upload"
                and s.ckan.blobs.get(r["id"]).size == len(b"id,value\n1,changed\n2,again\n"))
    assert copy["name"] == s.ods.datasets[file_changed].resources[copy["bulkport_source_id"]][
        "title"]
    second = state_of(state)
    assert second["watermark"] > first["watermark"]

    capsys.readouterr()
    assert main(["verify", str(job)]) == 0
    assert "they match" in capsys.readouterr().out

    s.reset_stats()
    assert run(job, state) == 0  # nothing changed: no write, no file
    assert s.writes() == {}
    assert sum(s.ods.stats[d] for d in DOWNLOADS) == 0


def test_a_listing_that_fails_midway_deletes_nothing(sites, tmp_path: Path, capsys) -> None:
    s: Sites = sites(datasets=60)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    before = state_of(state)
    victim, edited = without_export(s.ods)[:2]

    async def change() -> None:
        await s.hand.delete(victim)
        await s.hand.set_field(edited, "default", "title", "changed")

    anyio.run(change)
    s.failing_listing.add(50)  # the second page of ids fails, retries included
    s.reset_stats()
    assert run(job, state) == 2
    assert "listing the source failed, so nothing was written or deleted" in (
        capsys.readouterr().out)
    assert s.writes() == {} and state_of(state) == before

    s.failing_listing.clear()
    assert run(job, state) == 0
    assert s.writes() == {"package_delete": 1, "package_patch": 1}


def test_ods_to_ods_mirror_with_a_mark(tmp_path: Path, capsys) -> None:
    source = OdsStore(seed=21)
    seed_ods(source, datasets=16, resources=2, file_size=300, seed=21, large_export_rows=20)
    target = OdsStore(seed=22, custom_templates={"mirror": ["source_id"]})
    with (ThreadedServer(lambda: create_ods_app(source, api_keys={ODS_KEY})) as there,
          ThreadedServer(lambda: create_ods_app(target, api_keys={ODS_TARGET_KEY},
                                                processing_time=0.01)) as here):
        job = tmp_path / "mirror.toml"
        job.write_text(f"""
kind = "mirror"
name = "ods-to-ods"
[source]
type = "ods"
url = "{there.url}"
api_key = "{ODS_KEY}"
[target]
type = "ods"
url = "{here.url}"
api_key = "{ODS_TARGET_KEY}"
mark_field = "mirror.source_id"
[options]
connections = 8
status_poll = 0.01
""")
        state = tmp_path / "state"
        assert run(job, state) == 0
        copies = {d.metadata["mirror"]["source_id"]["value"]: d for d in target.datasets.values()}
        assert set(copies) == set(source.datasets)
        assert all(copies[uid].dataset_id == d.dataset_id for uid, d in source.datasets.items())
        assert main(["verify", str(job)]) == 0

        first, gone = [uid for uid in without_export(source)
                       if "uploaded_file" in kinds(source, uid)][:2]
        hand = ByHand(there.url, ODS_KEY)

        async def change() -> None:
            await hand.set_field(first, "default", "description", "<p>New text</p>")
            await hand.delete(gone)

        anyio.run(change)
        target.stats.clear()
        assert run(job, state) == 0
        writes = {k: n for k, n in target.stats.items()
                  if k.startswith(("POST", "PUT", "DELETE")) and n}
        assert writes == {"PUT /datasets/{uid}/metadata/{template}/": 1,
                          "POST /datasets/{uid}/publish/": 1,  # to show the new text
                          "DELETE /datasets/{uid}/": 1}
        held = target.by_dataset_id(dataset_id_for(source.datasets[first].dataset_id))
        assert held is not None
        assert held.metadata["default"]["description"]["value"] == "<p>New text</p>"
        capsys.readouterr()
        assert main(["verify", str(job)]) == 0
        assert "15 datasets at the source, 15 copies on the target: they match" in (
            capsys.readouterr().out)
