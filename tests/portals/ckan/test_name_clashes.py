"""Source records that map to one CKAN name, in one run: one keeps the name, each other one
takes its deterministic variant (made from its source id) in that same run; later runs,
with the state directory or without it, find every copy under the same name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mirror_sites import by_mark
from name_clash_sites import run, twin_source, write_job

from bulkport.portals.ckan.mapping import slug_variant
from bulkport.testing import CkanStore, ThreadedServer, create_ckan_app, create_datapress_app

TARGET_KEY = "clash-target-key-81c4"


@pytest.fixture
def sites() -> Iterator[tuple[dict[str, str], str, CkanStore, str]]:
    source, clash = twin_source()
    target = CkanStore(seed=42)
    servers = [ThreadedServer(lambda: create_datapress_app(source)).start(),
               ThreadedServer(lambda: create_ckan_app(target,
                                                      api_keys={TARGET_KEY: "admin"})).start()]
    yield clash, servers[0].url, target, servers[1].url
    for server in servers:
        server.stop()


def _target(url: str) -> str:
    return f'type = "ckan"\nurl = "{url}"\napi_key = "{TARGET_KEY}"\norganization = "copies"'


def check_names(clash: dict[str, str], copies: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every source record has one copy; per clashing name, one copy holds it and each
    other one its own variant. Returns source id → name."""
    assert set(copies) == set(clash)
    names = {sid: copies[sid]["name"] for sid in clash}
    for group in set(clash.values()):
        members = [sid for sid, name in clash.items() if name == group]
        assert sorted(names[sid] == group for sid in members) == [False, False, True]
        for sid in members:
            assert names[sid] in (group, slug_variant(group, sid))
    return names


@pytest.mark.parametrize("connections", [2, 8])
def test_names_clashing_in_one_run_take_their_variant_in_that_run(sites, tmp_path: Path,
                                                                  connections: int) -> None:
    clash, source_url, target, target_url = sites
    job = write_job(tmp_path, source_url, _target(target_url),
                    options=f"connections = {connections}")
    assert run(job, tmp_path / "state", "--dry-run", "--report", str(tmp_path / "dry.json")) == 0
    assert json.loads((tmp_path / "dry.json").read_text())["counts"]["would_create"] == len(clash)

    assert run(job, tmp_path / "state") == 0  # no 409: the variants are taken in this run
    names = check_names(clash, by_mark(target))

    # A later run, even without the state directory, finds each copy under its name.
    before = {k: v for k, v in target.stats.items() if k.endswith(("_create", "_patch"))}
    assert run(job, tmp_path / "fresh", "--report", str(tmp_path / "again.json")) == 0
    assert {k: v for k, v in target.stats.items() if k.endswith(("_create", "_patch"))} == before
    counts = json.loads((tmp_path / "again.json").read_text())["counts"]
    assert counts["datasets_unchanged"] == len(clash)
    assert check_names(clash, by_mark(target)) == names
