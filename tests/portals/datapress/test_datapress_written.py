"""What a DataPress upsert says it did, and where: the dataset's public page and each file's
download URL, followed on the simulator. Where a copy is found again: the journal, what a
mirror holds, or one pass over the export kept in the state store."""

from __future__ import annotations

import hashlib
import html
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from datapress_sites import dp_replace_file

from bulkport.http import HttpClient
from bulkport.model import Dataset
from bulkport.portals.base import Written
from bulkport.portals.datapress.settings import DataPressSourceSettings, DataPressTargetSettings
from bulkport.portals.datapress.source import DataPressSource
from bulkport.portals.datapress.target import ID_ENTRY, SITE_ENTRY, DataPressTarget
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.testing import DataPressStore, create_datapress_app, seed_datapress, serve
from bulkport.transfer import FileTransfer

SOURCE_KEY, TARGET_KEY = "dp-written-source", "dp-written-target"
PART = 1024


@dataclass
class Sites:
    source: DataPressStore
    source_url: str
    target: DataPressStore
    target_url: str
    team: str


@pytest.fixture
async def sites() -> AsyncIterator[Sites]:
    source, target = DataPressStore(seed=21), DataPressStore(seed=22)
    seed_datapress(source, datasets=4, resources=2, file_size=1500, seed=21)
    for doc in source.datasets.values():
        doc["sharing"] = "public"  # the pages are followed without a key
    source.add_user("Source admin", "s@example.org", admin=True, key=SOURCE_KEY)
    team = target.add_team("Migrated")["id"]
    target.add_user("Target admin", "t@example.org", admin=True, key=TARGET_KEY)
    async with serve(create_datapress_app(source)) as source_url, serve(
            create_datapress_app(target, min_part_size=PART)) as target_url:
        yield Sites(source, source_url, target, target_url, team)
    source.close()
    target.close()


class Ends:
    """The source and target adapters of one run over one state store."""

    def __init__(self, sites: Sites, client: HttpClient, store: StateStore) -> None:
        self.source = DataPressSource(DataPressSourceSettings(
            type="datapress", url=sites.source_url, api_key=SOURCE_KEY), client, Options())
        self.target = DataPressTarget(DataPressTargetSettings(
            type="datapress", url=sites.target_url, api_key=TARGET_KEY, team=sites.team,
            masthead="simulator", part_size=PART), client, Options(), store.journal,
            Report("written", "migrate"))
        self.transfer = FileTransfer(client, self.source, 2)

    async def datasets(self) -> list[Dataset]:
        send, receive = anyio.create_memory_object_stream[Any](100)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: self.source.produce(send, page_concurrency=1))
            return [self.source.to_pivot(raw) async for raw in receive]

    async def upsert_all(self) -> dict[str, Written]:
        return {ds.source_id: await self.target.upsert(ds, self.transfer)
                for ds in await self.datasets()}


