"""The CKAN simulator as a migration target: revise, names, delete/purge, files, members."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from action_client import call_action

from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.files import SyntheticFile
from bulkport.testing.core.server import serve

ADMIN, EDITOR = "admin-token", "editor-token"


@dataclass
class Site:
    url: str
    session: aiohttp.ClientSession
    store: CkanStore

    async def call(self, action: str, post: Any = None, *, key: str | None = EDITOR,
                   get: dict[str, Any] | None = None) -> tuple[int, Any]:
        return await call_action(self.session, self.url, action, get=get, post=post, key=key)

    async def create(self, name: str, **fields: Any) -> dict[str, Any]:
        org = next(iter(self.store.org_names))
        status, body = await self.call("package_create",
                                       {"name": name, "owner_org": org, **fields})
        assert status == 200, body
        return dict(body["result"])


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    store = CkanStore(seed=3)
    seed_ckan(store, datasets=5, resources=1, file_size=500, seed=3)
    app = create_ckan_app(store, api_keys={ADMIN: "alice", EDITOR: "bob"},
                          sysadmins={"alice"}, max_resource_size=50_000)
    async with serve(app) as url, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Site(url, session, store)
    store.close()


def _form(**fields: Any) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)  # UTF-8 file names as they are
    for name, value in fields.items():
        if isinstance(value, tuple):  # (filename, bytes)
            form.add_field(name, value[1], filename=value[0])
        else:
            form.add_field(name, value if isinstance(value, str) else orjson.dumps(value).decode())
    return form


async def test_revise_checks_match_then_filters_and_updates(site: Site) -> None:
    pkg = await site.create("rev-one", notes="old", resources=[
        {"name": "a", "url": "https://example.org/a.csv"},
        {"name": "b", "url": "https://example.org/b.csv"}])
    first, second = pkg["resources"]
    status, body = await site.call("package_revise", {"update": {"notes": "x"}})
    assert (status, body["error"]) == (409, {"match__id": "Missing value",
                                             "__type": "Validation Error"})
    status, body = await site.call("package_revise", {
        "match": {"name": "rev-one", "notes": "wrong", "resources": [{"name": "a"}, {}, {}]},
        "update": {"notes": "new"}})
    assert status == 409 and body["error"]["match"] == ["notes", "resources__2"]
    status, body = await site.call("package_revise", {"match": {"id": pkg["id"]},
                                                      "update": "not json"})
    assert status == 409 and body["error"]["update"] == ["Must be a dict"]

    status, body = await site.call("package_revise", {
        "match__name": "rev-one", "match__notes": "old", "update__notes": "new",
        f"update__resources__{second['id'][:6]}": {"description": "by id"},
        "update__resources__extend": [{"name": "c", "url": "https://example.org/c.json"}]})
    assert status == 200, body
    revised = body["result"]["package"]
    assert revised["notes"] == "new" and revised["title"] == pkg["title"]
    assert [r["name"] for r in revised["resources"]] == ["a", "b", "c"]
    assert revised["resources"][1]["description"] == "by id"
    assert revised["resources"][2]["format"] == "JSON"

    status, body = await site.call("package_revise", {
        "match": {"id": pkg["id"]}, "filter": ["-resources__0", "-notes"],
        "include": ["+package__resources", "-package__*"]})
    assert status == 200, body
    assert list(body["result"]) == ["package"] and list(body["result"]["package"]) == [
        "resources"]
    assert [r["id"] for r in body["result"]["package"]["resources"]] == [
        second["id"], revised["resources"][2]["id"]]
    assert site.store.packages[pkg["id"]]["notes"] is None
    assert first["id"] not in site.store.resources

    status, body = await site.call("package_revise", {"match": {"id": pkg["id"]},
                                                      "include": ["-*"]})
    assert (status, body["result"]) == (200, {})


async def test_revise_key_errors(site: Site) -> None:
    pkg = await site.create("rev-two")
    status, body = await site.call("package_revise", {"match__id": pkg["id"],
                                                      "match__resources__3__name": "x"})
    assert status == 400 and body["error"]["__type"] == "Integrity Error"
    assert body["error"]["message"] == "Unmatched key resources__3"
    status, body = await site.call("package_revise", {"match__id": pkg["id"],
                                                      "update__resources__0__name": "x"})
    assert status == 409 and body["error"]["resources__0__name"] == [
        "Unmatched key resources__0"]
    status, body = await site.call("package_revise", {"match__id": pkg["id"],
                                                      "update__notes": "x"}, key=None)
    assert status == 403 and body["error"]["message"] == (
        "Access denied: Action package_revise requires an authenticated user")
    status, _ = await site.call("package_revise", {"match": {"name": "nowhere"}})
    assert status == 404
    async with site.session.put(site.url + "/api/3/action/package_revise", json={},
                                headers={"Authorization": EDITOR}) as response:
        assert response.status == 405  # the route takes GET and POST only


async def test_revise_uploads_files_to_new_and_existing_resources(site: Site) -> None:
    pkg = await site.create("rev-files", resources=[{"name": "old", "url": "",
                                                     "mimetype": "text/plain"}])
    blobs_before = len(site.store.blobs)
    replaced, added = SyntheticFile(3000, seed=1), SyntheticFile(4000, seed=2)
    status, body = await site.call("package_revise", _form(**{
        "match__id": pkg["id"],
        "update__resources__extend": [{"name": "added"}],
        "update__resources__-1__upload": ("Ajouté été.csv", added.read()),
        "update__resources__0__upload": ("replaced.csv", replaced.read())}))
    assert status == 200, body
    old, new = body["result"]["package"]["resources"]
    assert old["id"] == pkg["resources"][0]["id"] and new["name"] == "added"
    assert (old["url_type"], old["size"], new["url_type"], new["size"]) == (
        "upload", 3000, "upload", 4000)
    assert old["mimetype"] == "text/plain"  # the key was there: CKAN keeps it
    assert new["mimetype"] == "text/csv" and old["last_modified"]
    assert new["url"].endswith("/download/ajoute-ete.csv")
    for res, file in ((old, replaced), (new, added)):
        async with site.session.get(res["url"]) as response:
            assert hashlib.sha256(await response.read()).hexdigest() == file.sha256()
    assert len(site.store.blobs) == blobs_before + 2

    status, body = await site.call("package_revise", _form(**{
        "match__id": pkg["id"], "update__resources__0__upload": ("big.bin", b"x" * 60_000)}))
    assert (status, body["error"]) == (409, {"upload": ["File upload too large"],
                                             "__type": "Validation Error"})
    status, body = await site.call("package_revise", _form(**{
        "match__id": pkg["id"], "update__resources__7__upload": ("x.csv", b"a,b\n")}))
    assert status == 409 and "resources__7__upload" in body["error"]
    assert len(site.store.blobs) == blobs_before + 2  # nothing left behind by failures


async def test_package_name_rules(site: Site) -> None:
    org = next(iter(site.store.org_names))
    cases = {
        "a": ["Must be at least 2 characters long", 'Name "a" length is less than minimum 2'],
        "x" * 101: ["Name must be a maximum of 100 characters long",
                    f'Name "{"x" * 101}" length is more than maximum 100'],
        "new": ["That name cannot be used"],
        "Ünïcode": ["Must be purely lowercase alphanumeric (ascii) characters and these "
                    "symbols: -_"],
        next(iter(site.store.names)): ["That URL is already in use."],
    }
    for name, messages in cases.items():
        status, body = await site.call("package_create", {"name": name, "owner_org": org})
        assert (status, body["error"]["name"]) == (409, messages), name
    status, _ = await site.call("package_create", {"name": "ok_name-2", "owner_org": org})
    assert status == 200


async def test_delete_is_undoable_and_frees_the_name_purge_is_final(site: Site) -> None:
    pkg = await site.create("doomed")
    status, body = await site.call("package_delete", {"id": "nothing-here"})
    assert (status, body["error"]["message"]) == (404, "Not found")
    assert (await site.call("package_delete", {"id": "doomed"}))[0] == 200
    status, _ = await site.call("package_show", get={"id": "doomed"}, key=None)
    assert status == 403  # a deleted dataset is no longer public
    status, body = await site.call("package_show", get={"id": "doomed"})
    assert status == 200 and body["result"]["state"] == "deleted"
    assert (await site.call("package_patch", {"id": pkg["id"], "state": "active"}))[0] == 200
    assert site.store.packages[pkg["id"]]["state"] == "active"

    await site.call("package_delete", {"id": pkg["id"]})
    again = await site.create("doomed")  # CKAN renames the deleted one to its id
    assert again["id"] != pkg["id"]
    assert site.store.packages[pkg["id"]]["name"] == pkg["id"]
    status, body = await site.call("package_show", get={"id": "doomed"})
    assert body["result"]["id"] == again["id"]
    await site.call("package_delete", {"id": again["id"]})
    other = await site.create("other-name")
    status, body = await site.call("package_patch", {"id": other["id"], "name": "doomed"})
    assert status == 500  # CKAN's unique index on the name: an IntegrityError

    status, body = await site.call("dataset_purge", {"id": again["id"]}, key=None)
    assert (status, body["error"]["message"]) == (
        403, "Access denied: Action dataset_purge requires an authenticated user")
    status, body = await site.call("dataset_purge", {"id": again["id"]})
    assert (status, body["error"]["message"]) == (403, "Access denied")
    status, body = await site.call("dataset_purge", {"id": "doomed"}, key=ADMIN)
    assert (status, body["result"]) == (200, None)
    assert again["id"] not in site.store.packages and "doomed" not in site.store.names
    status, body = await site.call("dataset_purge", {"id": again["id"]}, key=ADMIN)
    assert (status, body["error"]["message"]) == (404, "Not found: Dataset was not found")
    status, _ = await site.call("package_patch", {"id": other["id"], "name": "doomed"})
    assert status == 200


async def test_resource_files_follow_ckan_mimetype_and_size_rules(site: Site) -> None:
    pkg = await site.create("files")
    status, body = await site.call("resource_create", _form(
        package_id=pkg["id"], size="12", upload=("data.csv", b"a,b\n1,2\n")))
    res = body["result"]
    assert (res["size"], res["mimetype"], res["url_type"]) == (12, "text/csv", "upload")
    assert res["last_modified"]  # resource_create keeps a size it was given
    status, body = await site.call("resource_patch", _form(
        id=res["id"], upload=("data.json", b'{"a": 1}')))
    patched = body["result"]
    assert (patched["size"], patched["mimetype"]) == (8, "text/csv")  # kept: key was there
    assert patched["url"].endswith("/data.json")
    status, body = await site.call("resource_update", _form(
        id=res["id"], upload=("data.json", b'{"a": 2}')))
    assert (body["result"]["size"], body["result"]["mimetype"]) == (8, "application/json")
    blobs = len(site.store.blobs)
    status, _ = await site.call("package_create", _form(
        name="stray-file", owner_org=pkg["owner_org"], upload=("x.csv", b"1\n")))
    assert status == 200 and len(site.store.blobs) == blobs  # an unread file is not kept


async def _dates(site: Site, pkg_id: str) -> tuple[str, str]:
    """The package's ``metadata_modified`` and Solr's ``indexed_ts``, stored values."""
    stored = site.store.packages[pkg_id]
    return stored["metadata_modified"], stored["indexed_ts"]


async def test_resource_writes_move_the_dates_as_ckan_does(site: Site) -> None:
    """Measured on CKAN 2.12: every resource write reindexes the dataset, but a sysadmin's
    resource_delete sends package_show's metadata_modified back, so that date stays."""
    pkg = await site.create("dated", resources=[{"url": "https://example.org/a.csv"},
                                                {"url": "https://example.org/b.csv"}])
    first, second = (r["id"] for r in pkg["resources"])
    steps = [
        ("resource_delete", {"id": first}, ADMIN, False),
        ("resource_delete", {"id": second}, EDITOR, True),  # the schema strips an editor's
        ("resource_create", {"package_id": pkg["id"], "url": "https://example.org/c.csv"},
         ADMIN, True),
        ("package_patch", {"id": pkg["id"], "title": "Dated"}, ADMIN, True),
    ]
    for action, data, key, moves in steps:
        before = await _dates(site, pkg["id"])
        status, body = await site.call(action, data, key=key)
        assert status == 200, body
        after = await _dates(site, pkg["id"])
        assert (after[0] != before[0], after[1] != before[1]) == (moves, True), action
    new = site.store.packages[pkg["id"]]["resources"][0]["id"]
    for action, form in (("resource_patch", _form(id=new, upload=("c.csv", b"1\n"))),
                         ("resource_update", _form(id=new, upload=("c.csv", b"2\n")))):
        before = await _dates(site, pkg["id"])
        assert (await site.call(action, form, key=ADMIN))[0] == 200
        after = await _dates(site, pkg["id"])
        assert after[0] != before[0] and after[1] != before[1], action
    before = await _dates(site, pkg["id"])
    await site.call("package_patch", {"id": pkg["id"], "title": "Dated"}, key=ADMIN)
    assert await _dates(site, pkg["id"]) == before  # nothing changed: no write, no reindex

    # fl returns indexed_ts as Solr stores it; package_show never shows it.
    cut = site.store.packages[pkg["id"]]["indexed_ts"]
    _, body = await site.call("package_search", get={
        "fl": "id,indexed_ts", "fq": f"(metadata_modified:[{cut}Z TO *] OR "
                                     f"indexed_ts:[{cut}Z TO *])"})
    assert [set(r) for r in body["result"]["results"]] == [{"id", "indexed_ts"}]
    assert body["result"]["results"][0]["indexed_ts"].endswith("Z")
    _, shown = await site.call("package_show", get={"id": pkg["id"]})
    assert "indexed_ts" not in shown["result"]


