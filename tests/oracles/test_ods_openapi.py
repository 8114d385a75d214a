"""The oracle that judges the Opendatasoft simulator by Opendatasoft's OpenAPI document.

The conftest hooks run it on every simulator reply of the session; these tests check the
oracle itself: where the document is found, that each erratum is needed and applies, and
that it flags what breaks the document (a plain-text 500, an undeclared status, a body or
an accepted request off the schema, an operation the document lacks).
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
from aiohttp import web
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from bulkport.testing.core.server import serve
from bulkport.testing.ods import openapi as ods_openapi
from bulkport.testing.ods.app import create_ods_app

PREFIX = ods_openapi.PREFIX


@pytest.fixture(scope="module")
def document() -> ods_openapi.Document:
    path, reason = ods_openapi.locate_document()
    if path is None:
        if os.environ.get("BULKPORT_ORACLES") == "require":
            pytest.fail(f"oracle required but unavailable: {reason}")
        pytest.skip(reason)
    return ods_openapi.Document(path)


def _raw(document: ods_openapi.Document) -> dict[str, Any]:
    """The document as published, without the errata."""
    return orjson.loads(document.path.read_bytes())


def _validator(raw: dict[str, Any], pointer: str) -> Any:
    registry = Registry().with_resource("urn:raw", Resource.from_contents(
        raw, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:raw#{pointer}"}, registry=registry)


def test_the_document_is_looked_for_in_the_environment_then_beside_the_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ods_openapi.ENV_VAR, str(tmp_path / "nowhere.json"))
    locations = ods_openapi.default_locations()
    assert locations[0] == tmp_path / "nowhere.json"
    assert locations[1] == (Path(ods_openapi.__file__).resolve().parents[4] / "shared"
                            / "api-docs" / ods_openapi.DOCUMENT_NAME)
    assert locations[2] == Path("/work/shared/api-docs") / ods_openapi.DOCUMENT_NAME
    # A variable that names no file is an error, not a silent fallback elsewhere.
    path, reason = ods_openapi.locate_document()
    assert path is None and ods_openapi.ENV_VAR in reason and "nowhere.json" in reason
    assert ods_openapi.load() == (None, reason)


def test_the_variable_wins_over_the_default_places(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    given = tmp_path / "ods.json"  # any file: locating reads nothing
    given.write_text("{}")
    monkeypatch.setenv(ods_openapi.ENV_VAR, str(given))
    assert ods_openapi.locate_document()[0] == given


def test_each_erratum_is_needed(document: ods_openapi.Document) -> None:
    """Without the errata, replies as the API gives them fail the document."""
    raw = _raw(document)
    page = {"total_count": 18, "next": None, "previous": None, "results": []}
    assert not _validator(raw, "/components/schemas/PaginatedResults").is_valid(page)
    status_schema = ("/components/responses/DatasetProcessingStatus/content/"
                     "application~1json/schema")
    with pytest.raises(jsonschema.exceptions.UnknownType):
        _validator(raw, status_schema).validate({"status": "idle", "is_published": True})
    template = {"title": {"value": "t"}}  # also an Internal, a Visualization, a Custom...
    assert not _validator(raw, "/components/schemas/DatasetMetadataTemplate").is_valid(template)
    file_source = {"type": "uploaded_file", "file": {"uid": "fi_abc123"}}
    assert not _validator(raw, "/components/schemas/UploadedFileDatasource").is_valid(file_source)
    # ...and with them, they pass.
    assert document.errors("/components/schemas/PaginatedResults", page) == []
    assert document.errors(status_schema, {"status": "idle", "is_published": True}) == []
    assert document.errors("/components/schemas/DatasetMetadataTemplate", template) == []
    assert document.errors("/components/schemas/UploadedFileDatasource", file_source) == []


def test_an_erratum_the_document_no_longer_needs_fails_loudly(
        document: ods_openapi.Document) -> None:
    raw = _raw(document)
    ods_openapi.apply_errata(raw)
    with pytest.raises(ValueError, match="DatasetMetadataTemplate"):
        ods_openapi.apply_errata(raw)  # its oneOf is gone: this erratum no longer applies
    with pytest.raises(ValueError, match="not in the document"):
        ods_openapi.apply_errata({"components": {}}, ods_openapi.ERRATA[:1])
    assert all(erratum.reason for erratum in ods_openapi.ERRATA)


def test_a_discriminator_requires_the_schema_it_maps_to(document: ods_openapi.Document) -> None:
    resource = "/components/schemas/Resource"
    base = {"type": "csvfile", "title": "t"}
    ftp = {**base, "datasource": {"type": "ftp", "connection": {"uid": "co_ftp001"}}}
    assert document.errors(resource, ftp) == []
    no_connection = {**base, "datasource": {"type": "ftp", "relative_url": "/a.csv"}}
    assert any("connection" in e for e in document.errors(resource, no_connection))
    not_a_file = {**base, "datasource": {"type": "uploaded_file", "file": "fi_x"}}
    assert document.errors(resource, not_a_file)


def test_operations_are_found_literal_segments_first(document: ods_openapi.Document) -> None:
    op, known = document.find("POST", "/datasets/da_1/resources/files/")
    assert known and op is not None and op.template.endswith("/resources/files/")
    op, known = document.find("GET", "/datasets/da_1/resources/re_1/")
    assert op is not None and op.template.endswith("/{resource_uid}/")
    assert document.find("PATCH", "/datasets/")[0] is None
    assert document.find("GET", "/no/such/path/") == (None, False)


def test_every_simulator_route_is_an_operation_of_the_document(
        document: ods_openapi.Document) -> None:
    app = create_ods_app(api_keys={"k"})
    missing = []
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if not path.startswith(PREFIX + "/") or route.method == "HEAD":
            continue  # the explore API has a document of its own
        op, _ = document.find(route.method, path.removeprefix(PREFIX))
        if op is None:
            missing.append(f"{route.method} {path}")
    assert missing == []
    app["store"].close()


async def _broken(request: web.Request) -> web.StreamResponse:
    """A made-up server with one of each fault, on documented paths."""
    case = request.query.get("case")
    if case == "crash":
        raise RuntimeError("boom")
    if case == "undeclared":
        return web.json_response({"error_code": "not_found", "message": "x"}, status=404)
    if case == "wrong-body":
        return web.json_response({"total_count": "many", "results": [{"uid": 5}]})
    return web.json_response({"total_count": 0, "next": None, "previous": None, "results": []})


async def _accepting(request: web.Request) -> web.StreamResponse:
    await request.read()
    return web.json_response({"uid": "ak_abc123", "label": "x", "permissions": ["fly"]},
                             status=201)


@pytest.fixture
async def broken(document: ods_openapi.Document) -> AsyncIterator[tuple[str, ods_openapi.Oracle]]:
    oracle = ods_openapi.Oracle(document)  # its own: the session's must stay clean
    app = web.Application(middlewares=[oracle.middleware])
    app.router.add_get(PREFIX + "/datasets/", _broken)
    app.router.add_post(PREFIX + "/apikeys/", _accepting)
    app.router.add_get(PREFIX + "/not/in/the/document/", _broken)
    async with serve(app) as url:
        yield url, oracle


async def test_the_oracle_flags_what_breaks_the_document(
        broken: tuple[str, ods_openapi.Oracle]) -> None:
    url, oracle = broken
    async with aiohttp.ClientSession() as session:
        for case in ("fine", "crash", "undeclared", "wrong-body"):
            async with session.get(f"{url}{PREFIX}/datasets/", params={"case": case}) as r:
                await r.read()
        async with session.post(f"{url}{PREFIX}/apikeys/", json={"permissions": ["fly"]}) as r:
            assert r.status == 201
        async with session.get(f"{url}{PREFIX}/not/in/the/document/") as r:
            await r.read()
    found = [str(v) for v in oracle.violations]
    expected = [
        "unhandled RuntimeError (boom): aiohttp answers a plain-text 500",
        "status 404 is not declared (declared: 200, default)",
        "body $.results[0].uid: 5 is not of type 'string'",
        "body $.results[0]: 'metadata' is a required property",
        "body $.total_count: 'many' is not of type 'integer', 'null'",
        "body $.permissions[0]: 'fly' is not one of",  # the 201 echoes the bad permission...
        "accepted request: $.permissions[0]: 'fly' is not one of",  # ...the request had it
        "the simulator serves an operation the document does not have",
    ]
    assert len(found) == len(expected), "\n".join(found)
    for words in expected:
        assert sum(words in line for line in found) == 1, (words, found)
    assert oracle.stats["replies"] == 4 and "8 violations" in oracle.summary()


def test_fault_replies_are_checked_against_the_default_response(
        document: ods_openapi.Document) -> None:
    oracle = ods_openapi.Oracle(document)
    op, _ = document.find("GET", "/datasets/")
    assert op is not None
    error = orjson.dumps({"error_code": "throttled", "message": "Request was throttled."})
    assert oracle.reply_problems(op, 429, "application/json", error) == []
    assert oracle.reply_problems(op, 503, "application/json", b'{"message": "x"}') == [
        "body $: 'error_code' is a required property"]
    assert oracle.reply_problems(op, 502, "text/html", b"<html>") != []


def test_the_errata_do_not_touch_the_published_document(document: ods_openapi.Document) -> None:
    before = document.path.read_bytes()
    raw = _raw(document)
    fixed = copy.deepcopy(raw)
    ods_openapi.apply_errata(fixed)
    assert fixed != raw and document.path.read_bytes() == before
