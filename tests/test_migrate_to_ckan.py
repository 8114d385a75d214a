"""Migrations into CKAN, against the simulators; assertions on the final target state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkport.cli import main
from bulkport.mappers.ckan import MARK
from bulkport.testing import (
    CkanStore,
    ThreadedServer,
    create_ckan_app,
    create_portaljs_app,
    seed_ckan,
)

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
    err = capsys.readouterr().err
    assert "refused as too large" in err
    assert len(by_mark(target)) == len([p for p in source.packages.values()
                                        if p["state"] == "active"])


def test_a_refused_file_is_tried_again_by_the_next_run(sites, tmp_path: Path, capsys) -> None:
    source, source_url, target, target_url = sites(datasets=6)
    limited = "max_resource_size = 2000"  # checked before sending: no byte goes out
    assert run(tmp_path, source_url, target_url, "state", limited) == 1
    assert "over the site's limit of 2,000" in capsys.readouterr().err
    files = sum(1 for p in target.packages.values() for r in p["resources"]
                if r.get("url_type") == "upload")
    target.stats.clear()

    # Still refused: reported again, and the datasets written last time are not rewritten.
    assert run(tmp_path, source_url, target_url, "state", limited) == 1
    assert "over the site's limit of 2,000" in capsys.readouterr().err
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
    texts = [output.out, output.err, *(p.read_text() for p in (tmp_path / "state").iterdir()
                                       if p.is_file())]
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