async def test_resource_update_replaces_the_resource_and_patch_keeps_it(site: Site) -> None:
    """Measured on CKAN 2.12: columns marked ``remove_if_not_provided`` (url, description,
    resource_type, mimetype, mimetype_inner) and extras are cleared when not sent; name,
    format, hash and size stay."""
    pkg = await site.create("replaced", resources=[{
        "url": "https://example.org/a.csv", "name": "a", "description": "da", "custom": "x",
        "resource_type": "doc", "mimetype": "text/csv", "hash": "abc", "size": 12}])
    res_id = pkg["resources"][0]["id"]
    status, body = await site.call("resource_patch", {"id": res_id, "name": "a2"})
    assert status == 200
    kept = body["result"]
    assert (kept["url"], kept["description"], kept["custom"], kept["resource_type"]) == (
        "https://example.org/a.csv", "da", "x", "doc")
    status, body = await site.call("resource_update", {"id": res_id,
                                                       "url": "https://example.org/b.json"})
    got = body["result"]
    assert (got["name"], got["format"], got["hash"], got["size"]) == ("a2", "CSV", "abc", 12)
    assert (got["description"], got["resource_type"], got.get("custom")) == (None, None, None)
    assert got["mimetype"] == "application/json"  # guessed again from the new URL
    status, body = await site.call("resource_update", {"id": res_id, "name": "a3"})
    assert (body["result"]["url"], body["result"]["mimetype"]) == ("", None)

    # package_patch merges top-level keys only: "resources" sent replaces the whole list.
    two = await site.create("two", resources=[{"url": "https://example.org/1.csv"},
                                              {"url": "https://example.org/2.csv",
                                               "name": "second"}])
    keep = two["resources"][1]["id"]
    status, body = await site.call("package_patch", {"id": two["id"], "resources": [
        {"id": keep, "name": "renamed"}]})
    assert status == 200
    [left] = body["result"]["resources"]
    assert (left["id"], left["name"], left["url"]) == (keep, "renamed", "")


