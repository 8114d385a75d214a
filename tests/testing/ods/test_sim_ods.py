"""The Opendatasoft simulator through real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkport.testing.core.files import SyntheticFile
from bulkport.testing.core.server import serve
from bulkport.testing.ods.app import create_ods_app
from bulkport.testing.ods.store import OdsStore

KEY = "ods-key"


def metadata(title: str = "Qualité de l'eau", language: str = "fr") -> dict[str, Any]:
    return {"default": {"title": {"value": title}, "language": {"value": language},
                        "modified": {"value": "2024-05-01T10:00:00Z"}}}


@dataclass
class Domain:
    url: str
    api: str
    session: aiohttp.ClientSession
    store: OdsStore

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.api + path
        async with self.session.request(method, url, **kwargs) as response:
            body = await response.read()
            return response.status, (await response.json() if body else None)

    async def dataset(self, dataset_id: str, **extra: Any) -> dict[str, Any]:
        status, body = await self.call("POST", "/datasets/", json={
            "dataset_id": dataset_id, "metadata": metadata(), **extra})
        assert status == 201, body
        return dict(body)

    async def upload(self, uid: str, file: SyntheticFile, name: str,
                     path: str = "resources/files") -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("file", file.read(), filename=name)
        status, body = await self.call("POST", f"/datasets/{uid}/{path}/", data=form)
        assert status in (200, 201), body
        return dict(body)

    async def add_resource(self, uid: str, file_uid: str) -> dict[str, Any]:
        status, body = await self.call("POST", f"/datasets/{uid}/resources/", json={
            "type": "csvfile", "title": "Data", "params": {"separator": ","},
            "datasource": {"type": "uploaded_file", "file": {"uid": file_uid}}})
        assert status == 201, body
        return dict(body)


@pytest.fixture
async def domain() -> AsyncIterator[Domain]:
    store = OdsStore(seed=2)
    app = create_ods_app(store, api_keys={KEY}, processing_time=0.2,
                         custom_templates={"extras": ["source_extras"]})
    async with serve(app) as url, aiohttp.ClientSession(
            headers={"Authorization": f"apikey {KEY}"},
            timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Domain(url, url + "/api/automation/v1.0", session, store)
    store.close()


async def test_auth_failures_are_401s(domain: Domain) -> None:
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(domain.api + "/datasets/") as response:
            assert response.status == 401
            assert (await response.json())["error_code"] == "not_authenticated"
        async with anonymous.get(domain.api + "/datasets/",
                                 headers={"Authorization": "apikey wrong"}) as response:
            assert response.status == 401
            assert set(await response.json()) == {"error_code", "message"}
        async with anonymous.get(domain.api + "/datasets/", params={"apikey": KEY}) as response:
            assert response.status == 200


async def test_create_validates_metadata_and_dataset_id(domain: Domain) -> None:
    status, body = await domain.call("POST", "/datasets/", json={
        "metadata": {"default": {"title": {"value": "x"}, "language": {"value": "xx"}}}})
    assert status == 400 and body["error_code"] == "validation_error"
    assert body["detail"]["metadata.default.modified"] == ["This field is required."]
    assert body["detail"]["metadata.default.language"] == ['"xx" is not a valid choice.']
    status, body = await domain.call("POST", "/datasets/", json={
        "metadata": {"default": {**metadata()["default"], "license": {"value": "cc-by"}},
                     "internal": {"license_id": "cc-by"}}})
    assert status == 400 and set(body["detail"]) == {"metadata.default.license",
                                                      "metadata.internal.license_id"}
    created = await domain.dataset("air-quality", is_restricted=True)
    assert created["uid"].startswith("da_") and created["is_published"] is False
    assert set(created) == {"uid", "dataset_id", "created_at", "updated_at", "is_published",
                            "is_restricted", "metadata", "default_security"}
    status, body = await domain.call("POST", "/datasets/", json={
        "dataset_id": "air-quality", "metadata": metadata()})
    assert status == 400 and list(body["detail"]) == ["dataset_id"]
    status, body = await domain.call("GET", "/datasets/da_nope00/")
    assert (status, body) == (404, {"error_code": "not_found", "message": "Not found."})


async def test_lists_paginate_with_absolute_links(domain: Domain) -> None:
    for n in range(5):
        await domain.dataset(f"set-{n}")
    status, page = await domain.call("GET", "/datasets/", params={"limit": 2})
    assert status == 200 and page["total_count"] == 5 and page["previous"] is None
    assert page["next"].startswith(domain.api + "/datasets/")
    seen = [d["dataset_id"] for d in page["results"]]
    while page["next"]:
        _, page = await domain.call("GET", page["next"])
        seen.extend(d["dataset_id"] for d in page["results"])
    assert seen == [f"set-{n}" for n in range(5)] and page["previous"]
    _, empty = await domain.call("GET", "/datasets/", params={"limit": 0})
    assert (empty["total_count"], empty["results"], empty["next"]) == (5, [], None)
    status, body = await domain.call("GET", "/datasets/", params={"limit": 1001})
    assert status == 400 and "limit" in body["detail"]
    _, found = await domain.call("GET", "/datasets/", params={"dataset_id": "set-3"})
    assert [d["dataset_id"] for d in found["results"]] == ["set-3"]


async def test_metadata_put_replaces_and_fields_are_addressable(domain: Domain) -> None:
    uid = (await domain.dataset("meta"))["uid"]
    base = f"/datasets/{uid}/metadata"
    status, _ = await domain.call("PUT", base + "/internal/", json={
        "license_id": {"value": "38js5ao"}, "theme_id": {"value": ["t1"]}})
    assert status == 200
    status, values = await domain.call("PUT", base + "/internal/", json={
        "license_id": {"value": "other"}})
    assert values == {"license_id": {"value": "other"}}  # theme_id is gone
    status, body = await domain.call("PUT", base + "/default/", json={"title": {"value": "t"}})
    assert status == 400 and set(body["detail"]) == {"modified", "language"}
    status, body = await domain.call("PUT", base + "/internal/license_id/", json="cc-by")
    assert status == 400
    status, body = await domain.call("PUT", base + "/extras/source_extras/",
                                     json={"value": '{"a": 1}'})
    assert status == 200
    _, value = await domain.call("GET", base + "/extras/source_extras/")
    assert value == {"value": '{"a": 1}'}
    assert (await domain.call("DELETE", base + "/extras/source_extras/"))[0] == 204
    assert (await domain.call("GET", base + "/extras/source_extras/"))[0] == 404
    assert (await domain.call("DELETE", base + "/default/title/"))[0] == 400
    assert (await domain.call("GET", base + "/nope/"))[0] == 404
    _, all_metadata = await domain.call("GET", base + "/")
    assert set(all_metadata) == {"default", "internal", "extras"}
    _, templates = await domain.call("GET", "/metadata/templates/")
    names = {t["name"]: t for t in templates["results"]}
    # Every domain's built-in templates, and the custom one.
    assert set(names) == {"default", "internal", "visualization", "asset_content_configuration",
                          "extras"}
    required = {f["name"] for f in names["default"]["schema"]
                if f["requirement_level"] == "mandatory"}
    assert required == {"title", "modified", "language"}


async def test_files_resources_and_attachments_round_trip(domain: Domain) -> None:
    uid = (await domain.dataset("files"))["uid"]
    file = SyntheticFile(250_000, seed=8)
    uploaded = await domain.upload(uid, file, "données.csv")
    assert set(uploaded) == {"uid", "filename", "mimetype", "created_at"}
    assert uploaded["mimetype"] == "text/csv"
    async with domain.session.get(
            f"{domain.api}/datasets/{uid}/resources/files/{uploaded['uid']}/download/") as r:
        assert r.status == 200 and r.content_type == "application/octet-stream"
        assert hashlib.sha256(await r.read()).hexdigest() == file.sha256()
    resource = await domain.add_resource(uid, uploaded["uid"])
    assert resource["uid"].startswith("re_") and resource["datasource"]["file"] == {
        "uid": uploaded["uid"]}
    status, body = await domain.call("POST", f"/datasets/{uid}/resources/", json={
        "type": "csvfile", "title": "x",
        "datasource": {"type": "uploaded_file", "file": {"uid": "fi_none00"}}})
    assert status == 400 and body["error_code"] == "validation_error"
    status, _ = await domain.call("POST", f"/datasets/{uid}/resources/", json={
        "type": "csvfile", "title": "remote",
        "datasource": {"type": "http", "connection": {"type": "http",
                                                      "url": "https://example.org"},
                       "relative_url": "/a.csv"}})
    assert status == 201
    _, listed = await domain.call("GET", f"/datasets/{uid}/resources/")
    assert listed["total_count"] == 2
    pdf = SyntheticFile(5000, seed=9, kind="pdf")
    attachment = await domain.upload(uid, pdf, "notice.pdf", path="attachments")
    assert attachment["uid"].startswith("at_")
    async with domain.session.get(
            f"{domain.api}/datasets/{uid}/attachments/{attachment['uid']}/download/") as r:
        assert hashlib.sha256(await r.read()).hexdigest() == pdf.sha256()
    assert (await domain.call("DELETE", f"/datasets/{uid}/attachments/{attachment['uid']}/")
            )[0] == 204
    assert (await domain.call("DELETE", f"/datasets/{uid}/resources/{resource['uid']}/")
            )[0] == 204
    assert (await domain.call("DELETE", f"/datasets/{uid}/"))[0] == 204
    assert (await domain.call("GET", f"/datasets/{uid}/"))[0] == 404
    assert len(domain.store.blobs) == 0


async def _wait_idle(domain: Domain, uid: str) -> list[dict[str, Any]]:
    seen = []
    for _ in range(100):
        _, status = await domain.call("GET", f"/datasets/{uid}/status/")
        seen.append(status)
        if status["status"] not in ("queued", "processing"):
            return seen
        await asyncio.sleep(0.02)
    raise AssertionError("still busy")


async def test_publish_goes_through_processing_to_idle(domain: Domain) -> None:
    uid = (await domain.dataset("pub"))["uid"]
    status, body = await domain.call("POST", f"/datasets/{uid}/publish/")
    assert status == 400 and body["error_code"] == "invalid_dataset_status"
    file = await domain.upload(uid, SyntheticFile(1000, 1), "a.csv")
    await domain.add_resource(uid, file["uid"])
    assert await domain.call("POST", f"/datasets/{uid}/publish/") == (200, {"detail": "ok"})
    status, body = await domain.call("POST", f"/datasets/{uid}/publish/")
    assert status == 400 and body["error_code"] == "invalid_dataset_status"
    seen = await _wait_idle(domain, uid)
    assert seen[0]["status"] in ("queued", "processing")
    assert "processing" in [s["status"] for s in seen]
    assert seen[-1]["status"] == "idle" and seen[-1]["is_published"] is True
    assert set(seen[-1]) >= {"status", "previous", "next", "since", "is_published", "message"}
    _, dataset = await domain.call("GET", f"/datasets/{uid}/")
    assert dataset["is_published"] is True
    stored = domain.store.datasets[uid]
    assert stored.is_published and stored.status == "idle"
    assert (await domain.call("POST", f"/datasets/{uid}/unpublish/"))[0] == 200
    _, after = await domain.call("GET", f"/datasets/{uid}/status/")
    assert after["is_published"] is False
    await domain.call("POST", f"/datasets/{uid}/publish/")
    assert (await domain.call("POST", f"/datasets/{uid}/abort/"))[0] == 200
    _, aborted = await domain.call("GET", f"/datasets/{uid}/status/")
    assert aborted["status"] == "idle" and aborted["is_published"] is False


async def test_an_empty_file_ends_processing_in_error(domain: Domain) -> None:
    uid = (await domain.dataset("empty"))["uid"]
    file = await domain.upload(uid, SyntheticFile(0, 1), "empty.csv")
    await domain.add_resource(uid, file["uid"])
    await domain.call("POST", f"/datasets/{uid}/publish/")
    final = (await _wait_idle(domain, uid))[-1]
    assert final["status"] == "error" and final["is_published"] is False
    assert "empty" in final["message"]


async def test_requests_are_counted_by_route(domain: Domain) -> None:
    uid = (await domain.dataset("count"))["uid"]
    await domain.call("GET", f"/datasets/{uid}/")
    await domain.call("GET", f"/datasets/{uid}/")
    stats = domain.store.stats
    assert stats["POST /datasets/"] == 1 and stats["GET /datasets/{uid}/"] == 2
    assert stats.requests == 3


async def test_an_upload_cut_by_the_client_leaves_nothing_behind(
        domain: Domain, caplog: pytest.LogCaptureFixture) -> None:
    uid = (await domain.dataset("cut"))["uid"]
    host, port = domain.url.removeprefix("http://").split(":")
    boundary = "xyz"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.csv\"\r\n\r\n").encode()
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /api/automation/v1.0/datasets/{uid}/resources/files/ HTTP/1.1\r\n"
                  f"Host: {host}\r\nAuthorization: apikey {KEY}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                  "Content-Length: 100000\r\n\r\n").encode() + head + b"a,b\n" * 1000)
    await writer.drain()
    writer.close()  # hang up half-way through the body
    for _ in range(50):
        if domain.store.stats["POST /datasets/{uid}/resources/files/"]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert domain.store.datasets[uid].files == {} and len(domain.store.blobs) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # a quiet 499
