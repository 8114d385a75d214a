"""Source records that map to one name, migrated into a real CKAN 2.12 in one run: one
keeps the name, the others take their deterministic variant in that run (no 409 left for a
second run), and a run with a fresh state directory finds every copy under its name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from name_clash_sites import run, twin_source, write_job
from real_ckan.tier import CkanInstance

from bulkport.portals.ckan.mapping import MARK, slug_variant
from bulkport.testing import ThreadedServer, create_datapress_app

pytestmark = pytest.mark.real_ckan


@pytest.fixture
def source() -> Iterator[tuple[dict[str, str], str]]:
    store, clash = twin_source()
    with ThreadedServer(lambda: create_datapress_app(store)) as server:
        yield clash, server.url


def copies(ckan: CkanInstance) -> dict[str, dict[str, Any]]:
    found = ckan.result("package_search", {"include_private": True, "rows": 1000})["results"]
    return {next(e["value"] for e in pkg["extras"] if e["key"] == MARK): pkg for pkg in found}


@pytest.mark.parametrize("connections", [2, 8])
def test_names_clashing_in_one_run_take_their_variant_on_a_real_ckan(
        real_ckan_target: CkanInstance, source, tmp_path: Path, connections: int) -> None:
    clash, source_url = source
    target = real_ckan_target
    job = write_job(tmp_path, source_url, f'type = "ckan"\nurl = "{target.url}"\n'
                    f'api_key = "{target.token}"\norganization = "copies"',
                    options=f"connections = {connections}")
    assert run(job, tmp_path / "state", "--dry-run", "--report", str(tmp_path / "dry.json")) == 0
    assert json.loads((tmp_path / "dry.json").read_text())["counts"]["would_create"] == len(clash)

    assert run(job, tmp_path / "state", "--report", str(tmp_path / "first.json")) == 0
    assert json.loads((tmp_path / "first.json").read_text())["counts"]["datasets_created"] == (
        len(clash))
    held = copies(target)
    assert set(held) == set(clash)
    names = {sid: held[sid]["name"] for sid in clash}
    for group in set(clash.values()):
        members = [sid for sid, name in clash.items() if name == group]
        assert sorted(names[sid] == group for sid in members) == [False, False, True]
        assert all(names[sid] in (group, slug_variant(group, sid)) for sid in members)

    assert run(job, tmp_path / "fresh", "--report", str(tmp_path / "again.json")) == 0
    counts = json.loads((tmp_path / "again.json").read_text())["counts"]
    assert counts["datasets_unchanged"] == len(clash)
    assert {sid: pkg["name"] for sid, pkg in copies(target).items()} == names
