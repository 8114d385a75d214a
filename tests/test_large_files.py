"""A 200 MB file crosses from portal to portal without bulkport's memory growing with it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkport.testing import (
    CkanStore,
    OdsStore,
    SyntheticFile,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    create_portaljs_app,
    seed_ckan,
    seed_ods,
)

BIG = 200 * 1024 * 1024
KEY_A, KEY_B = "large-source-key-1", "large-target-key-2"


@pytest.fixture
def servers() -> Iterator[list[ThreadedServer]]:
    running: list[ThreadedServer] = []
    yield running
    for server in running:
        server.stop()


def _source(size: int, servers: list[ThreadedServer]) -> tuple[CkanStore, str, SyntheticFile]:
    store = CkanStore(seed=1)
    seed_ckan(store, datasets=1, resources=1, file_size=1000, seed=1)
    pkg = next(iter(store.packages.values()))
    res = next(r for r in pkg["resources"] if r.get("url_type") == "upload")
    content = SyntheticFile(size, seed=11, kind="bin")
    store.blobs.put_synthetic(res["id"], content)
    res["size"] = size
    store.save_package(pkg)
    servers.append(ThreadedServer(lambda: create_ckan_app(store, api_keys={KEY_A: "admin"})).start())
    return store, servers[-1].url, content


def _peak_rss_of_run(tmp_path: Path, source_url: str, target_url: str, name: str,
                     pair: tuple[str, str] = ("ckan", "portaljs")) -> int:
    """Run the migration in a child process; return its peak RSS in bytes."""
    job = tmp_path / f"{name}.toml"
    job.write_text(f"""
kind = "migrate"
[source]
type = "{pair[0]}"
url = "{source_url}"
api_key = "{KEY_A}"
[target]
type = "{pair[1]}"
url = "{target_url}"
api_key = "{KEY_B}"
""")
    proc = subprocess.Popen([sys.executable, "-m", "bulkport", "run", str(job), "--no-progress",
                             "--state-dir", str(tmp_path / name)], stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return usage.ru_maxrss * 1024


def test_a_200_mb_file_migrates_ckan_to_portaljs_in_flat_memory(tmp_path: Path,
                                                                 servers: Any) -> None:
    peaks = {}
    for size in (1024, BIG):
        _, source_url, content = _source(size, servers)
        target = CkanStore(seed=2)
        servers.append(ThreadedServer(
            lambda t=target: create_portaljs_app(t, portal="big", api_keys={KEY_B: "admin"})
        ).start())
        peaks[size] = _peak_rss_of_run(tmp_path, source_url, servers[-1].url + "/@big",
                                       f"run-{size}")
        [pkg] = target.packages.values()
        [res] = pkg["resources"]
        assert target.blobs.get(res["id"]).sha256 == content.sha256()
    assert peaks[BIG] - peaks[1024] < 20 * 1024 * 1024, peaks


def test_a_200_mb_file_migrates_ods_to_ckan_in_flat_memory(tmp_path: Path, servers: Any) -> None:
    peaks = {}
    for size in (1024, BIG):
        source = OdsStore(seed=3)
        seed_ods(source, datasets=1, resources=1, file_size=1000, seed=3)
        [dataset] = source.datasets.values()
        [record] = dataset.files.values()
        content = SyntheticFile(size, seed=12, kind="bin")
        source.blobs.put_synthetic(record.uid, content)
        record.size = size
        servers.append(ThreadedServer(lambda s=source: create_ods_app(s, api_keys={KEY_A})).start())
        source_url = servers[-1].url
        target = CkanStore(seed=4)
        servers.append(ThreadedServer(lambda t=target: create_ckan_app(
            t, api_keys={KEY_B: "admin"}, max_resource_size=2 * BIG)).start())
        peaks[size] = _peak_rss_of_run(tmp_path, source_url, servers[-1].url, f"ods-{size}",
                                       ("ods", "ckan"))
        [pkg] = target.packages.values()
        held = {target.blobs.get(r["id"]).sha256 for r in pkg["resources"]
                if r.get("url_type") == "upload"}
        assert content.sha256() in held
    assert peaks[BIG] - peaks[1024] < 20 * 1024 * 1024, peaks