async def _get(url: str) -> tuple[int, bytes, str]:
    """What a person's browser gets: no key."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.read(), response.content_type


def _sha(store: DataPressStore, doc: dict[str, Any], resource_id: str) -> str:
    blob = store.blobs.get(doc["resources"][resource_id]["origin"])
    assert blob is not None
    return str(blob.sha256)


async def test_upsert_says_where_the_dataset_and_its_files_now_are(sites: Sites,
                                                                   tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        async with HttpClient() as client:
            ends = Ends(sites, client, store)
            written = await ends.upsert_all()
            again = await ends.upsert_all()
    assert set(written) == set(sites.source.datasets)
    for source_id, done in written.items():
        doc = sites.target.datasets[done.key]
        assert doc["custom"]["bulkport_source_id"] == source_id
        assert done.outcome == "created"
        assert done.url == f"{sites.target_url}/dataset/{done.key}"
        status, page, kind = await _get(done.url)
        assert (status, kind) == (200, "text/html")
        assert html.escape(doc["title"]).encode() in page
        original = sites.source.datasets[source_id]
        assert [f.source_id for f in done.files] == sorted(
            original["resources"], key=lambda rid: original["resources"][rid]["order"])
        assert {f.action for f in done.files} == {"created"}
        for file in done.files:
            status, body, _ = await _get(file.url)
            assert status == 200
            assert hashlib.sha256(body).hexdigest() == _sha(sites.source, original,
                                                            file.source_id)
        # A second run: nothing written, the same places.
        assert again[source_id].outcome == "unchanged"
        assert again[source_id].key == done.key and again[source_id].url == done.url
        assert [(f.source_id, f.action, f.url) for f in again[source_id].files] == [
            (f.source_id, "unchanged", f.url) for f in done.files]


async def test_unknown_pages_and_files_are_404(sites: Sites, tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        async with HttpClient() as client:
            done = next(iter((await Ends(sites, client, store).upsert_all()).values()))
    file = done.files[0]
    dataset_url = done.url
    assert (await _get(f"{dataset_url}/any-slug"))[0] == 200  # the friendly URL
    assert (await _get(f"{sites.target_url}/dataset/zzzzz"))[0] == 404
    assert (await _get(f"{sites.target_url}/dataset/zzzzz/some-title"))[0] == 404
    resource_id = file.url.split("/")[-2]
    assert (await _get(file.url.replace(f"/{resource_id}/", "/zzz/")))[0] == 404
    assert (await _get(file.url.replace(f"/{done.key}/", "/zzzzz/")))[0] == 404


async def test_a_replaced_file_is_updated_at_a_url_that_serves_the_new_bytes(
        sites: Sites, tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        async with HttpClient() as client:
            ends = Ends(sites, client, store)
            first = await ends.upsert_all()
            changed_id = sorted(sites.source.datasets)[0]
            replaced = dp_replace_file(sites.source, changed_id)
            second = await ends.upsert_all()
    done = second[changed_id]
    assert done.outcome == "updated" and done.key == first[changed_id].key
    actions = {f.source_id: f.action for f in done.files}
    assert actions.pop(replaced) == "updated" and set(actions.values()) == {"unchanged"}
    file = next(f for f in done.files if f.source_id == replaced)
    status, body, _ = await _get(file.url)
    assert status == 200 and hashlib.sha256(body).hexdigest() == _sha(
        sites.source, sites.source.datasets[changed_id], replaced)
    assert all(second[sid].outcome == "unchanged" for sid in second if sid != changed_id)


async def test_a_fresh_state_finds_the_copies_by_one_export_pass_kept_in_the_store(
        sites: Sites, tmp_path: Path) -> None:
    with StateStore(tmp_path / "first") as store:
        async with HttpClient() as client:
            first = await Ends(sites, client, store).upsert_all()
    sites.target.stats.clear()
    with StateStore(tmp_path / "fresh") as store:
        async with HttpClient() as client:
            ends = Ends(sites, client, store)
            datasets = await ends.datasets()
            again = {ds.source_id: await ends.target.upsert(ds, ends.transfer)
                     for ds in datasets}
            journal = store.journal
            assert journal.count(SITE_ENTRY) == len(first)  # the index is in the database
            for ds in datasets:
                key = first[ds.source_id].key
                assert ends.target.key_for(ds) == key
                assert journal.find(ID_ENTRY, key) == ds.source_id
    assert {sid: w.key for sid, w in again.items()} == {sid: w.key for sid, w in first.items()}
    assert {w.outcome for w in again.values()} == {"unchanged"}
    assert sites.target.stats["datapress:export"] == 1  # one pass, however many datasets
    assert sites.target.stats["datapress:create"] == 0


async def test_what_a_mirror_holds_is_found_without_reading_the_export(
        sites: Sites, tmp_path: Path) -> None:
    with StateStore(tmp_path / "first") as store:
        async with HttpClient() as client:
            first = await Ends(sites, client, store).upsert_all()
    sites.target.stats.clear()
    with StateStore(tmp_path / "mirror") as store:
        for source_id, done in first.items():  # as a mirror's commit leaves its state
            store.db.execute("INSERT INTO mirror (source_id, target_key, hash) VALUES (?, ?, ?)",
                             (source_id, done.key, "h"))
        async with HttpClient() as client:
            ends = Ends(sites, client, store)
            datasets = await ends.datasets()
            assert {ds.source_id: ends.target.key_for(ds) for ds in datasets} == {
                sid: w.key for sid, w in first.items()}
            again = [await ends.target.upsert(ds, ends.transfer) for ds in datasets]
        assert store.journal.count(ID_ENTRY) == 0  # nothing to learn: the mirror knows it
    assert {w.outcome for w in again} == {"unchanged"}
    assert sites.target.stats["datapress:export"] == 0
