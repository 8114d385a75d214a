"""What the Opendatasoft simulator shows a visitor: dataset pages, the explore API's list of
attachments and their downloads, and the records a publication reads from uploaded CSVs."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from ods_edits import ByHand

from bulkport.testing import OdsStore, create_ods_app, serve
from bulkport.testing.ods.openapi import ENV_VAR

KEY = "portal-ods-key-3e8a"
PROCESSING = 0.01  # seconds a publication takes
WITH_KEY = {"Authorization": f"apikey {KEY}"}


@dataclass
class Domain:
    store: OdsStore
    url: str
    hand: ByHand

    async def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str,
                                                                                   bytes]:
        """``path`` as a visitor asks for it (no key unless ``headers`` hold one)."""
        url = path if path.startswith("http") else self.url + path
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
            return r.status, r.content_type, await r.read()

    async def dataset(self, dataset_id: str, *, restricted: bool = False,
                      files: dict[str, bytes] | None = None,
                      params: dict[str, Any] | None = None,
                      attachments: dict[str, bytes] | None = None) -> str:
        """A dataset with a CSV resource per file and the attachments given; its uid."""
        made = await self.hand.call("POST", "/datasets/", json={
            "dataset_id": dataset_id, "is_restricted": restricted, "metadata": {"default": {
                "title": {"value": f"Title of {dataset_id}"}, "language": {"value": "en"},
                "modified": {"value": "2024-06-01T00:00:00Z"}}}})
        uid = str(made["uid"])
        for name, body in (files or {}).items():
            file = await self.hand.upload(f"/datasets/{uid}/resources/files/", name, body)
            await self.hand.call("POST", f"/datasets/{uid}/resources/", json={
                "type": "csvfile", "title": name, "params": params or {"separator": ","},
                "datasource": {"type": "uploaded_file", "file": {"uid": file["uid"]}}})
        for name, body in (attachments or {}).items():
            await self.hand.upload(f"/datasets/{uid}/attachments/", name, body)
        return uid

    async def publish(self, uid: str) -> None:
        await self.hand.call("POST", f"/datasets/{uid}/publish/")
        await anyio.sleep(PROCESSING * 5)  # the status follows the clock: it is done then
        assert self.store.datasets[uid].status == "idle"
        assert self.store.datasets[uid].is_published


@pytest.fixture
async def domain() -> AsyncIterator[Domain]:
    store = OdsStore(seed=11)
    async with serve(create_ods_app(store, api_keys={KEY}, processing_time=PROCESSING)) as url:
        yield Domain(store, url, ByHand(url, KEY))
    store.close()


def rows(body: bytes) -> list[list[str]]:
    """An explore CSV export: UTF-8 with a byte order mark, ``;`` between fields."""
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))


async def test_a_dataset_page_is_shown_once_published(domain: Domain) -> None:
    uid = await domain.dataset("river-levels", files={"levels.csv": b"a,b\n1,2\n"})
    page = "/explore/dataset/river-levels/"
    status, kind, _ = await domain.get(page)
    assert (status, kind) == (404, "text/html")  # a draft: not on the portal yet
    await domain.publish(uid)
    status, kind, body = await domain.get(page)
    assert (status, kind) == (200, "text/html") and b"<h1>Title of river-levels</h1>" in body
    async with aiohttp.ClientSession() as session, session.head(domain.url + page) as head:
        assert head.status == 200  # as a link checker asks
    assert (await domain.get("/explore/dataset/no-such-dataset/"))[0] == 404


async def test_the_back_office_shows_a_dataset_to_its_editors_only(domain: Domain) -> None:
    """Published or not, to a caller with a key; a visitor is sent to log in first."""
    uid = await domain.dataset("draft-notes", files={"n.csv": b"a\n1\n"})
    path = "/backoffice/catalog/datasets/draft-notes/"
    status, kind, body = await domain.get(path, WITH_KEY)
    assert (status, kind) == (200, "text/html")
    assert b"<h1>Title of draft-notes</h1><p>not published</p>" in body
    async with aiohttp.ClientSession() as session, session.get(
            domain.url + path, allow_redirects=False) as reply:
        assert reply.status == 302
        assert reply.headers["Location"] == f"/login/?next={path}"
    status, kind, body = await domain.get(path)  # the redirect followed: the login page
    assert (status, kind) == (200, "text/html") and b"Log in" in body
    await domain.publish(uid)
    assert b"<p>published</p>" in (await domain.get(path, WITH_KEY))[2]
    assert (await domain.get("/backoffice/catalog/datasets/nope/", WITH_KEY))[0] == 404


async def test_a_restricted_dataset_is_shown_to_a_key_only(domain: Domain) -> None:
    uid = await domain.dataset("staff-list", restricted=True, files={"s.csv": b"n\n1\n"},
                               attachments={"rules.pdf": b"%PDF rules"})
    await domain.publish(uid)
    for path in ("/explore/dataset/staff-list/",
                 "/api/explore/v2.1/catalog/datasets/staff-list/attachments",
                 "/api/datasets/1.0/staff-list/attachments/rules_pdf/"):
        assert (await domain.get(path))[0] == 404, path
        assert (await domain.get(path, WITH_KEY))[0] == 200, path


async def test_attachments_are_listed_with_their_own_ids_and_download(domain: Domain) -> None:
    uid = await domain.dataset("tree-survey", files={"t.csv": b"x\n1\n"}, attachments={
        "Méthode.PDF": b"%PDF method", "notes.txt": b"first notes"})
    await domain.hand.upload(f"/datasets/{uid}/attachments/", "notes.txt", b"second notes")
    listed_path = "/api/explore/v2.1/catalog/datasets/tree-survey/attachments"
    assert (await domain.get(listed_path))[0] == 404  # not published yet
    await domain.publish(uid)
    status, kind, body = await domain.get(listed_path)
    assert (status, kind) == (200, "application/json")
    listed = orjson.loads(body)
    check_explore_schema(listed)
    ids = [a["metas"]["id"] for a in listed["attachments"]]
    assert ids == ["m_thode_pdf", "notes_txt", "notes_txt_2"]
    uids = set(domain.store.datasets[uid].attachments)
    assert not uids & set(ids)  # not the Automation API's uids
    expected = [b"%PDF method", b"first notes", b"second notes"]
    for item, public_id, wanted in zip(listed["attachments"], ids, expected, strict=True):
        assert item["href"] == (f"{domain.url}/api/v2/catalog/datasets/tree-survey/"
                                f"attachments/{public_id}")
        assert (await domain.get(item["href"]))[::2] == (200, wanted)
        v1 = f"/api/datasets/1.0/tree-survey/attachments/{public_id}/"
        assert (await domain.get(v1))[::2] == (200, wanted)
    assert (await domain.get("/api/datasets/1.0/tree-survey/attachments/nope_pdf/"))[0] == 404


async def test_publishing_reads_the_uploaded_csv_files_into_records(domain: Domain) -> None:
    first = "Espèce,Hauteur (m)\nChêne,12\n\"Bouleau, blanc\",8\n".encode()
    second = b"Hauteur (m),Age\n3,40\n"
    uid = await domain.dataset("trees", files={"a.csv": first, "b.csv": second})
    export = "/api/explore/v2.1/catalog/datasets/trees/exports/csv"
    await domain.publish(uid)
    status, _, body = await domain.get(export)
    assert status == 200
    assert rows(body) == [["espece", "hauteur_m", "age"], ["Chêne", "12", ""],
                          ["Bouleau, blanc", "8", ""], ["", "3", "40"]]
    status, _, body = await domain.get(export + "?use_labels=true")
    assert rows(body)[0] == ["Espèce", "Hauteur (m)", "Age"]  # the headers, as first met
    status, _, body = await domain.get(export.replace("/csv", "/jsonl"))
    assert [orjson.loads(line) for line in body.splitlines()] == [
        {"espece": "Chêne", "hauteur_m": "12", "age": None},
        {"espece": "Bouleau, blanc", "hauteur_m": "8", "age": None},
        {"espece": None, "hauteur_m": "3", "age": "40"}]


async def test_a_file_without_a_header_row_has_numbered_columns(domain: Domain) -> None:
    uid = await domain.dataset("raw", files={"r.csv": b"1;x\n2;y\n"},
                               params={"separator": ";", "headers_first_row": False})
    await domain.publish(uid)
    _, _, body = await domain.get("/api/explore/v2.1/catalog/datasets/raw/exports/csv")
    assert rows(body) == [["column_1", "column_2"], ["1", "x"], ["2", "y"]]


def check_explore_schema(listed: Any) -> None:
    """The list as the Explore API v2.1 document declares it, when the document is here."""
    automation = os.environ.get(ENV_VAR)
    document = Path(automation).with_name("opendatasoft-explore-v2.1-openapi.json") if (
        automation) else None
    if document is None or not document.is_file():
        return
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = orjson.loads(document.read_bytes())
    uri = "urn:explore-v2.1"
    registry = Registry().with_resource(uri, Resource.from_contents(
        spec, default_specification=DRAFT202012))
    pointer = ("/paths/~1catalog~1datasets~1{dataset_id}~1attachments/get/responses/200/"
               "content/application~1json; charset=utf-8/schema")
    validator = jsonschema.Draft202012Validator({"$ref": f"{uri}#{pointer}"},
                                                registry=registry)
    assert [e.message for e in validator.iter_errors(listed)] == []
