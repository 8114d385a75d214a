"""Opendatasoft operations and templates the document has and the simulator lacked; the
domain `bulkport simulate ods` serves for the README's walk-throughs and the shipped jobs.

Every reply here is also checked against the OpenAPI document by the conftest oracle.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bulkport.cli import main
from bulkport.errors import BadResponse
from bulkport.http import HttpClient
from bulkport.portals.ods.mapping import iso_datetime
from bulkport.portals.ods.settings import OdsTargetSettings
from bulkport.portals.ods.tokens import OdsTokens
from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.server import ThreadedServer, build_simulator, parse_args, serve
from bulkport.testing.ods import openapi as ods_openapi
from bulkport.testing.ods.app import create_ods_app
from bulkport.testing.ods.metadata import TEMPLATE_TYPES, dcat_template
from bulkport.testing.ods.seed import JOB_TEMPLATES
from bulkport.testing.ods.store import OdsStore

KEY = "ops-key"
API = "/api/automation/v1.0"
JOBS = Path(__file__).parents[2] / "jobs"


def _metadata(title: str = "Air") -> dict[str, Any]:
    return {"default": {"title": {"value": title}, "language": {"value": "en"},
                        "modified": {"value": "2024-05-01T10:00:00Z"}}}


@dataclass
class Domain:
    api: str
    session: aiohttp.ClientSession
    store: OdsStore

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.api + path, **kwargs) as response:
            body = await response.read()
            return response.status, (await response.json() if body else None)

    async def dataset_with_a_resource(self) -> str:
        _, dataset = await self.call("POST", "/datasets/", json={"metadata": _metadata()})
        form = aiohttp.FormData()
        form.add_field("file", b"a,b\n1,2\n", filename="data.csv")
        _, file = await self.call("POST", f"/datasets/{dataset['uid']}/resources/files/", data=form)
        status, _ = await self.call("POST", f"/datasets/{dataset['uid']}/resources/", json={
            "type": "csvfile", "title": "Data",
            "datasource": {"type": "uploaded_file", "file": {"uid": file["uid"]}}})
        assert status == 201
        return str(dataset["uid"])

    async def settle(self, uid: str) -> dict[str, Any]:
        for _ in range(200):
            _, status = await self.call("GET", f"/datasets/{uid}/status/")
            if status["status"] not in ("queued", "processing"):
                return dict(status)
            await asyncio.sleep(0.01)
        raise AssertionError("still processing")


def _server(store: OdsStore, *, keys: set[str] | None = None) -> web.Application:
    return create_ods_app(store, api_keys={KEY} if keys is None else keys, processing_time=0.05)


@pytest.fixture
async def domain() -> AsyncIterator[Domain]:
    store = OdsStore(seed=9)
    store.templates["dcat"] = dcat_template()
    async with serve(_server(store)) as url, aiohttp.ClientSession(
            headers={"Authorization": f"apikey {KEY}"}) as session:
        yield Domain(url + API, session, store)
    store.close()


async def test_publish_metadata_needs_a_published_idle_dataset_and_starts_no_job(
        domain: Domain) -> None:
    _, draft = await domain.call("POST", "/datasets/", json={"metadata": _metadata()})
    status, body = await domain.call("POST", f"/datasets/{draft['uid']}/publish_metadata/")
    assert status == 400 and body["error_code"] == "invalid_dataset_status"
    assert (await domain.call("POST", "/datasets/da_nope00/publish_metadata/"))[0] == 404

    uid = await domain.dataset_with_a_resource()
    assert (await domain.call("POST", f"/datasets/{uid}/publish/"))[0] == 200
    status, body = await domain.call("POST", f"/datasets/{uid}/publish_metadata/")
    assert status == 400 and body["error_code"] == "invalid_dataset_status"  # busy publishing
    assert (await domain.settle(uid))["is_published"] is True

    new = _metadata("Air quality, renamed")
    assert (await domain.call("PUT", f"/datasets/{uid}/metadata/", json=new))[0] == 200
    assert (await domain.call("POST", f"/datasets/{uid}/publish_metadata/")) == (
        200, {"detail": "ok"})
    _, now = await domain.call("GET", f"/datasets/{uid}/status/")
    assert now["status"] == "idle" and now["next"] is None  # no processing job
    shown = domain.store.datasets[uid].published_metadata
    assert shown is not None and shown["default"]["title"] == {"value": "Air quality, renamed"}


async def test_an_api_key_takes_a_new_label_and_permissions(domain: Domain) -> None:
    _, key = await domain.call("POST", "/apikeys/", json={"label": "ci"})
    status, edited = await domain.call("PUT", f"/apikeys/{key['uid']}/", json={
        "label": "ci (read only)", "permissions": ["explore_restricted_dataset"]})
    assert status == 200 and edited["label"] == "ci (read only)"
    assert edited["permissions"] == ["explore_restricted_dataset"]
    assert edited["key"] == key["key"] and edited["uid"] == key["uid"]
    status, kept = await domain.call("PUT", f"/apikeys/{key['uid']}/", json={})
    assert status == 200 and kept["label"] == "ci (read only)"
    status, body = await domain.call("PUT", f"/apikeys/{key['uid']}/",
                                     json={"permissions": ["fly"]})
    assert status == 400 and set(body["detail"]) == {"permissions"}
    assert (await domain.call("PUT", "/apikeys/ak_nope00/", json={}))[0] == 404
    # Another user edits their own keys only: the admin's is a 404 to them.
    theirs = domain.store.apikeys.create("user001", "own")
    async with aiohttp.ClientSession(headers={"Authorization": f"apikey {theirs.key}"}) as other:
        async with other.put(f"{domain.api}/apikeys/{key['uid']}/", json={"label": "x"}) as r:
            assert r.status == 404
        async with other.put(f"{domain.api}/apikeys/{theirs.uid}/", json={"label": "y"}) as r:
            assert r.status == 200 and (await r.json())["label"] == "y"


async def test_built_in_templates_have_document_types_and_check_their_values(
        domain: Domain) -> None:
    _, listed = await domain.call("GET", "/metadata/templates/")
    types = {t["name"]: t["type"] for t in listed["results"]}
    assert types == {"default": "basic", "internal": "admin", "visualization": "extra",
                     "asset_content_configuration": "extra", "dcat": "interop"}
    assert set(types.values()) <= set(TEMPLATE_TYPES)
    _, interop = await domain.call("GET", "/metadata/templates/", params={"type": "interop"})
    assert [t["name"] for t in interop["results"]] == ["dcat"]

    uid = (await domain.call("POST", "/datasets/", json={"metadata": _metadata()}))[1]["uid"]
    base = f"/datasets/{uid}/metadata"
    views = {"map_disabled": {"value": True}, "table_fields": {"value": ["name", "date"]},
             "map_marker_color": {"value": "#ff0000"}}
    assert (await domain.call("PUT", f"{base}/visualization/", json=views)) == (200, views)
    status, body = await domain.call("PUT", f"{base}/visualization/map_disabled/",
                                     json={"value": "no"})
    assert status == 400
    facets = {"value": [{"field_name": "date", "facetsort": "-count", "disjunctive": True}]}
    status, _ = await domain.call("PUT", f"{base}/asset_content_configuration/facets/", json=facets)
    assert status == 200
    assert (await domain.call("GET", f"{base}/asset_content_configuration/facets/")) == (200, facets)
    for field, value in (("facets", [{"field_name": "x", "facetsort": "size"}]),
                         ("records_search_boosts", {"title": -1}),
                         ("fields_displayed_in_specific_languages", {"title": []})):
        status, body = await domain.call(
            "PUT", f"{base}/asset_content_configuration/{field}/", json={"value": value})
        assert status == 400, (field, body)
    status, _ = await domain.call("PUT", f"{base}/asset_content_configuration/", json={
        "records_search_boosts": {"value": {"title": 10, "tags": 0}},
        "fields_displayed_in_specific_languages": {"value": {"title": ["en", "fr"]}}})
    assert status == 200


async def test_one_template_field_is_addressable(domain: Domain) -> None:
    status, field = await domain.call("GET", "/metadata/templates/default/fields/title/")
    assert status == 200 and field["name"] == "title" and field["requirement_level"] == "mandatory"
    _, listed = await domain.call("GET", "/metadata/templates/default/fields/")
    assert field in listed["results"]
    assert (await domain.call("GET", "/metadata/templates/default/fields/nope/"))[0] == 404
    assert (await domain.call("GET", "/metadata/templates/nope/fields/title/"))[0] == 404


async def test_a_datetime_must_be_rfc_3339_and_bulkport_writes_one(domain: Domain) -> None:
    """The document's datetimes are "date-time" (RFC 3339): the simulator refuses other ISO
    8601 forms, and the mapper rewrites them instead of keeping them as written."""
    uid = (await domain.call("POST", "/datasets/", json={"metadata": _metadata()}))[1]["uid"]
    field = f"/datasets/{uid}/metadata/default/modified/"
    for value, mapped in (("2024-05-01T10:00+02:00", "2024-05-01T10:00:00+02:00"),
                          ("2024-05-01T10:00:00+0200", "2024-05-01T10:00:00+02:00"),
                          ("2024-05-01 10:00:00", "2024-05-01T10:00:00Z"),
                          ("2024-05-01", "2024-05-01T00:00:00Z")):
        status, _ = await domain.call("PUT", field, json={"value": value})
        assert status == 400, value
        assert iso_datetime(value) == mapped
        assert (await domain.call("PUT", field, json={"value": mapped})) == (200, {"value": mapped})
    kept = "2024-05-01T12:00:00.5+02:00"  # already RFC 3339: written back as it was read
    assert iso_datetime(kept) == kept
    assert (await domain.call("PUT", field, json={"value": "2024-02-30T10:00:00Z"}))[0] == 400


# ---- what `bulkport simulate ods` serves ----------------------------------------------

def _simulate(*argv: str) -> web.Application:
    return build_simulator(parse_args(["ods", *argv]))


async def test_simulate_ods_seeds_listed_api_keys_and_templates() -> None:
    app = _simulate("--api-key", "shell-key", "--tokens", "30", "--template", "city:zone,notes",
                    "--template", "custom:owner")
    store: OdsStore = app["store"]
    async with serve(app) as url, aiohttp.ClientSession(
            headers={"Authorization": "apikey shell-key"}) as session:
        async with session.get(f"{url}{API}/apikeys/", params={"limit": 1000}) as r:
            keys = await r.json()
        async with session.get(f"{url}{API}/metadata/templates/") as r:
            templates = {t["name"]: [f["name"] for f in t["schema"]] for t in (await r.json())["results"]}
    assert keys["total_count"] == 31
    own = [k for k in keys["results"] if k["key"] == "shell-key"]
    assert len(own) == 1 and own[0]["label"] == "simulator" and own[0]["user"]["username"] == "admin"
    users = {k["user"]["username"] for k in keys["results"]} - {"admin"}
    assert len(users) == 20 and sum(k["label"] == "datapusher" for k in keys["results"]) >= 10
    assert templates["city"] == ["zone", "notes"]
    assert templates["custom"] == ["bulkport_source_id", "owner"]
    for name, fields in JOB_TEMPLATES.items():
        assert set(fields) <= set(templates[name])
    banner = "\n".join(app["banner"])
    assert "custom.bulkport_source_id" in banner and "31 API keys" in banner
    store.close()
    with pytest.raises(SystemExit):
        _simulate("--template", "no fields")


def _ods_target_names(text: str) -> set[tuple[str, str]]:
    """(template, field) pairs an Opendatasoft [target] names, in lines commented out too."""
    found: set[tuple[str, str]] = set()
    for table in re.split(r"^\[", text, flags=re.MULTILINE):
        if not table.startswith("target]") or not re.search(r'type = "ods"|or "ods"', table):
            continue

        def values(key: str, table: str = table) -> list[str]:
            return re.findall(rf'^#?\s*{key}\s*=\s*"([^"]+)"', table, flags=re.MULTILINE)

        extras_fields = values("extras_field") or ["source_extras"]
        found |= {(t, f) for t in values("extras_template") for f in extras_fields}
        found |= {tuple(mark.split(".", 1)) for mark in values("mark_field")}  # type: ignore[misc]
    return found


def test_the_simulated_domain_has_every_template_the_shipped_jobs_name() -> None:
    named = {pair for job in sorted(JOBS.glob("*.toml"))
             for pair in _ods_target_names(job.read_text())}
    assert ("bulkport", "source_extras") in named and ("custom", "bulkport_source_id") in named
    held = {(name, field) for name, fields in JOB_TEMPLATES.items() for field in fields}
    assert named <= held, named - held


def test_the_demo_job_runs_as_its_header_says(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """jobs/demo.toml against `bulkport simulate ckan` and `bulkport simulate ods
    --api-key demo-ods-key` (only its URLs changed): its extras template is there."""
    shipped = (JOBS / "demo.toml").read_text()
    header = [line for line in shipped.splitlines() if "simulate ods" in line]
    assert header and "--api-key demo-ods-key" in header[0]
    _run_against_simulators(tmp_path, monkeypatch, shipped, ods_args=("--api-key", "demo-ods-key"),
                            keys={"DEMO_CKAN_KEY": "simulator-key", "DEMO_ODS_KEY": "demo-ods-key"})


def test_ckan_to_ods_with_its_commented_templates_migrates_then_verifies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """jobs/ckan-to-ods.toml with its extras_template and mark_field lines uncommented: the
    run and `bulkport verify` work against `bulkport simulate ods` as it starts."""
    shipped = (JOBS / "ckan-to-ods.toml").read_text()
    text = re.sub(r"^# (extras_template|extras_field|mark_field) =", r"\1 =", shipped,
                  flags=re.MULTILINE)
    assert 'mark_field = "custom.bulkport_source_id"' in text and 'extras_template = "ckan"' in text
    store = _run_against_simulators(tmp_path, monkeypatch, text, ods_args=(), verify=True,
                                    keys={"CKAN_API_KEY": "simulator-key",
                                          "ODS_API_KEY": "simulator-key"})
    marks = {d.metadata.get("custom", {}).get("bulkport_source_id", {}).get("value")
             for d in store.datasets.values()}
    assert len(marks) == 3 and None not in marks


def _run_against_simulators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, *,
                            ods_args: tuple[str, ...], keys: dict[str, str],
                            verify: bool = False) -> OdsStore:
    ckan_store = CkanStore(seed=4)
    seed_ckan(ckan_store, datasets=3, resources=1, file_size=512, seed=4)
    ckan = ThreadedServer(lambda: create_ckan_app(ckan_store, api_keys={"simulator-key": "admin"}))
    ods = ThreadedServer(lambda: _simulate(*ods_args))
    with ckan, ods:
        assert ods.app is not None
        job = tmp_path / "job.toml"
        job.write_text(re.sub(r'url = "http[^"]*:(5000|//ckan\.example\.org)"', f'url = "{ckan.url}"',
                              re.sub(r'url = "http[^"]*(:5001|example\.opendatasoft\.com)"',
                                     f'url = "{ods.url}"', text)))
        for name, value in keys.items():
            monkeypatch.setenv(name, value)
        assert main(["run", str(job), "--state-dir", str(tmp_path / "state"), "--no-progress"]) == 0
        if verify:
            assert main(["verify", str(job)]) == 0
        store: OdsStore = ods.app["store"]
    assert len(store.datasets) == 3
    ckan_store.close()
    return store


# ---- bulkport's client and what the document says of total_count ---------------------

async def _keys_page(request: web.Request) -> web.StreamResponse:
    """/apikeys/ as the document types it: total_count a string (or null when asked)."""
    offset = int(request.query.get("offset", 0))
    limit = int(request.query.get("limit", 20))
    keys = [{"uid": f"ak_{n:06d}", "label": "datapusher", "key": f"k{n}",
             "user": {"username": "u"}, "is_revoked": False} for n in range(3)]
    total = None if request.app["null_total"] else "3"
    return web.json_response({"total_count": total, "next": None, "previous": None,
                              "results": keys[offset:offset + limit]})


@pytest.mark.parametrize("null_total", [False, True])
async def test_tokens_read_a_string_total_and_refuse_a_missing_one(null_total: bool) -> None:
    """A string total_count (as the document types it) pages on; a null one is an error,
    not a total of 0 that would leave every page after the first unlisted."""
    app = web.Application()
    app["null_total"] = null_total
    app.router.add_get(API + "/apikeys/", _keys_page)
    async with serve(app) as url, HttpClient() as client:
        tokens = OdsTokens(OdsTargetSettings(type="ods", url=url, api_key="k9"), client)
        original = tokens._page

        async def small_pages(offset: int, limit: int) -> Any:
            return await original(offset, 2)  # two pages for three keys

        tokens._page = small_pages  # type: ignore[method-assign]
        errors: list[str] = []
        if null_total:
            with pytest.raises(Exception) as caught:  # anyio's task group wraps it
                await tokens.collect(None, concurrency=2, on_error=lambda *e: errors.append(str(e)))
            assert caught.group_contains(BadResponse, match="total_count")
        else:
            found = await tokens.collect(None, concurrency=2,
                                         on_error=lambda *e: errors.append(str(e)))
            assert sorted(t.id for t in found) == ["ak_000000", "ak_000001", "ak_000002"]
            assert errors == []


def test_the_oracle_is_on_for_these_tests() -> None:
    """A reminder, in the report, when the document was not found."""
    if ods_openapi.active() is None:
        pytest.skip(ods_openapi.locate_document()[1])
