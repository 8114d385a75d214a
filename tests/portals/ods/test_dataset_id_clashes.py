"""Source records that map to one Opendatasoft ``dataset_id``, in one run: one keeps it,
each other one takes its deterministic variant, in that run — never one copy written over
with another record's metadata. Later runs find every copy under the same ``dataset_id``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from name_clash_sites import run, twin_source, write_job

from bulkport.portals.ods.target import dataset_id_variant
from bulkport.testing import DataPressStore, OdsStore, ThreadedServer, create_datapress_app
from bulkport.testing.ods.app import create_ods_app

ODS_KEY = "clash-ods-key-22b7"
MARK = 'mark_field = "custom.bulkport_source_id"'


@pytest.fixture
def sites() -> Iterator[tuple[DataPressStore, dict[str, str], str, OdsStore, str]]:
    source, clash = twin_source()
    ods = OdsStore(custom_templates={"custom": ["bulkport_source_id"]})
    servers = [ThreadedServer(lambda: create_datapress_app(source)).start(),
               ThreadedServer(lambda: create_ods_app(ods, api_keys={ODS_KEY},
                                                     processing_time=0.01)).start()]
    yield source, clash, servers[0].url, ods, servers[1].url
    for server in servers:
        server.stop()


def _target(url: str, mark: bool) -> str:
    return f'type = "ods"\nurl = "{url}"\napi_key = "{ODS_KEY}"\n' + (MARK if mark else "")


def _titles(ods: OdsStore) -> dict[str, str]:
    return {d.dataset_id: d.metadata["default"]["title"]["value"] for d in ods.datasets.values()}


def _writes(ods: OdsStore) -> int:
    return sum(n for label, n in ods.stats.items() if label.startswith(("POST", "PUT", "DELETE")))


def check_ids(source: DataPressStore, clash: dict[str, str], ods: OdsStore) -> None:
    """One dataset per source record, each with that record's title; per clashing name,
    one holds it and the others their own variants."""
    titles = _titles(ods)
    assert len(ods.datasets) == len(clash)
    for group in set(clash.values()):
        members = [sid for sid, name in clash.items() if name == group]
        held = {sid: next(i for i, t in titles.items() if t == source.datasets[sid]["title"])
                for sid in members}
        assert sorted(held[sid] == group for sid in members) == [False, False, True]
        for sid in members:
            assert held[sid] in (group, dataset_id_variant(group, sid))


@pytest.mark.parametrize("mark", [True, False], ids=["mark_field", "no mark_field"])
def test_dataset_ids_clashing_in_one_run_take_their_variant(sites, tmp_path: Path,
                                                            mark: bool) -> None:
    source, clash, source_url, ods, ods_url = sites
    for sid in clash:  # titles tell the copies apart
        source.datasets[sid]["title"] = f"Title of {sid}"
    job = write_job(tmp_path, source_url, _target(ods_url, mark), options="connections = 8")
    assert run(job, tmp_path / "state") == 0
    check_ids(source, clash, ods)

    # Changed at the source: each copy is updated in place, none over another's.
    for sid in clash:
        source.datasets[sid]["title"] = f"New title of {sid}"
    assert run(job, tmp_path / "state") == 0
    check_ids(source, clash, ods)

    if mark:  # the mark alone tells whose copy is whose, without the state directory
        before = _writes(ods)
        assert run(job, tmp_path / "fresh", "--report", str(tmp_path / "again.json")) == 0
        assert _writes(ods) == before
        counts = json.loads((tmp_path / "again.json").read_text())["counts"]
        assert counts["datasets_unchanged"] == len(clash)
