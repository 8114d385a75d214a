"""Migrations into CKAN, against the simulators; assertions on the final target state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
from mirror_sites import replace_file

from bulkport.cli import main
from bulkport.http import HttpClient, RetryPolicy
from bulkport.model import Dataset, Resource
from bulkport.portals.ckan.mapping import MARK, slug_variant
from bulkport.portals.ckan.settings import CkanTargetSettings
from bulkport.portals.ckan.target import CkanTarget
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.testing import (
    CkanStore,
    ThreadedServer,
    create_ckan_app,
    create_portaljs_app,
    seed_ckan,
    serve,
)
from bulkport.transfer import FileTransfer

SOURCE_KEY, TARGET_KEY = "source-key-77a1", "target-key-31c9"
WRITES = ("package_create", "package_update", "package_patch", "package_delete",
          "resource_create", "resource_update", "resource_patch", "resource_delete",
          "organization_create")
CORE = ("title", "notes", "author", "author_email", "maintainer", "maintainer_email",
        "version", "url", "license_id", "private")


def writes(store: CkanStore) -> int:
    return sum(store.stats[f"ckan:{action}"] for action in WRITES)


@pytest.fixture
def sites() -> Iterator[Any]:
    servers: list[ThreadedServer] = []

    def make(datasets: int = 25, **target_options: Any) -> tuple[CkanStore, str, CkanStore, str]:
        source, target = CkanStore(seed=5), CkanStore(seed=6)
        seed_ckan(source, datasets=datasets, resources=3, file_size=2500, seed=5)
        for store, key, options in ((source, SOURCE_KEY, {}), (target, TARGET_KEY, target_options)):
            servers.append(ThreadedServer(
                lambda s=store, k=key, o=options: create_ckan_app(s, api_keys={k: "admin"}, **o)
            ).start())
        return source, servers[-2].url, target, servers[-1].url

    yield make
    for server in servers:
        server.stop()


def run(tmp_path: Path, source_url: str, target_url: str, state: str, extra: str = "") -> int:
    kind = lambda url: "portaljs" if "/@" in url else "ckan"  # noqa: E731
    job = tmp_path / "job.toml"
    job.write_text(f"""
