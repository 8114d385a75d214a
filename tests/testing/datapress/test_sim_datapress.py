"""The DataPress simulator through real HTTP."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkport.testing.core.faults import Faults
from bulkport.testing.core.server import build_simulator, parse_args, serve
from bulkport.testing.datapress.app import create_datapress_app
from bulkport.testing.datapress.seed import seed_datapress
from bulkport.testing.datapress.store import DataPressStore

ADMIN, EDITOR, OUTSIDER = "admin-key", "editor-key", "outsider-key"
PART = 1024  # the smallest part these tests' simulator accepts (the real one: 5 MiB)
TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class Site:
    url: str
    api: str
    session: aiohttp.ClientSession
    store: DataPressStore
    team: str  # the editor's team
    other_team: str
    dataset: str  # a public dataset of the editor's team, with two hosted files

    async def call(self, method: str, path: str, key: str | None = ADMIN,
                   **kwargs: Any) -> tuple[int, Any]:
        url = path if path.startswith("http") else self.api + path
        headers = {"Authorization": key} if key is not None else {}
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            body = await response.read()
            return response.status, (await response.json() if body else None)

    async def patch(self, dataset_id: str, operations: Any,
                    key: str = ADMIN) -> tuple[int, Any]:
        return await self.call("PATCH", f"/dataset/{dataset_id}", key, json=operations)

    async def upload(self, dataset_id: str, data: bytes, key: str = EDITOR,
                     **fields: Any) -> tuple[int, Any]:
        """The whole chunked upload; the parts go last first, which must not matter."""
        parts = -(-len(data) // PART)
        status, urls = await self.call("POST", f"/dataset/{dataset_id}/upload", key,
                                       json={"parts": parts, **fields})
        assert status == 200, urls
        for number in reversed(range(parts)):
            status, body = await self.chunk(urls["urlChunk"], number,
                                            data[number * PART:(number + 1) * PART], key)
            assert status == 200, body
        return await self.call("POST", urls["urlComplete"], key)

    async def chunk(self, url: str, number: int, data: bytes, key: str = EDITOR,
                    field: str = "part") -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="file")  # as the official client sends it
        form.add_field(field, str(number))
        return await self.call("POST", url, key, data=form)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    store = DataPressStore(seed=5)
    ids = seed_datapress(store, datasets=6, resources=3, file_size=1500, seed=2)
    dataset = next(i for i in ids if len(store.datasets[i]["resources"]) == 2)
    store.datasets[dataset]["sharing"] = "public"
    team = store.datasets[dataset]["team"]
    other_team = next(t for t in store.teams if t != team)
    store.add_user("Ada Admin", "ada@example.org", admin=True, key=ADMIN)
    store.add_user("Eddie Editor", "eddie@example.org", teams=[team], key=EDITOR)
    store.add_user("Olga Outsider", "olga@example.org", key=OUTSIDER)
    app = create_datapress_app(store, min_part_size=PART)
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield Site(url, url + "/api/v3", session, store, team, other_team, dataset)
    store.close()


async def _new_dataset(site: Site, **extra: Any) -> dict[str, Any]:
    status, body = await site.call("POST", site.url + "/api/dataset", EDITOR, json={
        "title": "Qualité de l'air 🌍", "masthead": "simulator", "team": site.team, **extra})
    assert status == 200, body
    return dict(body["dataset"])


async def test_whoami_names_the_user_of_a_raw_key_or_answers_null(site: Site) -> None:
    status, me = await site.call("GET", "/whoami", EDITOR)
    assert status == 200
    assert me == {"id": 2, "title": "Eddie Editor", "email": "eddie@example.org",
                  "admin": False, "memberships": [site.team]}
    _, admin = await site.call("GET", "/whoami", ADMIN)
    assert admin["admin"] is True and isinstance(admin["id"], int)
    for key in (None, "wrong", f"Bearer {EDITOR}"):  # no scheme: "Bearer k" is a bad key
        assert await site.call("GET", "/whoami", key) == (200, None)


async def test_create_needs_title_masthead_and_team_and_assigns_an_id(site: Site) -> None:
    create = site.url + "/api/dataset"
    status, body = await site.call("POST", create, EDITOR, json={"title": ""})
    assert status == 400 and body["statusMessage"] == "There are validation errors."
    assert [issue["path"] for issue in body["data"]] == [["title"], ["masthead"], ["team"]]
    assert body["data"][0] == {"code": "too_small", "minimum": 1, "type": "string",
                               "inclusive": True, "exact": False,
                               "message": "This field is required", "path": ["title"]}
    assert body["message"].startswith("There are validation errors.\n* title: This field "
                                      "is required\n")
    fields = {"title": "T", "masthead": "simulator", "team": site.other_team}
    assert (await site.call("POST", create, EDITOR, json=fields))[0] == 403
    assert (await site.call("POST", create, None, json=fields))[0] == 403
    assert (await site.call("POST", create, EDITOR, json={**fields, "team": "zzzzz"}))[0] == 400
    made = await _new_dataset(site, id="xxxxx", resources={"abc": {}}, sharing="private")
    assert re.fullmatch("[a-z0-9]{5}", made["id"]) and made["id"] != "xxxxx"
    assert made["resources"] == {} and made["sharing"] == "private"
    assert made["createdAt"] == made["updatedAt"]
    assert site.store.datasets[made["id"]]["title"] == "Qualité de l'air 🌍"
    # Create lives at /api/dataset only, whatever the prefix of the other routes.
    assert (await site.call("POST", "/dataset", EDITOR, json=fields))[0] == 404


async def test_reading_honours_sharing_and_unknown_ids_are_404(site: Site) -> None:
    status, public = await site.call("GET", f"/dataset/{site.dataset}", None)
    assert status == 200 and public["id"] == site.dataset
    assert all(re.fullmatch("[bcdefghjklmnpqrstvwxyz0-9]{3}", rid) for rid in public["resources"])
    private = (await _new_dataset(site, sharing="private"))["id"]
    for key in (None, OUTSIDER):
        status, body = await site.call("GET", f"/dataset/{private}", key)
        assert status == 403 and body["statusCode"] == 403
        assert set(body) == {"url", "statusCode", "statusMessage", "message"}
    assert (await site.call("GET", f"/dataset/{private}", EDITOR))[0] == 200
    status, body = await site.call("GET", "/dataset/nope0", ADMIN)
    assert status == 404 and body["url"] == "/api/v3/dataset/nope0"


async def test_patch_edits_and_leaves_updated_at_alone(site: Site) -> None:
    before = (await site.call("GET", f"/dataset/{site.dataset}"))[1]
    status, body = await site.patch(site.dataset, [
        {"op": "replace", "path": "/title", "value": "Nouveau titre"},
        {"op": "add", "path": "/links/this_id_is_overwritten",
         "value": {"url": "https://datapress.com/docs/api", "title": "API", "extra": 1}},
        {"op": "add", "path": "/custom/clé", "value": "valeur"},
        {"op": "add", "path": "/unknownField", "value": 1}], key=EDITOR)
    assert status == 200 and set(body) == {"dataset"}
    after = body["dataset"]
    assert after["title"] == "Nouveau titre" and after["custom"]["clé"] == "valeur"
    assert after["updatedAt"] == before["updatedAt"]  # not bumped for you
    assert "unknownField" not in after  # unknown keys are stripped
    (link_id, link), = [(k, v) for k, v in after["links"].items() if k not in before["links"]]
    assert re.fullmatch("[bcdefghjklmnpqrstvwxyz0-9]{3}", link_id)
    assert link["order"] == len(before["links"]) and link["description"] == ""
    assert "extra" not in link and set(link["qa"]) >= {"hash", "httpStatus"}
    assert (await site.call("GET", f"/dataset/{site.dataset}"))[1] == after
    stamp = "2026-02-03T04:05:06.789Z"
    _, body = await site.patch(site.dataset, [
        {"op": "test", "path": "/updatedAt", "value": before["updatedAt"]},
        {"op": "replace", "path": "/updatedAt", "value": stamp}])
    assert body["dataset"]["updatedAt"] == stamp


async def test_patch_permissions(site: Site) -> None:
    title = [{"op": "replace", "path": "/title", "value": "x"}]
    for key in (OUTSIDER, "wrong"):
        status, body = await site.patch(site.dataset, title, key)
        assert status == 403 and body["statusMessage"] == "Forbidden"
    assert (await site.patch("nope0", title))[0] == 404
    move = [{"op": "replace", "path": "/team", "value": site.other_team}]
    assert (await site.patch(site.dataset, move, EDITOR))[0] == 403
    assert (await site.patch(site.dataset, move, ADMIN))[0] == 200
    assert site.store.datasets[site.dataset]["team"] == site.other_team


async def test_patch_validation_errors_carry_each_path_and_store_nothing(site: Site) -> None:
    before = (await site.call("GET", f"/dataset/{site.dataset}"))[1]
    status, body = await site.patch(site.dataset, [
        {"op": "replace", "path": "/title", "value": ""},
        {"op": "replace", "path": "/tags", "value": "not a list"},
        {"op": "replace", "path": "/sharing", "value": "secret"},
        {"op": "replace", "path": "/updatedAt", "value": "yesterday"},
        {"op": "add", "path": "/resources/zzz",
         "value": {"title": "Map", "url": "https://example.org/map.xyz", "format": "xyz"}}])
    assert status == 400 and body["statusMessage"] == "There are validation errors."
    assert [issue["path"] for issue in body["data"]] == [
        ["title"], ["tags"], ["sharing"], ["resources", "zzz", "format"], ["updatedAt"]]
    assert [issue["code"] for issue in body["data"]] == [
        "too_small", "invalid_type", "invalid_enum_value", "custom", "invalid_string"]
    assert "* resources.zzz.format: Unknown file format: 'xyz'" in body["message"]
    assert (await site.call("GET", f"/dataset/{site.dataset}"))[1] == before
    # A resource added by PATCH points at a URL; with a known format it is accepted.
    status, body = await site.patch(site.dataset, [{"op": "add", "path": "/resources/zzz",
                                                    "value": {"title": "Map", "format": "kml",
                                                              "url": "https://x.org/a.kml"}}])
    assert status == 200 and body["dataset"]["resources"]["zzz"]["hash"] is None


async def test_a_failed_test_operation_applies_nothing(site: Site) -> None:
    status, body = await site.patch(site.dataset, [
        {"op": "replace", "path": "/title", "value": "changed"},
        {"op": "test", "path": "/updatedAt", "value": "1999-01-01T00:00:00.000Z"}])
    assert status == 400 and body["data"] == [{
        "code": "TEST_OPERATION_FAILED", "message": "Test operation failed",
        "path": ["updatedAt"], "index": 1,
        "operation": {"op": "test", "path": "/updatedAt", "value": "1999-01-01T00:00:00.000Z"}}]
    assert site.store.datasets[site.dataset]["title"] != "changed"
    _, body = await site.patch(site.dataset, [{"op": "remove", "path": "/links/nope"}])
    assert body["data"][0]["code"] == "OPERATION_PATH_UNRESOLVABLE"
    assert body["data"][0]["path"] == ["links", "nope"]
    _, body = await site.patch(site.dataset, {"op": "replace"})
    assert body["data"][0]["code"] == "SEQUENCE_NOT_AN_ARRAY"


async def test_immutable_fields_are_ignored_unless_refused(site: Site) -> None:
    before = (await site.call("GET", f"/dataset/{site.dataset}"))[1]
    resource_id = next(iter(before["resources"]))
    edits = [{"op": "replace", "path": "/id", "value": "other"},
             {"op": "replace", "path": "/createdAt", "value": "2020-01-01T00:00:00.000Z"},
             {"op": "replace", "path": f"/resources/{resource_id}/hash", "value": "forged"},
             {"op": "replace", "path": f"/resources/{resource_id}/title", "value": "Renamed"}]
    status, body = await site.patch(site.dataset, edits)
    after = body["dataset"]
    assert status == 200 and after["id"] == site.dataset
    assert after["createdAt"] == before["createdAt"]
    assert after["resources"][resource_id] == {**before["resources"][resource_id],
                                               "title": "Renamed"}
    strict = create_datapress_app(site.store, reject_immutable=True)
    async with serve(strict) as url:
        async with site.session.patch(f"{url}/api/v3/dataset/{site.dataset}", json=edits,
                                      headers={"Authorization": ADMIN}) as response:
            status, body = response.status, await response.json()
    assert status == 400 and [issue["path"] for issue in body["data"]] == [
        ["resources", resource_id, "hash"], ["id"], ["createdAt"]]
    assert {issue["message"] for issue in body["data"]} == {"This field is read-only"}


async def test_chunked_upload_adds_a_file_served_back_byte_for_byte(site: Site) -> None:
    data = ("id,ville\n" + "".join(f"{n},Zürich\n" for n in range(300))).encode()
    blobs_before = len(site.store.blobs)
    updated_before = site.store.datasets[site.dataset]["updatedAt"]
    status, body = await site.upload(
        site.dataset, data, filename="Données Air.CSV", title="Air", description="Mesures",
        order=1, timeframe={"from": "2024-01", "to": "2024-12"})
    assert status == 200 and set(body) == {"dataset", "resource_id", "new_key"}
    dataset, resource_id = body["dataset"], body["resource_id"]
    resource = dataset["resources"][resource_id]
    assert resource["title"] == "Air" and resource["description"] == "Mesures"
    assert resource["timeframe"] == {"from": "2024-01", "to": "2024-12"}
    assert resource["format"] == "csv" and resource["size"] == len(data)
    assert resource["hash"] == hashlib.md5(data).hexdigest()
    assert resource["origin"] == body["new_key"]
    assert sorted(r["order"] for r in dataset["resources"].values()) == [0, 1, 2]
    assert resource["order"] == 1 and dataset["updatedAt"] > updated_before  # uploads bump it
    assert resource["url"].startswith(site.url + "/download/")
    async with site.session.get(resource["url"], headers={"Authorization": EDITOR}) as got:
        assert got.status == 200 and got.content_type == "text/csv"
        assert await got.read() == data
    # The parts are gone once joined; only the file remains.
    assert len(site.store.blobs) == blobs_before + 1 and not site.store.uploads
    stats = site.store.stats
    assert (stats["datapress:upload"], stats["datapress:chunk"], stats["datapress:complete"],
            stats["datapress:download"]) == (1, -(-len(data) // PART), 1, 1)


async def test_a_jpeg_is_filed_as_an_image(site: Site) -> None:
    # What the official client's suite expects of an uploaded .jpg (its S3 test).
    status, body = await site.upload(site.dataset, b"\xff\xd8\xff" + b"0" * 40,
                                     filename="Photo.JPG", title="Photo")
    assert status == 200
    assert body["dataset"]["resources"][body["resource_id"]]["format"] == "image"


async def test_upload_replaces_a_file_in_place(site: Site) -> None:
    old = site.store.datasets[site.dataset]["resources"]
    resource_id, previous = next(iter(old.items()))
    old_origin = previous["origin"]
    status, body = await site.upload(site.dataset, b"a,b\n1,2\n", filename="v2.csv",
                                     resource_id=resource_id)
    assert status == 200 and body["resource_id"] == resource_id
    replaced = body["dataset"]["resources"][resource_id]
    assert replaced["title"] == previous["title"] and replaced["order"] == previous["order"]
    assert replaced["size"] == 8 and body["new_key"] != old_origin
    assert old_origin not in site.store.blobs and len(body["dataset"]["resources"]) == 2
    status, body = await site.patch(site.dataset, [
        {"op": "remove", "path": f"/resources/{resource_id}"}])  # a file removed by PATCH
    assert status == 200 and resource_id not in body["dataset"]["resources"]
    assert replaced["origin"] not in site.store.blobs
    status, body = await site.call("POST", f"/dataset/{site.dataset}/upload", EDITOR,
                                   json={"filename": "x.csv", "parts": 1, "resource_id": "qqq"})
    assert status == 404


async def test_chunk_and_complete_refuse_what_is_wrong(site: Site) -> None:
    start = f"/dataset/{site.dataset}/upload"
    status, body = await site.call("POST", start, EDITOR, json={"parts": -1, "filename": 3})
    assert status == 400 and [i["path"] for i in body["data"]] == [["filename"], ["parts"]]
    assert (await site.call("POST", start, OUTSIDER, json={"filename": "a", "parts": 1}))[0] == 403
    _, urls = await site.call("POST", start, EDITOR, json={"filename": "a.csv", "parts": 3})
    status, body = await site.chunk(urls["urlChunk"], 0, b"x" * (PART - 1))
    assert status == 400 and body["data"][0]["path"] == ["file"]  # a short part, not last
    status, body = await site.chunk(urls["urlChunk"], 3, b"x")
    assert status == 400 and body["data"][0]["path"] == ["part"]
    assert (await site.chunk(urls["urlChunk"], 0, b"x" * PART, key=ADMIN))[0] == 403
    assert (await site.chunk(urls["urlChunk"], 0, b"x" * PART))[0] == 200
    assert (await site.chunk(urls["urlChunk"], 2, b"z", field="chunk"))[0] == 200  # doc's name
    status, body = await site.call("POST", urls["urlComplete"], EDITOR)
    assert status == 400 and body["statusMessage"] == "Upload is incomplete."
    assert body["data"][0]["missing"] == [1] and "missing part(s) 1" in body["message"]
    assert (await site.chunk(urls["urlChunk"], 1, b"y" * PART))[0] == 200
    status, body = await site.call("POST", urls["urlComplete"], EDITOR)
    assert status == 200 and body["dataset"]["resources"][body["resource_id"]]["size"] == (
        2 * PART + 1)
    assert (await site.call("POST", urls["urlComplete"], EDITOR))[0] == 404  # used up


async def test_completing_an_upload_joins_the_parts_without_holding_the_file(
        site: Site) -> None:
    part = 2 * 1024 * 1024
    _, urls = await site.call("POST", f"/dataset/{site.dataset}/upload", EDITOR,
                              json={"filename": "big.csv", "parts": 4})
    md5 = hashlib.md5()
    for number in range(4):
        data = bytes([65 + number]) * part
        md5.update(data)
        assert (await site.chunk(urls["urlChunk"], number, data))[0] == 200
    tracemalloc.start()
    try:
        status, body = await site.call("POST", urls["urlComplete"], EDITOR)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200 and peak < part // 2
    resource = body["dataset"]["resources"][body["resource_id"]]
    assert (resource["size"], resource["hash"]) == (4 * part, md5.hexdigest())


async def test_downloads_need_read_permission(site: Site) -> None:
    shown = (await site.call("GET", f"/dataset/{site.dataset}"))[1]
    resource = next(iter(shown["resources"].values()))
    async with site.session.get(resource["url"]) as response:  # a public dataset's file
        content = await response.read()
    assert hashlib.md5(content).hexdigest() == resource["hash"]
    site.store.datasets[site.dataset]["sharing"] = "private"
    for key, expected in ((None, 403), (OUTSIDER, 403), (EDITOR, 200)):
        headers = {"Authorization": key} if key else {}
        async with site.session.get(resource["url"], headers=headers) as response:
            assert response.status == expected
    unknown = f"{site.url}/download/{site.dataset}/qqq/x.csv"
    async with site.session.get(unknown, headers={"Authorization": ADMIN}) as response:
        assert response.status == 404



async def test_a_dataset_has_a_public_page_as_the_export_names_it(site: Site) -> None:
    async with site.session.get(site.api + "/datasets/export.json") as response:
        exported = {d["id"]: d for d in await response.json()}
    page = exported[site.dataset]["webpage"]
    assert page == f"{site.url}/dataset/{site.dataset}"
    shown = (await site.call("GET", f"/dataset/{site.dataset}"))[1]
    for url in (page, f"{page}/any-title-slug"):  # the short and the friendly URL
        async with site.session.get(url) as response:  # a visitor: no key
            assert (response.status, response.content_type) == (200, "text/html")
            html = await response.text()
        assert all(res["url"] in html for res in shown["resources"].values())
    for url in (f"{site.url}/dataset/zzzzz", f"{site.url}/dataset/zzzzz/some-title"):
        async with site.session.get(url) as response:
            assert response.status == 404
    site.store.datasets[site.dataset]["sharing"] = "private"
    for key, expected in ((None, 403), (OUTSIDER, 403), (EDITOR, 200)):
        headers = {"Authorization": key} if key else {}
        async with site.session.get(page, headers=headers) as response:
            assert response.status == expected
    assert site.store.stats["datapress:page"] == 7


async def test_export_streams_the_catalogue_the_key_may_read(site: Site) -> None:
    private = (await _new_dataset(site, sharing="private"))["id"]
    async with site.session.get(site.api + "/datasets/export.json") as response:
        assert response.headers.get("Transfer-Encoding") == "chunked"  # written as it goes
        anonymous = await response.json()
    _, everything = await site.call("GET", "/datasets/export.json", EDITOR)
    assert private in {d["id"] for d in everything} - {d["id"] for d in anonymous}
    assert len(everything) == len(site.store.datasets) - sum(
        d["sharing"] == "private" and d["team"] != site.team
        for d in site.store.datasets.values())
    entry = next(d for d in everything if d["id"] == site.dataset)
    assert entry["webpage"] == f"{site.url}/dataset/{site.dataset}"
    assert entry["team"] == {"id": site.team, "title": site.store.teams[site.team]["title"]}
    assert set(entry["masthead"]) == {"id", "title"}
    assert [r["order"] for r in entry["resources"]] == [0, 1]
    assert all(r["id"] in site.store.datasets[site.dataset]["resources"]
               for r in entry["resources"])
    assert site.store.stats["datapress:export"] == 2


async def test_the_v4_generation_under_api() -> None:
    store = DataPressStore(seed=1)
    team = store.add_team("Équipe")["id"]
    app = create_datapress_app(store, prefix="/api")
    async with serve(app) as url, aiohttp.ClientSession(
            headers={"Authorization": "simulator-key"}, timeout=TIMEOUT) as session:
        async with session.get(url + "/api/whoami") as response:
            assert (await response.json())["admin"] is True
        async with session.get(url + "/api/v3/whoami") as response:
            assert response.status == 404
        async with session.post(url + "/api/dataset", json={
                "title": "T", "masthead": "simulator", "team": team}) as response:
            dataset_id = (await response.json())["dataset"]["id"]
        form = aiohttp.FormData()
        form.add_field("file", b'{"a": 1}', filename="data.json")
        form.add_field("title", "JSON")
        async with session.post(f"{url}/api/dataset/{dataset_id}/resources",
                                data=form) as response:
            shown = await response.json()  # the dataset itself, not wrapped
        (resource,) = shown["resources"].values()
        assert (resource["title"], resource["format"], resource["size"]) == ("JSON", "json", 8)
        async with session.get(url + "/api/datasets/export.json") as response:
            assert [d["id"] for d in await response.json()] == [dataset_id]
    store.close()


async def test_the_default_part_size_is_five_mebibytes() -> None:
    store = DataPressStore()
    team = store.add_team("T")["id"]
    store.datasets["ab12x"] = {"id": "ab12x", "team": team, "sharing": "public",
                               "resources": {}}
    app = create_datapress_app(store)
    async with serve(app) as url, aiohttp.ClientSession(
            headers={"Authorization": "simulator-key"}, timeout=TIMEOUT) as session:
        async with session.post(url + "/api/v3/dataset/ab12x/upload",
                                json={"filename": "big.bin", "parts": 2}) as response:
            chunk_url = (await response.json())["urlChunk"]
        for size, expected in ((5 * 1024 * 1024 - 1, 400), (5 * 1024 * 1024, 200)):
            form = aiohttp.FormData()
            form.add_field("part", "0")
            form.add_field("file", b"\0" * size, filename="file")
            async with session.post(chunk_url, data=form) as response:
                assert response.status == expected
    store.close()


async def test_faults_use_the_datapress_error_shape_and_drops_cut_the_export() -> None:
    store = DataPressStore()
    seed_datapress(store, datasets=40, resources=1, seed=1)
    faults = Faults(error_rate=1.0, kinds=("429",), retry_after=2)
    app = create_datapress_app(store, faults=faults)
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(url + "/api/v3/whoami") as response:
            assert response.status == 429 and response.headers["Retry-After"] == "2"
            assert (await response.json())["statusCode"] == 429
    assert store.stats["datapress:whoami"] == 1 and store.stats["faults:429"] == 1
    app = create_datapress_app(store, faults=Faults(error_rate=1.0, kinds=("drop_after",)))
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(url + "/api/v3/datasets/export.json") as response:
                await response.read()
    store.close()


async def test_simulate_datapress_serves_a_seeded_catalogue() -> None:
    app = build_simulator(parse_args(["datapress", "--datasets", "4", "--api-key", "k"]))
    # The start banner names every team and masthead id, for a job file's [target].
    teams, mastheads = app["banner"][:2]
    assert all(team_id in teams for team_id in app["store"].teams)
    assert all(masthead in mastheads for masthead in app["store"].mastheads)
    assert {"ab12x", "main"} <= set(app["store"].teams) and "main" in app["store"].mastheads
    async with serve(app) as url, aiohttp.ClientSession(
            headers={"Authorization": "k"}, timeout=TIMEOUT) as session:
        async with session.get(url + "/api/v3/whoami") as response:
            assert (await response.json())["admin"] is True
        async with session.get(url + "/api/v3/datasets/export.json") as response:
            assert len(await response.json()) == 4
    app["store"].close()
