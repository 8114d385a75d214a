"""The mirror job CKAN → Opendatasoft: changes updated, deletions deleted or unpublished."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mirror_sites import SOURCE_KEY, add, drop, edit, environment, replace_file
from ods_edits import ByHand

from bulkport.cli import main
from bulkport.portals.ods.mapping import dataset_id_for
from bulkport.testing import (
    CkanStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

ODS_KEY = "mirror-ods-key-71b3"
MARK = 'mark_field = "mirror.source_id"'


@pytest.fixture
def portals() -> Iterator[tuple[CkanStore, OdsStore, str, str]]:
    ckan, ods = CkanStore(seed=7), OdsStore(custom_templates={"mirror": ["source_id"]})
    seed_ckan(ckan, datasets=20, resources=1, file_size=400, seed=7)
    servers = [ThreadedServer(lambda: create_ckan_app(ckan, api_keys={SOURCE_KEY: "admin"})),
               ThreadedServer(lambda: create_ods_app(ods, api_keys={ODS_KEY},
                                                     processing_time=0.01))]
    for server in servers:
        server.start()
    yield ckan, ods, servers[0].url, servers[1].url
    for server in servers:
        server.stop()


def run(tmp_path: Path, ckan_url: str, ods_url: str, on_delete: str = "delete",
        target: str = "") -> int:
    """Write the job (``target``: lines added to its [target] table) and run it."""
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
{target}
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


def test_a_replaced_file_replaces_its_copy_and_nothing_else(portals, tmp_path: Path,
                                                           capsys) -> None:
    ckan, ods, ckan_url, ods_url = portals
    first, second = sorted(ckan.packages)[:2]
    pkg = ckan.packages[second]  # its file becomes a document: an attachment on the domain
    ckan.save_package({**pkg, "resources": [{**pkg["resources"][0], "format": "PDF",
                                             "url": "report.pdf"}]})
    changed = {first: "CSV", second: "PDF"}
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    for pkg_id in changed:
        replace_file(ckan, pkg_id)
    capsys.readouterr()
    assert verify(tmp_path) == 1
    assert capsys.readouterr().out.count("is older than the source's file") == 2
    ods.stats.clear()

    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    w = writes(ods)
    assert w["POST /datasets/{uid}/resources/files/"] == 1
    assert w["PUT /datasets/{uid}/resources/{resource_uid}/"] == 1
    assert w["DELETE /datasets/{uid}/attachments/{attachment_uid}/"] == 1
    assert w["POST /datasets/{uid}/attachments/"] == 1
    assert "POST /datasets/{uid}/resources/" not in w
    for pkg_id, fmt in changed.items():
        res = ckan.packages[pkg_id]["resources"][0]
        copy = on_ods(ckan, ods, pkg_id)
        held = copy.attachments if fmt == "PDF" else {
            r["datasource"]["file"]["uid"]: r for r in copy.resources.values()}
        [uid] = held  # one copy, the new one
        assert ods.blobs.get(uid).sha256 == ckan.blobs.get(res["id"]).sha256
    assert verify(tmp_path) == 0

    ods.stats.clear()
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    assert writes(ods) == {}


def verify(tmp_path: Path) -> int:
    return main(["verify", str(tmp_path / "mirror.toml")])


def test_verify_needs_a_mark_field_on_an_ods_target(portals, tmp_path: Path, capsys) -> None:
    _, _, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url) == 0
    capsys.readouterr()
    assert verify(tmp_path) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "could not compare: verify needs [target] mark_field on Opendatasoft" in line


@pytest.mark.parametrize(("mark", "message"), [
    ("nope.source_id", "mark_field 'nope.source_id': template 'nope' does not exist"),
    ("mirror.nope", "mark_field 'mirror.nope': 'nope' is not a field of template 'mirror'"),
    ("source_id", 'mark_field must be "template.field"'),
])
def test_a_mark_field_the_domain_lacks_stops_before_any_write(portals, tmp_path: Path, capsys,
                                                             mark: str, message: str) -> None:
    _, ods, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url, target=f'mark_field = "{mark}"') == 2
    output = capsys.readouterr()
    [summary] = [line for line in (output.out + output.err).splitlines() if message in line]
    # A malformed mark is refused with the job file, before any request (an error on
    # stderr); one the domain lacks once the domain is asked, before any write (the run's
    # ABORTED summary on stdout).
    early = "must be" in message
    assert summary.startswith("error: ") if early else "ABORTED" in summary
    assert summary in (output.err if early else output.out).splitlines()
    assert not ods.datasets


def test_verify_with_a_mark_finds_hand_edits_and_a_full_run_repairs_them(
        portals, tmp_path: Path, capsys) -> None:
    ckan, ods, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    ids = sorted(ckan.packages)
    assert all(on_ods(ckan, ods, i).metadata["mirror"]["source_id"]["value"] == i for i in ids)
    capsys.readouterr()
    assert verify(tmp_path) == 0
    assert "20 datasets at the source, 20 copies on the target: they match" in (
        capsys.readouterr().out)

    edited, stripped = on_ods(ckan, ods, ids[0]), on_ods(ckan, ods, ids[1])
    hand = ByHand(ods_url, ODS_KEY)

    async def by_hand() -> None:
        await hand.set_field(edited.uid, "default", "title", "Edited on Opendatasoft")
        for uid in list(stripped.resources):
            await hand.call("DELETE", f"/datasets/{stripped.uid}/resources/{uid}/")

    anyio.run(by_hand)
    capsys.readouterr()
    assert verify(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"differs: {edited.dataset_id}: default.title\n" in out
    assert f"differs: {stripped.dataset_id}: resource " in out and "missing" in out
    assert "2 difference(s)" in out

    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0  # no change at the source
    assert verify(tmp_path) == 1
    environment()
    assert main(["run", str(tmp_path / "mirror.toml"), "--state-dir", str(tmp_path / "state"),
                 "--no-progress", "--full"]) == 0
    assert verify(tmp_path) == 0


def test_a_dataset_without_the_mark_survives_a_delete(portals, tmp_path: Path) -> None:
    ckan, ods, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    ids = sorted(ckan.packages)
    copy = on_ods(ckan, ods, ids[0])
    hand = ByHand(ods_url, ODS_KEY)

    async def replace_by_hand() -> str:
        await hand.delete(copy.uid)
        return await hand.add(copy.dataset_id, "Made by hand", "The team")

    made = anyio.run(replace_by_hand)
    drop(ckan, ids[0])
    drop(ckan, ids[1])
    ods.stats.clear()
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    assert made in ods.datasets  # same dataset_id, no mark: not the mirror's to delete
    assert on_ods(ckan, ods, ids[1]) is None  # the mirror's own copy went
    assert writes(ods) == {"DELETE /datasets/{uid}/": 1}
    reports = sorted((tmp_path / "state" / "reports").glob("*.json"),
                     key=lambda p: p.stat().st_mtime_ns)
    report = json.loads(reports[-1].read_text())
    assert report["counts"]["datasets_not_owned"] == 1
    assert "no longer carries the ownership mark" in json.dumps(report["notes"])
    assert verify(tmp_path) == 0  # a dataset without the mark is not compared


def test_a_hand_made_dataset_under_a_copys_id_is_never_written(portals, tmp_path: Path,
                                                              capsys) -> None:
    ckan, ods, ckan_url, ods_url = portals
    ids = sorted(ckan.packages)
    taken = dataset_id_for(ckan.packages[ids[0]]["name"])
    made = anyio.run(lambda: ByHand(ods_url, ODS_KEY).add(taken, "Made by hand", "The team"))
    before = ods.datasets[made].metadata

    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 1  # that one dataset failed
    assert "holds a dataset bulkport did not make" in capsys.readouterr().out
    assert ods.datasets[made].metadata == before
    assert len(ods.datasets) == 20  # the 19 others and the hand-made one
    edit(ckan, ids[0], title="Edited at the source")
    ods.stats.clear()
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 1  # still refused, still untouched
    assert ods.datasets[made].metadata == before and writes(ods) == {}


def test_a_renamed_source_dataset_keeps_its_copy(portals, tmp_path: Path) -> None:
    ckan, ods, ckan_url, ods_url = portals
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    pkg_id = sorted(ckan.packages)[0]
    old_id = dataset_id_for(ckan.packages[pkg_id]["name"])
    edit(ckan, pkg_id, name="a-brand-new-name", title="Renamed")
    ods.stats.clear()
    assert run(tmp_path, ckan_url, ods_url, target=MARK) == 0
    assert len(ods.datasets) == 20 and "a-brand-new-name" not in ods.dataset_ids
    copy = ods.datasets[ods.dataset_ids[old_id]]
    assert copy.metadata["default"]["title"]["value"] == "Renamed"
    assert "POST /datasets/" not in writes(ods)
    assert verify(tmp_path) == 0
