"""The file URLs a DataPress upsert reports are those the official client downloads from.

``DataPressClient.download_file`` (the ``datapress`` package on PyPI, fetched as
:mod:`test_datapress_client` fetches its suite) reads ``resources[id].url`` from the
dataset JSON and downloads that URL: for every file bulkport says it wrote, the client must
find the same URL and get the source's bytes from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from test_datapress_client import official_suite

from bulkport.http import HttpClient
from bulkport.portals.base import Written
from bulkport.portals.datapress.settings import DataPressSourceSettings, DataPressTargetSettings
from bulkport.portals.datapress.source import DataPressSource
from bulkport.portals.datapress.target import DataPressTarget
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.testing import DataPressStore, ThreadedServer, create_datapress_app, seed_datapress
from bulkport.transfer import FileTransfer

pytestmark = pytest.mark.oracle

SOURCE_KEY, TARGET_KEY = "oracle-source-key-81c2", "oracle-target-key-5a0e"
PART = 1024
# Run with the official client: for each dataset and file URL reported, the resource the
# client finds at that URL, and the SHA-256 of what download_file returns for it.
CLIENT_SCRIPT = """
import hashlib, json, sys
from datapress import DataPressClient

instance, key, wanted = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = DataPressClient(api_key=key, base_url=instance)
found = {}
for dataset_id, urls in wanted.items():
    resources = client.get_dataset(dataset_id)["resources"]
    for url in urls:
        rid = next((r for r, res in resources.items() if res.get("url") == url), None)
        body = client.download_file(dataset_id, rid) if rid else b""
        found[url] = [rid, hashlib.sha256(body).hexdigest()]
print(json.dumps(found))
"""


async def _migrate(source_url: str, target_url: str, team: str, state: Path) -> list[Written]:
    with StateStore(state) as store:
        async with HttpClient() as client:
            source = DataPressSource(DataPressSourceSettings(
                type="datapress", url=source_url, api_key=SOURCE_KEY), client, Options())
            target = DataPressTarget(DataPressTargetSettings(
                type="datapress", url=target_url, api_key=TARGET_KEY, team=team,
                masthead="simulator", part_size=PART), client, Options(), store.journal,
                Report("oracle", "migrate"))
            transfer = FileTransfer(client, source, 2)
            send, receive = anyio.create_memory_object_stream[Any](100)
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: source.produce(send, page_concurrency=1))
                return [await target.upsert(source.to_pivot(raw), transfer)
                        async for raw in receive]


def test_the_official_client_downloads_the_files_at_the_urls_reported(tmp_path: Path) -> None:
    suite = official_suite(tmp_path)
    source, target = DataPressStore(seed=31), DataPressStore(seed=32)
    seed_datapress(source, datasets=3, resources=2, file_size=1800, seed=31)
    source.add_user("Source admin", "s@example.org", admin=True, key=SOURCE_KEY)
    team = target.add_team("Migrated")["id"]
    target.add_user("Target admin", "t@example.org", admin=True, key=TARGET_KEY)
    with ThreadedServer(lambda: create_datapress_app(source)) as source_server, \
            ThreadedServer(lambda: create_datapress_app(target, min_part_size=PART)) as server:
        written = anyio.run(_migrate, source_server.url, server.url, team, tmp_path / "state")
        wanted = {w.key: [f.url for f in w.files] for w in written}
        assert sum(map(len, wanted.values())) == sum(
            len(doc["resources"]) for doc in source.datasets.values())
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(suite.library) if suite.library else None,
                          os.environ.get("PYTHONPATH")]))}
        done = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, server.url, TARGET_KEY,
                               json.dumps(wanted)], env=env, capture_output=True, text=True,
                              timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    for w in written:
        original = source.datasets[target.datasets[w.key]["custom"]["bulkport_source_id"]]
        for file in w.files:
            rid, sha = found[file.url]
            assert rid is not None, f"the client finds no resource at {file.url}"
            blob = source.blobs.get(original["resources"][file.source_id]["origin"])
            assert blob is not None and sha == blob.sha256
    source.close()
    target.close()
