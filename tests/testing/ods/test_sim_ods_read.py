"""The Opendatasoft simulator's read side through real HTTP: lists, downloads, exports."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkport.testing import OdsStore, RecordSet, create_ods_app, seed_ods, serve
from bulkport.testing.core.server import build_simulator, parse_args
from bulkport.testing.ods.explore import render

KEY = "ods-read-key"


class Reader:
    def __init__(self, url: str, session: aiohttp.ClientSession, store: OdsStore) -> None:
        self.url = url
        self.api = url + "/api/automation/v1.0"
        self.session = session
        self.store = store

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.api + path
        async with self.session.get(url, **kwargs) as response:
            return response.status, await response.json()

    async def body(self, url: str, **kwargs: Any) -> tuple[int, str, bytes]:
        async with self.session.get(url, **kwargs) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.read()


@pytest.fixture
async def reader() -> AsyncIterator[Reader]:
    store = OdsStore(seed=4)
    seed_ods(store, datasets=30, resources=3, file_size=3000, seed=4, large_export_rows=11_000)
    async with serve(create_ods_app(store, api_keys={KEY})) as url, aiohttp.ClientSession(
            headers={"Authorization": f"apikey {KEY}"},
            timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield Reader(url, session, store)
    store.close()


def test_seed_is_deterministic_and_covers_every_case() -> None:
    first, second = OdsStore(seed=1), OdsStore(seed=1)
    assert seed_ods(first, datasets=25, seed=1) == seed_ods(second, datasets=25, seed=1)
    assert [d.out(0) for d in first.datasets.values()] == [d.out(0) for d in second.datasets.values()]
    datasets = list(first.datasets.values())
    sources = {r["datasource"]["type"] for d in datasets for r in d.resources.values()}
    assert sources == {"uploaded_file", "http", "ftp"}
    assert any(d.attachments for d in datasets)
    assert any(not d.resources and not d.is_published for d in datasets)
    assert {t for d in datasets for t in d.metadata} == {"default", "internal", "dcat", "city"}
    assert any(d.is_restricted for d in datasets)


async def test_list_has_every_template_and_pages_up_to_1000(reader: Reader) -> None:
    status, page = await reader.get("/datasets/", params={"limit": 1000})
    assert status == 200 and page["total_count"] == 30 and page["next"] is None
    assert [d["uid"] for d in page["results"]] == list(reader.store.datasets)
    for listed in page["results"]:
        assert listed["metadata"] == reader.store.datasets[listed["uid"]].metadata
    templates = {t for d in page["results"] for t in d["metadata"]}
    assert templates == {"default", "internal", "dcat", "city"}
    _, tail = await reader.get("/datasets/", params={"limit": 7, "offset": 28})
    assert len(tail["results"]) == 2 and tail["next"] is None
    assert (await reader.get("/datasets/", params={"limit": 1001}))[0] == 400


async def test_resources_attachments_and_downloads(reader: Reader) -> None:
    dataset = next(d for d in reader.store.datasets.values() if d.attachments and d.files)
    _, resources = await reader.get(f"/datasets/{dataset.uid}/resources/",
                                    params={"limit": 1000, "expand": "datasource.connection"})
    assert resources["total_count"] == len(dataset.resources)
    for resource in resources["results"]:
        source = resource["datasource"]
        if source["type"] == "uploaded_file":
            url = f"{reader.api}/datasets/{dataset.uid}/resources/files/{source['file']['uid']}/download/"
            status, kind, body = await reader.body(url)
            assert status == 200 and kind == "application/octet-stream"
            assert hashlib.sha256(body).hexdigest() == reader.store.blobs.get(source["file"]["uid"]).sha256
        else:  # a remote file: the connection has the server, the resource the rest
            assert source["type"] == "http" and source["connection"]["url"].startswith("https://")
    _, attachments = await reader.get(f"/datasets/{dataset.uid}/attachments/")
    assert {a["uid"] for a in attachments["results"]} == set(dataset.attachments)
    for attachment in attachments["results"]:
        assert set(attachment) == {"uid", "filename", "mimetype", "created_at"}
        status, kind, body = await reader.body(
            f"{reader.api}/datasets/{dataset.uid}/attachments/{attachment['uid']}/download/")
        assert kind == "application/octet-stream"
        assert hashlib.sha256(body).hexdigest() == reader.store.blobs.get(attachment["uid"]).sha256


async def test_export_streams_every_record_of_a_published_dataset(reader: Reader) -> None:
    ftp = next(d for d in reader.store.datasets.values()
               if any(r["datasource"]["type"] == "ftp" for r in d.resources.values()))
    records = reader.store.records[ftp.uid]
    assert records.rows == 11_000  # beyond what /records could page through
    url = f"{reader.url}/api/explore/v2.1/catalog/datasets/{ftp.dataset_id}/exports/csv"
    status, kind, body = await reader.body(url)
    assert status == 200 and kind.startswith("text/csv")
    assert body.startswith("\ufeffid;name".encode())  # the v2.1 defaults: BOM, semicolons
    assert body == b"".join(render(records))
    _, _, plain = await reader.body(url, params={"delimiter": ",", "with_bom": "false"})
    assert plain.startswith(b"id,name,place") and plain == b"".join(
        render(records, delimiter=",", with_bom=False))
    assert plain.count(b"\r\n") >= 11_001
    _, _, few = await reader.body(url, params={"limit": "3"})
    assert few == b"".join(render(records, limit=3))
    status, _, jsonl = await reader.body(url.replace("/csv", "/jsonl"), params={"limit": "2"})
    assert status == 200 and len(jsonl.splitlines()) == 2


async def test_export_errors_and_anonymous_access(reader: Reader) -> None:
    explore = f"{reader.url}/api/explore/v2.1/catalog/datasets"
    unpublished = next(d for d in reader.store.datasets.values() if not d.is_published)
    status, body = await reader.get(f"{explore}/{unpublished.dataset_id}/exports/csv")
    assert status == 404 and body["error_code"] == "NoSuchDatasetException"
    assert (await reader.get(f"{explore}/nope/exports/csv"))[0] == 404
    public = next(d for d in reader.store.datasets.values() if d.is_published and not d.is_restricted)
    status, body = await reader.get(f"{explore}/{public.dataset_id}/exports/xlsx")
    assert status == 400 and set(body) == {"error_code", "message"}
    status, _ = await reader.get(f"{explore}/{public.dataset_id}/exports/csv",
                                 params={"delimiter": "x"})
    assert status == 400
    restricted = next(d for d in reader.store.datasets.values() if d.is_published and d.is_restricted)
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{explore}/{public.dataset_id}/exports/csv") as response:
            assert response.status == 200
        async with anonymous.get(f"{explore}/{restricted.dataset_id}/exports/csv") as response:
            assert response.status == 404  # hidden from anonymous callers
        async with anonymous.get(f"{explore}/{public.dataset_id}/exports/csv",
                                 headers={"Authorization": "apikey wrong"}) as response:
            assert response.status == 401
        async with anonymous.get(f"{reader.api}/datasets/") as response:
            assert response.status == 401  # the automation API always needs a key


def test_an_empty_record_set_exports_its_header_only() -> None:
    assert b"".join(render(RecordSet(rows=0), delimiter=",", with_bom=False)) == (
        b"id,name,place,value,date,note\r\n")
    assert b"".join(render(RecordSet(rows=0), "json")) == b"[]"


def test_simulate_ods_serves_an_empty_domain_unless_asked_for_datasets() -> None:
    empty = build_simulator(parse_args(["ods"]))["store"]
    seeded = build_simulator(parse_args(["ods", "--datasets", "6", "--seed", "2"]))["store"]
    assert len(empty.datasets) == 0 and len(seeded.datasets) == 6
    assert "dcat" in seeded.templates
    for store in (empty, seeded):
        store.close()
