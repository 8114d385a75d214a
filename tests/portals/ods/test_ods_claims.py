"""Which record holds which ``dataset_id`` comes from the state store: a target started
again (a new run) keeps every copy where it is, from the journal, from an old journal or
mirror state imported, or from a mirror's state. No ``mark_field`` here: the state alone
tells the copies apart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from bulkport.http import HttpClient, StreamResponse
from bulkport.model import Dataset, Resource
from bulkport.portals.base import Written
from bulkport.portals.ods.claims import ID_ENTRY, LOCKS
from bulkport.portals.ods.settings import OdsTargetSettings
from bulkport.portals.ods.target import OdsTarget, dataset_id_variant
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.testing import OdsStore, create_ods_app, serve
from bulkport.transfer import FileTransfer

KEY = "claims-ods-key-90e2"
NAME = "street-trees"  # what both records map to


@dataclass
class Site:
    ods: OdsStore
    url: str

    def title(self, dataset_id: str) -> str | None:
        found = self.ods.by_dataset_id(dataset_id)
        return None if found is None else found.metadata["default"]["title"]["value"]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    ods = OdsStore(seed=9)
    async with serve(create_ods_app(ods, api_keys={KEY}, processing_time=0.01)) as url:
        yield Site(ods, url)
    ods.close()


class NoFiles:
    """The records here have no file to send."""

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        raise AssertionError(f"no file was to be read, yet {resource.url} was")


def record(source_id: str, title: str) -> Dataset:
    return Dataset(source_id=source_id, name=NAME, title=title,
                   modified="2024-05-01T00:00:00Z")


async def upsert(site: Site, state: Path, *records: Dataset) -> list[Written]:
    """One run: a new store and a new target over ``state``, writing ``records`` in turn."""
    with StateStore(state) as store:
        async with HttpClient() as client:
            target = OdsTarget(OdsTargetSettings(type="ods", url=site.url, api_key=KEY), client,
                               Options(status_poll=0.01), store.journal,
                               Report("test", "migrate"))
            await target.check()
            done = [await target.upsert(ds, FileTransfer(client, NoFiles(), 1))
                    for ds in records]
            assert len(target.ids._locks) == LOCKS  # a fixed set, however many were claimed
            return done


def holders(state: Path) -> dict[str, str | None]:
    """The journal's dataset_id → source id, read as a new run would."""
    with StateStore(state) as store:
        journal = store.journal
        return {d: journal.find(ID_ENTRY, d) for d in (NAME, dataset_id_variant(NAME, "b"),
                                                        dataset_id_variant(NAME, "a"))}


async def test_a_new_run_keeps_each_record_on_the_dataset_id_it_took(site: Site,
                                                                      tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await upsert(site, state, record("a", "A"), record("b", "B"))
    variant = dataset_id_variant(NAME, "b")
    assert [w.key for w in first] == [NAME, variant]

    # A new run: the records changed; each copy is updated where it is.
    again = await upsert(site, state, record("b", "B2"), record("a", "A2"))
    assert [(w.outcome, w.key) for w in again] == [("updated", variant), ("updated", NAME)]
    assert (site.title(NAME), site.title(variant)) == ("A2", "B2")
    assert holders(state)[NAME] == "a" and holders(state)[variant] == "b"

    # Without that state, nothing tells them apart: b takes the first copy it finds.
    fresh = await upsert(site, tmp_path / "fresh", record("b", "B3"))
    assert fresh[0].key == NAME and site.title(NAME) == "B3"


async def test_an_old_journal_imported_still_says_who_holds_what(site: Site,
                                                                 tmp_path: Path) -> None:
    await upsert(site, tmp_path / "earlier", record("a", "A"))  # made by an earlier version
    state = tmp_path / "state"
    state.mkdir()
    (state / "journal.jsonl").write_bytes(b'{"journal": 1}\n' + orjson.dumps(
        {"kind": ID_ENTRY, "key": "a", "dataset_id": NAME, "at": "2024-01-01T00:00:00+00:00"})
        + b"\n")
    [written] = await upsert(site, state, record("b", "B"))
    assert written.key == dataset_id_variant(NAME, "b") and site.title(NAME) == "A"


async def test_what_a_mirror_holds_is_a_claim(site: Site, tmp_path: Path) -> None:
    """A mirror's state outlives the journal of its finished runs: a record held there keeps
    its dataset_id, also when the source renames it."""
    await upsert(site, tmp_path / "earlier", record("a", "A"))
    state = tmp_path / "state"
    state.mkdir()
    (state / "mirror.json").write_bytes(orjson.dumps({
        "format": 1, "source": "https://source.example", "target": site.url,
        "watermark": None, "committed_at": None, "datasets": {"a": [NAME, "0" * 64, None]}}))
    renamed = Dataset(source_id="a", name="renamed-trees", title="A renamed",
                      modified="2024-05-02T00:00:00Z")
    written = await upsert(site, state, record("b", "B"), renamed)
    assert [w.key for w in written] == [dataset_id_variant(NAME, "b"), NAME]
    assert site.title(NAME) == "A renamed" and site.ods.by_dataset_id("renamed-trees") is None


async def test_a_record_whose_copy_was_removed_loses_its_dataset_id(site: Site,
                                                                   tmp_path: Path) -> None:
    """Its copy deleted from the domain, a's dataset_id is free: b, mapped to it too, takes
    it, and a, when it comes back, takes its own variant (one holder per dataset_id)."""
    state = tmp_path / "state"
    await upsert(site, state, record("a", "A"))
    site.ods.remove(site.ods.by_dataset_id(NAME))  # type: ignore[arg-type]
    [taken] = await upsert(site, state, record("b", "B"))
    assert (taken.outcome, taken.key) == ("created", NAME)
    [back] = await upsert(site, state, record("a", "A again"))
    assert (back.outcome, back.key) == ("created", dataset_id_variant(NAME, "a"))
    assert site.title(NAME) == "B" and site.title(back.key) == "A again"
    assert holders(state) == {NAME: "b", dataset_id_variant(NAME, "b"): None,
                              dataset_id_variant(NAME, "a"): "a"}
