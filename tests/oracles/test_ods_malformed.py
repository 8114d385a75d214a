"""Malformed requests to the Opendatasoft simulator get the documented 400, never a 5xx.

Opendatasoft's OpenAPI document declares a 400 ``validation_error`` (``{error_code,
message, detail}``) for a request it cannot take. A plain-text 500 instead makes a client
bug look like a flaky server, which a client retries. Each kind below is sent once; the
reply must be that 400, and its body must validate against the schema the document
declares for the operation (the conftest oracle checks that too, for every reply).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkport.errors import ValidationError
from bulkport.http import HttpClient, RetryPolicy
from bulkport.portals.ods.api import parse_error
from bulkport.testing.core.server import serve
from bulkport.testing.ods import openapi as ods_openapi
from bulkport.testing.ods.app import create_ods_app
from bulkport.testing.ods.store import OdsStore

KEY = "malformed-key"
API = "/api/automation/v1.0"
JSON = {"Content-Type": "application/json"}
MULTIPART = "multipart/form-data; boundary=zzz"
# A body whose Content-Encoding fails to decode is sent as a valid stream header, then the
# bad bytes: aiohttp then meets the error while the handler reads. (All in one segment,
# its HTTP parser would refuse the request itself before any handler ran.)
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
ZLIB_HEADER = b"\x78\x9c"


def _metadata(**default: Any) -> dict[str, Any]:
    values = {"title": {"value": "t"}, "modified": {"value": "2024-01-01T00:00:00Z"},
              "language": {"value": "en"}}
    values.update(default)
    return {"default": {k: v for k, v in values.items() if v is not None}}


def _resource(**fields: Any) -> dict[str, Any]:
    body = {"type": "csvfile", "title": "t",
            "datasource": {"type": "uploaded_file", "file": {"uid": "{file}"}}}
    body.update(fields)
    return body


def _datasource(source: Any) -> dict[str, Any]:
    return _resource(datasource=source)


@dataclass(frozen=True)
class Kind:
    """One malformed request: what is wrong, and the request."""

    name: str
    method: str
    path: str  # "{uid}", "{file}", "{resource}" and "{key}" are filled in
    json: Any = None
    data: bytes | None = None
    headers: dict[str, str] | None = None
    chunks: tuple[bytes, ...] = ()  # a streamed body, sent piece by piece
    query: dict[str, str] | None = None


# (*) were answered with aiohttp's plain-text 500 before (14 kinds); (†) were accepted (2xx)
# although the document's schema refuses them; the others had a 400 (three of them with an
# undeclared "parse_error" body). Not here: a Content-Encoding aiohttp cannot decode (br
# without Brotli) is refused by its HTTP parser, with a plain-text 400, before any handler.
KINDS = [
    # bodies that are no JSON object
    Kind("body is not JSON", "POST", "/datasets/", data=b"{nope", headers=JSON),
    Kind("body is not UTF-8", "POST", "/datasets/", data=b'{"a": "\xff"}', headers=JSON),
    Kind("body is a JSON array", "POST", "/datasets/", json=[1]),
    Kind("number out of double range", "POST", "/datasets/", data=b'{"a": 1e400}', headers=JSON),
    Kind("body starts with a byte order mark", "POST", "/datasets/",
         data="\ufeff{}".encode(), headers=JSON),
    Kind("gzip Content-Encoding on a body that is not (*)", "POST", "/datasets/",
         chunks=(GZIP_HEADER, b"\xff\xff\xff\xff"), headers={**JSON, "Content-Encoding": "gzip"}),
    Kind("deflate Content-Encoding on a body that is not (*)", "PUT", "/datasets/{uid}/",
         chunks=(ZLIB_HEADER, b"\xff\xff\xff\xff"),
         headers={**JSON, "Content-Encoding": "deflate"}),
    # wrong types and missing fields in a dataset
    Kind("metadata is a list", "POST", "/datasets/", json={"metadata": []}),
    Kind("metadata missing", "POST", "/datasets/", json={"dataset_id": "x"}),
    Kind("default_security is a list (*)", "POST", "/datasets/",
         json={"metadata": _metadata(), "default_security": [1]}),
    Kind("default_security is a string (*)", "POST", "/datasets/",
         json={"metadata": _metadata(), "default_security": "open"}),
    Kind("default_security field of the wrong type (†)", "POST", "/datasets/",
         json={"metadata": _metadata(), "default_security": {"is_data_visible": "yes"}}),
    Kind("dataset_id is a number", "POST", "/datasets/", json={"dataset_id": 5,
                                                               "metadata": _metadata()}),
    Kind("is_restricted is a string", "PUT", "/datasets/{uid}/",
         json={"metadata": _metadata(), "is_restricted": "no"}),
    Kind("required field missing", "POST", "/datasets/", json={"metadata": _metadata(title=None)}),
    Kind("value of an optional field is null (†)", "POST", "/datasets/",
         json={"metadata": _metadata(description={"value": None})}),
    Kind("datetime without a time (†)", "POST", "/datasets/",
         json={"metadata": _metadata(modified={"value": "2024-01-01"})}),
    Kind("enum value is a list", "POST", "/datasets/",
         json={"metadata": _metadata(language={"value": ["en"]})}),
    Kind("override_remote_value is a string (†)", "POST", "/datasets/",
         json={"metadata": _metadata(title={"value": "t", "override_remote_value": "yes"})}),
    Kind("unknown template in a body", "PUT", "/datasets/{uid}/metadata/",
         json={**_metadata(), "no_such_template": {}}),
    Kind("unknown field in a template body", "PUT", "/datasets/{uid}/metadata/default/",
         json={**_metadata()["default"], "no_such_field": {"value": "x"}}),
    Kind("field body without value", "PUT", "/datasets/{uid}/metadata/default/title/",
         json={"val": "x"}),
    Kind("template values are a list", "PUT", "/datasets/{uid}/metadata/default/", json=[]),
    # list parameters
    Kind("limit is not an integer", "GET", "/datasets/", query={"limit": "ten"}),
    Kind("limit over 1000", "GET", "/datasets/", query={"limit": "1001"}),
    Kind("offset is negative", "GET", "/datasets/", query={"offset": "-20"}),
    Kind("unknown template type filter", "GET", "/metadata/templates/", query={"type": "dcat"}),
    # resources
    Kind("resource type is a list (*)", "POST", "/datasets/{uid}/resources/",
         json=_resource(type=["csvfile"])),
    Kind("resource type unknown", "POST", "/datasets/{uid}/resources/", json=_resource(type="pdf")),
    Kind("resource title is a number", "POST", "/datasets/{uid}/resources/",
         json=_resource(title=5)),
    Kind("datasource type is a list (*)", "POST", "/datasets/{uid}/resources/",
         json=_datasource({"type": ["http"]})),
    Kind("uploaded file uid is a list (*)", "POST", "/datasets/{uid}/resources/",
         json=_datasource({"type": "uploaded_file", "file": {"uid": ["fi_x"]}})),
    Kind("uploaded file uid is an object (*)", "PUT", "/datasets/{uid}/resources/{resource}/",
         json=_datasource({"type": "uploaded_file", "file": {"uid": {"a": 1}}})),
    Kind("uploaded file unknown", "POST", "/datasets/{uid}/resources/",
         json=_datasource({"type": "uploaded_file", "file": {"uid": "fi_nope00"}})),
    Kind("ftp datasource without connection (†)", "POST", "/datasets/{uid}/resources/",
         json=_datasource({"type": "ftp", "relative_url": "/a.csv"})),
    Kind("http connection uid is a list (†)", "POST", "/datasets/{uid}/resources/",
         json=_datasource({"type": "http", "connection": {"uid": [1]}})),
    Kind("http relative_url is a number (†)", "POST", "/datasets/{uid}/resources/",
         json=_datasource({"type": "http", "relative_url": 5,
                           "connection": {"type": "http", "url": "https://example.org"}})),
    # multipart uploads
    Kind("upload that is no multipart form", "POST", "/datasets/{uid}/resources/files/",
         data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}),
    Kind("multipart without boundary (*)", "POST", "/datasets/{uid}/resources/files/",
         data=b"x", headers={"Content-Type": "multipart/form-data"}),
    Kind("multipart body without its boundary (*)", "POST", "/datasets/{uid}/resources/files/",
         data=b"garbage", headers={"Content-Type": MULTIPART}),
    Kind("multipart boundary over 70 characters (*)", "POST", "/datasets/{uid}/resources/files/",
         data=b"x", headers={"Content-Type": "multipart/form-data; boundary=" + "z" * 200}),
    Kind("multipart part header that is no header (*)", "POST",
         "/datasets/{uid}/resources/files/",
         data=b"--zzz\r\nnot a header\r\n\r\nabc\r\n--zzz--\r\n", headers={"Content-Type": MULTIPART}),
    Kind("gzip Content-Encoding on an upload that is not (*)", "POST",
         "/datasets/{uid}/attachments/", chunks=(GZIP_HEADER, b"\xff\xff\xff\xff"),
         headers={"Content-Type": MULTIPART, "Content-Encoding": "gzip"}),
    Kind("multipart cut before its closing boundary (†)", "POST",
         "/datasets/{uid}/resources/files/",
         data=b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
              b"a,b\n1,", headers={"Content-Type": MULTIPART}),
    Kind("multipart without a file field", "POST", "/datasets/{uid}/resources/files/",
         data=b'--zzz\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--zzz--\r\n',
         headers={"Content-Type": MULTIPART}),
    Kind("attachment multipart without boundary (*)", "POST", "/datasets/{uid}/attachments/",
         data=b"x", headers={"Content-Type": "multipart/form-data"}),
    # API keys
    Kind("API key label is a number", "POST", "/apikeys/", json={"label": 5}),
    Kind("API key permission not in the document (†)", "POST", "/apikeys/",
         json={"permissions": ["fly"]}),
    Kind("API key permissions are an object", "PUT", "/apikeys/{key}/",
         json={"permissions": {"edit_dataset": True}}),
    Kind("revocation reason is a number", "POST", "/apikeys/{key}/revoke/", json={"reason": 5}),
    Kind("searched key is not a string (†)", "POST", "/apikeys/search_key/", json={"key": [1]}),
]


@dataclass
class Domain:
    url: str
    session: aiohttp.ClientSession
    store: OdsStore
    ids: dict[str, str]


@pytest.fixture
async def domain() -> AsyncIterator[Domain]:
    store = OdsStore(seed=5)
    async with serve(create_ods_app(store, api_keys={KEY})) as url, aiohttp.ClientSession(
            headers={"Authorization": f"apikey {KEY}"}) as session:
        api = url + API
        async with session.post(api + "/datasets/", json={"metadata": _metadata()}) as r:
            uid = (await r.json())["uid"]
        form = aiohttp.FormData()
        form.add_field("file", b"a,b\n1,2\n", filename="data.csv")
        async with session.post(f"{api}/datasets/{uid}/resources/files/", data=form) as r:
            file_uid = (await r.json())["uid"]
        body = _resource()
        body["datasource"]["file"]["uid"] = file_uid
        async with session.post(f"{api}/datasets/{uid}/resources/", json=body) as r:
            resource = (await r.json())["uid"]
        async with session.post(f"{api}/apikeys/", json={"label": "ci"}) as r:
            key = (await r.json())["uid"]
        yield Domain(url, session, store,
                     {"uid": uid, "file": file_uid, "resource": resource, "key": key})
    store.close()


async def _slowly(chunks: tuple[bytes, ...]) -> AsyncIterator[bytes]:
    for n, chunk in enumerate(chunks):
        if n:
            await asyncio.sleep(0.05)  # its own TCP segment
        yield chunk


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, uid in ids.items():
            value = value.replace("{" + name + "}", uid)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


async def test_every_malformed_request_gets_the_documented_400(domain: Domain) -> None:
    active = ods_openapi.active()  # the session's oracle (None without the document)
    document = active.document if active else None
    wrong: dict[str, Any] = {}
    for kind in KINDS:
        path = _fill(kind.path, domain.ids)
        kwargs: dict[str, Any] = {"params": kind.query, "headers": kind.headers}
        if kind.json is not None:
            kwargs["json"] = _fill(kind.json, domain.ids)
        elif kind.data is not None:
            kwargs["data"] = kind.data
        elif kind.chunks:
            kwargs["data"] = _slowly(kind.chunks)
        async with domain.session.request(kind.method, domain.url + API + path, **kwargs) as r:
            raw = await r.read()
            body = await r.json() if r.content_type == "application/json" else raw[:80]
            status, media = r.status, r.content_type
        if (status, media) != (400, "application/json") or not isinstance(body, dict) or (
                body.get("error_code") != "validation_error"
                or not isinstance(body.get("message"), str)
                or not (isinstance(body.get("detail"), dict) and body["detail"])):
            wrong[kind.name] = (status, body)
        elif document is not None:  # the body, against what the document declares
            op, _ = document.find(kind.method, path)
            problems = ods_openapi.Oracle(document).reply_problems(op, status, media, raw) if op \
                else ["not an operation of the document"]
            if problems:
                wrong[kind.name] = problems
    assert not wrong, "\n".join(f"{name}: {why}" for name, why in wrong.items())
    assert len(KINDS) >= 50 and sum("(*)" in kind.name for kind in KINDS) == 14
    # A refused upload keeps nothing (the cut one had started to stream to disk).
    dataset = domain.store.datasets[domain.ids["uid"]]
    assert list(dataset.files) == [domain.ids["file"]] and not dataset.attachments


async def test_a_malformed_request_is_refused_once_not_retried(domain: Domain) -> None:
    """What the 400 buys: bulkport's client reports the fields at once instead of retrying
    a 5xx six times."""
    uid = domain.ids["uid"]
    before = domain.store.stats["POST /datasets/{uid}/resources/"]
    async with HttpClient(retry=RetryPolicy(attempts=6, backoff_base=0.01)) as client:
        client.bind(domain.url, {"Authorization": f"apikey {KEY}"}, secrets=(KEY,))
        with pytest.raises(ValidationError) as caught:
            await client.request("POST", f"{domain.url}{API}/datasets/{uid}/resources/",
                                 json=_resource(type=["csvfile"]), errors=parse_error)
    assert "type" in caught.value.fields
    assert domain.store.stats["POST /datasets/{uid}/resources/"] - before == 1