kind = "migrate"
name = "to-ckan"
[source]
type = "{kind(source_url)}"
url = "{source_url}"
api_key = "${{T_SOURCE_KEY}}"
include_private = true
[target]
type = "{kind(target_url)}"
url = "{target_url}"
api_key = "${{T_TARGET_KEY}}"
{extra}
[options]
connections = 8
""")
    os.environ.update(T_SOURCE_KEY=SOURCE_KEY, T_TARGET_KEY=TARGET_KEY)
    return main(["run", str(job), "--state-dir", str(tmp_path / state), "--no-progress"])


def by_mark(store: CkanStore) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for pkg in store.packages.values():
        mark = next((e["value"] for e in pkg["extras"] if e["key"] == MARK), None)
        assert mark not in found, f"duplicate of {mark}"
        found[mark] = pkg
    return found


def test_ckan_to_ckan_keeps_every_core_field_and_file(sites, tmp_path: Path) -> None:
    source, source_url, target, target_url = sites(datasets=25)
    assert run(tmp_path, source_url, target_url, "state") == 0
    copies = by_mark(target)
    active = [p for p in source.packages.values() if p["state"] == "active"]
    assert set(copies) == {p["id"] for p in active}
    for pkg in active:
        copy = copies[pkg["id"]]
        assert copy["name"] == pkg["name"]
        for field in CORE:
            assert (copy.get(field) or "") == (pkg.get(field) or ""), field
        assert sorted(t["name"] for t in copy["tags"]) == sorted(t["name"] for t in pkg["tags"])
        theirs = {e["key"]: e["value"] for e in copy["extras"]}
        assert {e["key"]: e["value"] for e in pkg["extras"]}.items() <= theirs.items()
        assert target.org_name(copy["owner_org"]) == source.org_name(pkg["owner_org"])
        assert [(r["name"], r["description"], r["format"]) for r in copy["resources"]] == [
            (r["name"], r["description"], r["format"]) for r in pkg["resources"]]
        for mine, original in zip(copy["resources"], pkg["resources"], strict=True):
            if original.get("url_type") == "upload":
                assert mine["url_type"] == "upload"
                assert target.blobs.get(mine["id"]).sha256 == source.blobs.get(original["id"]).sha256
            else:  # links stay links
                assert mine["url"] == original["url"] and not mine.get("url_type")

    # A second run, even without the journal, writes nothing.
    before = writes(target)
    assert run(tmp_path, source_url, target_url, "fresh-state") == 0
    assert writes(target) == before


def test_changes_are_patched_and_hand_made_fields_survive(sites, tmp_path: Path) -> None:
    source, source_url, target, target_url = sites(datasets=6)
    assert run(tmp_path, source_url, target_url, "state") == 0
    pkg = next(p for p in source.packages.values() if p["state"] == "active")
    copy = by_mark(target)[pkg["id"]]
    copy["extras"].append({"key": "curated_by", "value": "target team"})  # made on the target
    target.save_package(copy)
    source.save_package({**pkg, "title": "A new title"})
    before = writes(target)
    assert run(tmp_path, source_url, target_url, "fresh") == 0
    copy = by_mark(target)[pkg["id"]]
    assert copy["title"] == "A new title"
    assert {"key": "curated_by", "value": "target team"} in copy["extras"]
    assert writes(target) - before == 1  # one package_patch, no file sent again


def test_a_changed_file_keeps_the_resource_fields_set_on_the_target(sites,
                                                                    tmp_path: Path) -> None:
    """A file is replaced with resource_patch: resource_update would clear every field it
    is not sent (as CKAN's does), those set by hand on the target included."""
    source, source_url, target, target_url = sites(datasets=6)
    assert run(tmp_path, source_url, target_url, "state") == 0
    pkg = next(p for p in source.packages.values() if p["state"] == "active"
               and any(r.get("url_type") == "upload" for r in p["resources"]))
    changed = replace_file(source, pkg["id"])
    copy = by_mark(target)[pkg["id"]]
    res = next(r for r in copy["resources"] if r[MARK] == changed)
    res.update(resource_type="documentation", local_note="checked by the data team")
    target.save_package(copy)  # set by hand on the target
    before = {a: target.stats[f"ckan:{a}"] for a in WRITES}

    assert run(tmp_path, source_url, target_url, "fresh") == 0
    assert {a: target.stats[f"ckan:{a}"] - n for a, n in before.items()
            if target.stats[f"ckan:{a}"] != n} == {"resource_patch": 1}
    res = next(r for r in by_mark(target)[pkg["id"]]["resources"] if r[MARK] == changed)
    assert (res["resource_type"], res["local_note"]) == ("documentation",
                                                         "checked by the data team")
    assert target.blobs.get(res["id"]).sha256 == source.blobs.get(changed).sha256


class _NoFiles:
    def open_file(self, resource: Resource) -> Any:
        raise AssertionError("links only: no file is read")


def _twins(count: int) -> list[Dataset]:
    """Pairs of source records (two ids) that map to one target name each."""
    return [Dataset(source_id=f"{side}-{n}", name=f"budget-{n}", title=f"Title {side} {n}",
                    resources=[Resource(source_id=f"{side}-{n}-r", name=f"Link {side} {n}",
                                        url=f"https://example.org/{side}-{n}.csv")])
            for n in range(count) for side in ("east", "west")]


async def _upsert_all(url: str, writers: int, datasets: list[Dataset], tmp_path: Path) -> None:
    """Upsert ``datasets`` all at once, spread over ``writers`` CkanTargets (each as another
    run would be: its own journal, no lock shared)."""
    config = CkanTargetSettings(type="ckan", url=url, api_key=TARGET_KEY, organization="copies")
    async with HttpClient(retry=RetryPolicy(attempts=4, backoff_base=0.01)) as client:
        with ExitStack() as stack:
            stores = [stack.enter_context(StateStore(tmp_path / f"run-{n}"))
                      for n in range(writers)]
            targets = [CkanTarget(config, client, Options(), s.journal, Report("twins", "migrate"))
                       for s in stores]
            transfer = FileTransfer(client, _NoFiles(), 2)  # type: ignore[arg-type]
            async with anyio.create_task_group() as tg:
                for n, ds in enumerate(datasets):
                    tg.start_soon(targets[n % writers].upsert, ds, transfer)


def _check_twins(store: CkanStore, datasets: list[Dataset]) -> None:
    copies = by_mark(store)
    assert set(copies) == {ds.source_id for ds in datasets}
    for ds in datasets:
        copy = copies[ds.source_id]
        assert copy["name"] in (ds.name, slug_variant(ds.name, ds.source_id))
        assert copy["title"] == ds.title
        assert [(r["url"], r[MARK]) for r in copy["resources"]] == [
            (ds.resources[0].url, ds.resources[0].source_id)]


@pytest.mark.parametrize(("writers", "reply"), [(1, "200"), (2, "500")])
async def test_concurrent_creates_of_one_name_never_merge_two_datasets(
        tmp_path: Path, writers: int, reply: str) -> None:
    """The simulator races as CKAN 2.12 does: overlapping creates of one name all pass
    validation, then each later one overwrites the first (200, same id) or fails (500).
    One run makes a name's creates one at a time; across runs, a retried create adopts
    nothing that lacks its own mark and takes the name's variant."""
    store = CkanStore(seed=9)
    app = create_ckan_app(store, api_keys={TARGET_KEY: "admin"}, create_race=0.2,
                          create_race_reply=reply)
    datasets = _twins(3)
    async with serve(app) as url:
        await _upsert_all(url, writers, datasets, tmp_path)
    _check_twins(store, datasets)
    assert store.stats["faults"] == 0
    if reply == "500":  # the race happened: one create of each name lost it with a 500
        assert store.stats["ckan:package_create"] == 3 * 3  # 3 won, 3 lost, 3 variants


def test_a_name_held_by_a_hand_made_dataset_gets_a_variant(sites, tmp_path: Path) -> None:
    source, source_url, target, target_url = sites(datasets=4)
    pkg = next(p for p in source.packages.values() if p["state"] == "active")
    owner = next(iter(source.organizations.values()))
    target.save_org(dict(owner))
    hand_made = {**pkg, "id": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "resources": [],
                 "extras": [], "title": "made by hand"}
    target.save_package(hand_made)
    assert run(tmp_path, source_url, target_url, "state") == 0
    assert target.get_package(pkg["name"])["title"] == "made by hand"
    copy = by_mark(target)[pkg["id"]]
    assert copy["name"].startswith(pkg["name"][:50]) and copy["name"] != pkg["name"]


def test_a_file_over_the_size_limit_is_reported_and_the_run_goes_on(sites, tmp_path: Path,
                                                                     capsys) -> None:
    source, source_url, target, target_url = sites(datasets=5, max_resource_size=2000)
    assert run(tmp_path, source_url, target_url, "state") == 1
    assert "refused as too large" in capsys.readouterr().out
    assert len(by_mark(target)) == len([p for p in source.packages.values()
                                        if p["state"] == "active"])


def test_a_refused_file_is_tried_again_by_the_next_run(sites, tmp_path: Path, capsys) -> None:
    source, source_url, target, target_url = sites(datasets=6)
    limited = "max_resource_size = 2000"  # checked before sending: no byte goes out
    assert run(tmp_path, source_url, target_url, "state", limited) == 1
    assert "over the site's limit of 2,000" in capsys.readouterr().out
    files = sum(1 for p in target.packages.values() for r in p["resources"]
                if r.get("url_type") == "upload")
    target.stats.clear()

    # Still refused: reported again, and the datasets written last time are not rewritten.
    assert run(tmp_path, source_url, target_url, "state", limited) == 1
    assert "over the site's limit of 2,000" in capsys.readouterr().out
    assert writes(target) == 0

    # The limit goes: the missing files arrive, nothing else is written twice.
    assert run(tmp_path, source_url, target_url, "state") == 0
    copies = by_mark(target)
    uploaded = [r for p in copies.values() for r in p["resources"] if r.get("url_type") == "upload"]
    expected = [r for p in source.packages.values() if p["state"] == "active"
                for r in p["resources"] if r.get("url_type") == "upload"]
    assert len(uploaded) == len(expected) > files
    assert target.stats["ckan:package_create"] == 0
    assert target.stats["ckan:resource_create"] == len(expected) - files


@pytest.fixture
def portaljs() -> Iterator[Any]:
    servers: list[ThreadedServer] = []

    def make(store: CkanStore, key: str) -> tuple[str, Any]:
        apps: list[Any] = []

        def factory() -> Any:
            apps.append(create_portaljs_app(store, portal="acme", api_keys={key: "admin"}))
            return apps[-1]

        servers.append(ThreadedServer(factory).start())
        return servers[-1].url + "/@acme", apps[-1]

    yield make
    for server in servers:
        server.stop()


def test_ckan_to_portaljs_uploads_through_presigned_urls(sites, portaljs, tmp_path: Path,
                                                         capsys) -> None:
    source, source_url, _, _ = sites(datasets=12)
    target = CkanStore(seed=8)
    target_url, app = portaljs(target, TARGET_KEY)
    assert run(tmp_path, source_url, target_url, "state") == 0
    copies = by_mark(target)
    hosted = 0
    for pkg in (p for p in source.packages.values() if p["state"] == "active"):
        for mine, original in zip(copies[pkg["id"]]["resources"], pkg["resources"], strict=True):
            if original.get("url_type") == "upload":
                hosted += 1
                assert mine["url_type"] == "upload"
                assert target.blobs.get(mine["id"]).sha256 == source.blobs.get(original["id"]).sha256
    assert hosted and target.stats["s3:put"] == hosted
    assert app["objects"].authorization_headers == 0  # the key never reached the store
    output = capsys.readouterr()
    # The state database (and its WAL) read as bytes: every text it holds, whatever the table.
    texts = [output.out, output.err, *(p.read_bytes().decode("latin-1")
                                       for p in (tmp_path / "state").iterdir() if p.is_file())]
    assert not any("X-Amz-Signature" in text or TARGET_KEY in text for text in texts)

    before = writes(target) + target.stats["s3:put"]
    assert run(tmp_path, source_url, target_url, "fresh") == 0
    assert writes(target) + target.stats["s3:put"] == before


def test_portaljs_to_ckan(sites, portaljs, tmp_path: Path) -> None:
    _, _, target, target_url = sites(datasets=1)
    source = CkanStore(seed=9)
    seed_ckan(source, datasets=10, resources=2, file_size=1500, seed=9)
    source_url, _ = portaljs(source, SOURCE_KEY)
    assert run(tmp_path, source_url, target_url, "state") == 0
    copies = by_mark(target)
    for pkg in (p for p in source.packages.values() if p["state"] == "active"):
        for mine, original in zip(copies[pkg["id"]]["resources"], pkg["resources"], strict=True):
            if original.get("url_type") == "upload":
                assert target.blobs.get(mine["id"]).sha256 == source.blobs.get(original["id"]).sha256
