"""The mirror job CKAN → Opendatasoft: changes updated, deletions deleted or unpublished."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mirror_sites import SOURCE_KEY, add, drop, edit, environment

from bulkport.cli import main
from bulkport.mappers.ods import dataset_id_for
from bulkport.testing import (
    CkanStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

ODS_KEY = "mirror-ods-key-71b3"


@pytest.fixture
def portals() -> Iterator[tuple[CkanStore, OdsStore, str, str]]:
    ckan, ods = CkanStore(seed=7), OdsStore()
    seed_ckan(ckan, datasets=20, resources=1, file_size=400, seed=7)
    servers = [ThreadedServer(lambda: create_ckan_app(ckan, api_keys={SOURCE_KEY: "admin"})),
               ThreadedServer(lambda: create_ods_app(ods, api_keys={ODS_KEY},
                                                     processing_time=0.01))]
    for server in servers:
        server.start()
    yield ckan, ods, servers[0].url, servers[1].url
    for server in servers:
        server.stop()


def run(tmp_path: Path, ckan_url: str, ods_url: str, on_delete: str = "delete") -> int:
    job = tmp_path / "mirror.toml"
    job.write_text(f"""
kind = "mirror"
name = "to-ods"
[source]
type = "ckan"
url = "{ckan_url}"
api_key = "${{M_SOURCE_KEY}}"
include_private = true
[target]
type = "ods"
url = "{ods_url}"
api_key = "{ODS_KEY}"
[options]
connections = 8
status_poll = 0.01
on_delete = "{on_delete}"
""")
    environment()
    return main(["run", str(job), "--state-dir", str(tmp_path / "state"), "--no-progress"])


def writes(ods: OdsStore) -> dict[str, int]:
    return {label: n for label, n in ods.stats.items()
            if label.startswith(("POST", "PUT", "DELETE")) and n}


def on_ods(ckan: CkanStore, ods: OdsStore, pkg_id: str) -> Any:
    uid = ods.dataset_ids.get(dataset_id_for(ckan.packages[pkg_id]["name"]))
    return ods.datasets.get(uid) if uid else None


@pytest.mark.parametrize("on_delete", ["delete", "private"])
def test_mirror_ckan_to_ods(portals, tmp_path: Path, on_delete: str) -> None:
    ckan, ods, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url, on_delete) == 0
    assert len(ods.datasets) == 20
    ids = sorted(ckan.packages)
    edit(ckan, ids[0], title="A new title")
    drop(ckan, ids[1])
    new = add(ckan, ids[2], 1)
    ods.stats.clear()
    assert run(tmp_path, ckan_url, ods_url, on_delete) == 0
    assert on_ods(ckan, ods, ids[0]).metadata["default"]["title"]["value"] == "A new title"
    assert on_ods(ckan, ods, new) is not None
    gone = on_ods(ckan, ods, ids[1])
    if on_delete == "delete":
        assert gone is None and len(ods.datasets) == 20
        assert writes(ods)["DELETE /datasets/{uid}/"] == 1
    else:
        assert gone is not None and not gone.is_published
        assert writes(ods)["POST /datasets/{uid}/unpublish/"] == 1
    assert all(on_ods(ckan, ods, i) is not None for i in ids[3:])

    ods.stats.clear()
    assert run(tmp_path, ckan_url, ods_url, on_delete) == 0  # nothing changed: no write
    assert writes(ods) == {}


def test_verify_says_it_cannot_compare_an_ods_target_yet(portals, tmp_path: Path,
                                                        capsys) -> None:
    _, _, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url) == 0
    assert main(["verify", str(tmp_path / "mirror.toml")]) == 2
    assert "verify cannot list Opendatasoft" in capsys.readouterr().err