async def test_a_deleted_resource_is_kept_until_the_resource_list_changes(site: Site) -> None:
    """CKAN keeps a deleted resource's row (state deleted): deleting it again is a 200 that
    changes nothing, until the next change of the list purges the row."""
    pkg = await site.create("kept-rows", resources=[{"url": "https://example.org/a.csv"},
                                                    {"url": "https://example.org/b.csv"}])
    first = pkg["resources"][0]["id"]
    assert (await site.call("resource_delete", {"id": first}))[0] == 200
    assert (await site.call("resource_show", get={"id": first}))[0] == 404
    stamp = site.store.packages[pkg["id"]]["indexed_ts"]
    assert await site.call("resource_delete", {"id": first}) == (200, {
        "help": f"{site.url}/api/3/action/help_show?name=resource_delete", "success": True,
        "result": None})
    assert site.store.packages[pkg["id"]]["indexed_ts"] == stamp  # nothing written
    await site.call("resource_create", {"package_id": pkg["id"], "url": "https://example.org/c"})
    status, body = await site.call("resource_delete", {"id": first})
    assert (status, body["error"]["message"]) == (404, "Not found")


async def _race(app_options: dict[str, Any], bodies: list[dict[str, Any]]
                ) -> tuple[CkanStore, list[tuple[int, Any]], int]:
    """``bodies`` created all at once, then one more create of the first: the replies, and
    the status of that last create."""
    store = CkanStore(seed=4)
    seed_ckan(store, datasets=1, resources=0, seed=4)
    org = next(iter(store.org_names))
    app = create_ckan_app(store, api_keys={ADMIN: "alice"}, **app_options)
    replies: list[tuple[int, Any]] = [(0, None)] * len(bodies)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async def create(n: int) -> None:
            replies[n] = await call_action(session, url, "package_create",
                                           post={**bodies[n], "owner_org": org}, key=ADMIN)

        async with anyio.create_task_group() as tg:
            for n in range(len(bodies)):
                tg.start_soon(create, n)
        later, _ = await call_action(session, url, "package_create",
                                     post={**bodies[0], "owner_org": org}, key=ADMIN)
    store.close()
    return store, replies, later


