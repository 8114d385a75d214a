"""bulkport's writes into a real CKAN 2.12, and a mirror reading a real CKAN source.

Each test is a behaviour the simulator once got wrong: a resource deleted at the source
moves no ``metadata_modified``; ``resource_update`` replaces a resource whole; concurrent
``package_create`` calls of one name can all answer 200 with one id.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from real_ckan.tier import CkanInstance, ckan_job

from bulkport.cli import main
from bulkport.http import HttpClient
from bulkport.model import Dataset, Resource
from bulkport.portals.ckan.mapping import MARK, slug_variant
from bulkport.portals.ckan.settings import CkanTargetSettings
from bulkport.portals.ckan.target import CkanTarget
from bulkport.report import Report
from bulkport.settings import Options
from bulkport.store import StateStore
from bulkport.transfer import FileTransfer

pytestmark = pytest.mark.real_ckan


def upload(ckan: CkanInstance, action: str, fields: dict[str, str], filename: str,
           data: bytes) -> dict[str, Any]:
    """A multipart ``resource_create`` / ``resource_patch`` with a file, as the sysadmin."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; '
                 f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                 + data + f"\r\n--{boundary}--\r\n".encode())
    request = urllib.request.Request(
        f"{ckan.url}/api/3/action/{action}", data=b"".join(parts),
        headers={"Authorization": ckan.token,
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return dict(json.loads(reply.read())["result"])


def download(ckan: CkanInstance, url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": ckan.token})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return bytes(reply.read())


def write_job(folder: Path, kind: str, source: CkanInstance, target: CkanInstance) -> Path:
    job = ckan_job(folder / f"{kind}.toml", source, target, kind=kind, name=f"real-{kind}",
                   target_extra='organization = "copies"', connections=4)
    os.environ.update(RC_SOURCE_KEY=source.token, RC_TARGET_KEY=target.token)
    return job


def run(job: Path, state: Path) -> int:
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", "--quiet"])


def copy_of(target: CkanInstance, source_id: str) -> dict[str, Any]:
    found = target.result("package_search", {"fq": f'extras_{MARK}:"{source_id}"',
                                             "include_private": True, "rows": 10})
    assert found["count"] == 1, found
    return dict(target.result("package_show", {"id": found["results"][0]["id"]}))


def test_mirror_sees_resources_deleted_added_and_replaced_at_the_source(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path) -> None:
    source, target = real_ckan, real_ckan_target
    source.result("organization_create", {"name": "src"})
    ids = []
    for n in range(3):
        pkg = source.result("package_create", {
            "name": f"set-{n}", "owner_org": "src",
            "resources": [{"url": f"http://example.org/{n}.csv", "name": f"link {n}"}]})
        upload(source, "resource_create", {"package_id": pkg["id"], "name": f"file {n}"},
               f"data-{n}.csv", f"a,b\n{n},1\n".encode())
        # Last edited days ago, as most of a catalog is: the safety margin covers none of it.
        source.result("package_patch", {"id": pkg["id"],
                                        "metadata_modified": f"2025-01-0{n + 1}T12:00:00"})
        ids.append(pkg["id"])
    job, state = write_job(tmp_path, "mirror", source, target), tmp_path / "state"
    assert run(job, state) == 0

    # At the source: a resource deleted (the sysadmin's resource_delete keeps the dataset's
    # metadata_modified), one added, a file replaced.
    first = source.result("package_show", {"id": ids[0]})
    source.result("resource_delete", {"id": first["resources"][0]["id"]})
    assert source.result("package_show", {"id": ids[0]})["metadata_modified"] == (
        first["metadata_modified"])
    source.result("resource_create", {"package_id": ids[1], "url": "http://example.org/new.csv",
                                      "name": "added"})
    replaced = source.result("package_show", {"id": ids[2]})["resources"][1]
    new_bytes = b"a,b\n2,1\n2,2\n2,3\n"
    upload(source, "resource_patch", {"id": replaced["id"]}, "data-2.csv", new_bytes)
    assert run(job, state) == 0

    for pkg_id in ids:
        original = source.result("package_show", {"id": pkg_id})
        copy = copy_of(target, pkg_id)
        assert sorted(r[MARK] for r in copy["resources"]) == sorted(
            r["id"] for r in original["resources"])
        assert sorted(r["name"] for r in copy["resources"]) == sorted(
            r["name"] for r in original["resources"])
    copy = next(r for r in copy_of(target, ids[2])["resources"] if r[MARK] == replaced["id"])
    assert download(target, copy["url"]) == new_bytes


def test_a_changed_file_keeps_the_fields_set_by_hand_on_the_target(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path) -> None:
    source, target = real_ckan, real_ckan_target
    source.result("organization_create", {"name": "src"})
    pkg = source.result("package_create", {"name": "budget", "owner_org": "src"})
    res = upload(source, "resource_create", {"package_id": pkg["id"], "name": "Budget",
                                             "description": "Yearly budget"},
                 "budget.csv", b"year,total\n2024,1\n")
    job = write_job(tmp_path, "migrate", source, target)
    assert run(job, tmp_path / "first") == 0
    copy = copy_of(target, pkg["id"])["resources"][0]
    # Set by hand on the target: fields bulkport does not write.
    target.result("resource_patch", {"id": copy["id"], "resource_type": "documentation",
                                     "local_note": "checked by the data team"})

    new_bytes = b"year,total\n2024,1\n2025,2\n"
    upload(source, "resource_patch", {"id": res["id"]}, "budget.csv", new_bytes)
    assert run(job, tmp_path / "second") == 0

    after = copy_of(target, pkg["id"])["resources"]
    assert len(after) == 1 and after[0]["id"] == copy["id"]
    assert after[0]["resource_type"] == "documentation"
    assert after[0]["local_note"] == "checked by the data team"
    assert after[0]["description"] == "Yearly budget" and after[0]["name"] == "Budget"
    assert after[0]["url_type"] == "upload" and int(after[0]["size"]) == len(new_bytes)
    assert download(target, after[0]["url"]) == new_bytes


class _NoFiles:
    def open_file(self, resource: Resource) -> Any:
        raise AssertionError("links only: no file is read")


def _twin(name: str, source_id: str) -> Dataset:
    return Dataset(source_id=source_id, name=name, title=f"Title of {source_id}",
                   resources=[Resource(source_id=f"{source_id}-r", name=f"Link of {source_id}",
                                       url=f"http://example.org/{source_id}.csv")])


async def test_concurrent_creates_of_one_name_make_two_datasets(
        real_ckan_target: CkanInstance, tmp_path: Path) -> None:
    target = real_ckan_target
    names = [f"budget-{n}" for n in range(4)]
    twins = [_twin(name, f"{side}-{name}") for name in names for side in ("east", "west")]
    config = CkanTargetSettings(type="ckan", url=target.url, api_key=target.token, organization="copies")
    async with HttpClient() as client:
        with StateStore(tmp_path) as store:
            writer = CkanTarget(config, client, Options(), store.journal,
                                Report("twins", "migrate"))
            transfer = FileTransfer(client, _NoFiles(), 2)  # type: ignore[arg-type]
            async with anyio.create_task_group() as tg:
                for ds in twins:  # all at once: two creates of each name race on the server
                    tg.start_soon(writer.upsert, ds, transfer)

    for ds in twins:
        copy = copy_of(target, ds.source_id)
        assert copy["name"] in (ds.name, slug_variant(ds.name, ds.source_id))
        assert copy["title"] == ds.title
        assert [(r["name"], r["url"], r[MARK]) for r in copy["resources"]] == [
            (ds.resources[0].name, ds.resources[0].url, ds.resources[0].source_id)]
    held = target.result("package_search", {"include_private": True, "rows": 0})["count"]
    assert held == len(twins)