def _twins(count: int) -> list[dict[str, Any]]:
    return [{"name": "twin", "title": f"body {n}",
             "extras": [{"key": "bulkport_source_id", "value": f"src-{n}"}]}
            for n in range(count)]


async def test_concurrent_creates_of_one_name_race_as_on_a_real_ckan() -> None:
    """Measured on CKAN 2.12 (4 gunicorn workers, 8 concurrent creates, 25 rounds): 1 to 4
    answered 200, all with one id, each showing its own body, the last write winning; the
    rest 409 ("That URL is already in use.") or 500 (the unique index on the name)."""
    _, replies, _ = await _race({}, _twins(3))
    assert sorted(status for status, _ in replies) == [200, 409, 409]  # one at a time

    store, replies, later = await _race({"create_race": 0.2}, _twins(3))
    assert [status for status, _ in replies] == [200, 200, 200]
    assert len({body["result"]["id"] for _, body in replies}) == 1
    assert [body["result"]["title"] for _, body in replies] == ["body 0", "body 1", "body 2"]
    [twin] = [p for p in store.packages.values() if p["name"] == "twin"]
    [mark] = twin["extras"]  # one dataset, the body written last: the others are gone
    assert twin["title"] == "body " + mark["value"].removeprefix("src-")
    assert later == 409  # a create that did not overlap sees the name taken

    _, replies, later = await _race({"create_race": 0.2, "create_race_reply": "500"},
                                    _twins(2))
    assert sorted(status for status, _ in replies) == [200, 500] and later == 409


async def test_organization_members(site: Site) -> None:
    status, body = await site.call("organization_create", {"name": "org-m"}, key=ADMIN)
    assert status == 200
    assert [(u["name"], u["capacity"]) for u in body["result"]["users"]] == [("alice", "admin")]
    add = {"id": "org-m", "username": "bob", "role": "admin"}
    status, body = await site.call("organization_member_create", add)
    assert (status, body["error"]["message"]) == (
        403, "Access denied: User bob not authorized to add members")
    status, body = await site.call("organization_member_create",
                                   {**add, "username": "carol", "role": "boss"}, key=ADMIN)
    assert status == 409 and body["error"]["username"] == ["Not found: User"]
    assert body["error"]["role"] == ["role does not exist."]
    status, body = await site.call("organization_member_create", add, key=ADMIN)
    assert status == 200 and body["result"]["capacity"] == "admin"
    _, mine = await site.call("organization_list_for_user", get={"permission": "admin"})
    assert [org["name"] for org in mine["result"]] == ["org-m"]
    _, editable = await site.call("organization_list_for_user")
    assert [org["name"] for org in editable["result"]] == ["org-m"]  # memberships only, as CKAN
    status, body = await site.call("organization_member_create",
                                   {**add, "role": "member"})
    assert body["error"]["message"] == (
        "Access denied: Administrators cannot revoke their own admin status")
    _, shown = await site.call("organization_show", get={"id": "org-m"})
    assert {(u["name"], u["capacity"]) for u in shown["result"]["users"]} == {
        ("alice", "admin"), ("bob", "admin")}


async def test_too_large_uploads_409_from_ckan_413_from_its_proxy() -> None:
    store = CkanStore(seed=4)
    seed_ckan(store, datasets=1, resources=1, seed=4)
    pkg_id, blobs = next(iter(store.packages)), len(store.blobs)
    app = create_ckan_app(store, api_keys={EDITOR: "bob"}, max_resource_size=10_000,
                          proxy_max_body_size=30_000)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        site = Site(url, session, store)
        status, body = await site.call("resource_create", _form(
            package_id=pkg_id, upload=("big.csv", b"x" * 20_000)))
        assert (status, body["error"]) == (409, {"upload": ["File upload too large"],
                                                 "__type": "Validation Error"})
        async with session.post(url + "/api/3/action/resource_create", headers={
                "Authorization": EDITOR}, data=_form(package_id=pkg_id, upload=(
                    "bigger.csv", b"x" * 40_000))) as response:
            assert response.status == 413 and response.content_type == "text/html"
            assert "413 Request Entity Too Large" in await response.text()
    assert len(store.blobs) == blobs  # nothing kept from either
    store.close()
