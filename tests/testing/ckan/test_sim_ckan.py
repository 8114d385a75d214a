"""The CKAN simulator through real HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
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

    async def call(self, action: str, *, get: dict[str, Any] | None = None,
                   post: Any = None, key: str | None = None) -> tuple[int, Any]:
        return await call_action(self.session, self.url, action, get=get, post=post, key=key)


async def _site(**options: Any) -> AsyncIterator[Site]:
    store = CkanStore(seed=1)
    seed_ckan(store, datasets=40, resources=2, file_size=1000, seed=1)
    app = create_ckan_app(store, api_keys={ADMIN: "alice", EDITOR: "bob"}, sysadmins={"alice"},
                          **options)
    async with serve(app) as url, aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Site(url, session, store)
    store.close()


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    async for value in _site(rows_max=7, max_resource_size=50_000):
        yield value


def _public(store: CkanStore) -> list[dict[str, Any]]:
    return [p for p in store.packages.values() if p["state"] == "active" and not p["private"]]


async def test_search_pages_with_id_sort_and_clamps_rows(site: Site) -> None:
    status, first = await site.call("package_search")
    assert status == 200 and first["success"] is True
    assert len(first["result"]["results"]) == 7  # rows defaults to 10, clamped to rows_max 7
    ids: list[str] = []
    start = 0
    while True:
        _, page = await site.call("package_search", get={"sort": "id asc", "rows": 1000,
                                                          "start": start})
        batch = [pkg["id"] for pkg in page["result"]["results"]]
        assert len(batch) <= 7
        if not batch:
            break
        ids.extend(batch)
        start += len(batch)
    public = _public(site.store)
    assert page["result"]["count"] == len(public) == len(ids)
    assert ids == sorted(ids) == sorted(p["id"] for p in public)
    _, again = await site.call("package_search", get={"sort": "id asc", "rows": 5})
    assert [p["id"] for p in again["result"]["results"]] == ids[:5]


async def test_search_results_are_full_package_dicts(site: Site) -> None:
    _, body = await site.call("package_search", post={"q": "*:*", "rows": 3})
    result = body["result"]
    assert set(result) >= {"count", "results", "sort", "facets", "search_facets"}
    assert result["sort"] == "score desc, metadata_modified desc"
    modified = [p["metadata_modified"] for p in result["results"]]
    assert modified == sorted(modified, reverse=True)
    pkg = result["results"][0]
    assert pkg["num_resources"] == len(pkg["resources"]) and pkg["num_tags"] == len(pkg["tags"])
    assert pkg["organization"]["name"] and pkg["state"] == "active"
    assert all({"key", "value"} == set(e) for e in pkg["extras"])
    assert all({"name", "display_name", "id"} <= set(t) for t in pkg["tags"])
    assert pkg["license_title"] and "metadata_created" in pkg


async def test_fq_filters(site: Site) -> None:
    public = _public(site.store)
    org = next(iter(site.store.organizations.values()))

    async def count(**params: Any) -> int:
        status, body = await site.call("package_search", get={**params, "rows": 0})
        assert status == 200, body
        return int(body["result"]["count"])

    assert await count(fq=f"organization:{org['name']}") == sum(
        p["owner_org"] == org["id"] for p in public)
    assert await count(fq="res_format:PDF") == sum(
        any(r["format"] == "PDF" for r in p["resources"]) for p in public)
    tag = "données ouvertes"
    assert await count(fq=f'tags:"{tag}"') == sum(
        any(t["name"] == tag for t in p["tags"]) for p in public)
    cut = sorted(p["metadata_modified"] for p in public)[len(public) // 2]
    newer = sum(p["metadata_modified"] >= cut for p in public)
    assert await count(fq=f"metadata_modified:[{cut}Z TO *]") == newer
    both = f"metadata_modified:[{cut}Z TO *] AND organization:{org['name']}"
    assert await count(fq=both) == sum(p["metadata_modified"] >= cut
                                       and p["owner_org"] == org["id"] for p in public)
    title = public[0]["title"]
    assert await count(q=f'title:"{title}"') >= 1
    status, body = await site.call("package_search", get={"fq": 'title:"unclosed'})
    assert status == 409 and body["error"]["__type"] == "Search Error"
    status, body = await site.call("package_search", get={"nonsense": "1"})
    assert status == 400 and body["error"]["__type"] == "Search Query Error"
    status, body = await site.call("package_search", get={"rows": "many"})
    assert status == 409 and body["error"] == {"rows": ["Invalid integer"],
                                               "__type": "Validation Error"}


async def test_fl_returns_only_those_fields_with_dates_as_solr_stores_them(site: Site) -> None:
    status, body = await site.call("package_search", get={
        "fl": "id,metadata_modified", "sort": "id asc", "rows": 5})
    assert status == 200, body
    rows = body["result"]["results"]
    assert len(rows) == 5 and all(set(row) == {"id", "metadata_modified"} for row in rows)
    for row in rows:
        stored = datetime.fromisoformat(site.store.packages[row["id"]]["metadata_modified"])
        shown = row["metadata_modified"]
        assert shown.endswith("Z") and len(shown) in (20, 24)  # no fraction, or 3 digits
        assert datetime.fromisoformat(shown[:-1]) == stored.replace(
            microsecond=stored.microsecond // 1000 * 1000)  # milliseconds kept, no more


async def test_private_datasets_need_a_key_and_include_private(site: Site) -> None:
    private = [p for p in site.store.packages.values() if p["private"]]
    assert private
    params = {"include_private": "true", "fq": "private:true", "rows": 0}
    _, anonymous = await site.call("package_search", get=params)
    _, wrong = await site.call("package_search", get=params, key="not-a-token")
    _, keyed = await site.call("package_search", get=params, key=EDITOR)
    assert anonymous["result"]["count"] == wrong["result"]["count"] == 0
    assert keyed["result"]["count"] == len(private)
    status, body = await site.call("package_show", get={"id": private[0]["name"]})
    assert status == 403 and body["error"]["__type"] == "Authorization Error"
    status, _ = await site.call("package_show", get={"id": private[0]["name"]}, key=EDITOR)
    assert status == 200


async def test_write_actions_refuse_get_and_anonymous_callers(site: Site) -> None:
    async with site.session.get(site.url + "/api/3/action/package_create") as response:
        assert response.status == 400
        assert await response.json() == ("Bad request - JSON Error: Invalid request. Please "
                                          "use POST method for your request")
    status, body = await site.call("nope")
    assert status == 400 and body == "Bad request - Action name not known: nope"
    for key in (None, "not-a-token"):  # an unknown token is an anonymous caller
        status, body = await site.call("package_create", post={"name": "abc"}, key=key)
        assert status == 403 and body["success"] is False
        assert body["error"]["__type"] == "Authorization Error"
    status, body = await site.call("package_show", get={"id": "missing"})
    assert (status, body["error"]) == (404, {"__type": "Not Found Error",
                                             "message": "Not found"})


async def test_validation_errors(site: Site) -> None:
    status, body = await site.call("package_create", post={"title": "x"}, key=EDITOR)
    assert status == 409 and body["error"]["__type"] == "Validation Error"
    assert body["error"]["name"] == ["Missing value"]
    assert body["error"]["owner_org"] == ["An organization must be provided"]
    taken = next(iter(site.store.packages.values()))["name"]
    org = next(iter(site.store.org_names))
    status, body = await site.call("package_create", post={"name": taken, "owner_org": org},
                                   key=EDITOR)
    assert status == 409 and body["error"]["name"] == ["That URL is already in use."]
    status, body = await site.call("package_create", key=EDITOR, post={
        "name": "Bad Name", "owner_org": "nowhere", "tags": [{"name": "a"}]})
    assert body["error"]["name"][0].startswith("Must be purely lowercase")
    assert body["error"]["owner_org"] == ["Organization does not exist"]
    assert body["error"]["tags"] == [{"name": ['Tag "a" length is less than minimum 2']}]


async def test_create_update_patch_delete(site: Site) -> None:
    org = next(iter(site.store.org_names))
    status, body = await site.call("package_create", key=EDITOR, post={
        "name": "new-one", "title": "Névé ❄", "owner_org": org, "tags": [{"name": "eau"}],
        "extras": [{"key": "language", "value": "fr"}],
        "resources": [{"name": "link", "url": "https://example.org/a.csv"}]})
    assert status == 200, body
    pkg = body["result"]
    assert pkg["resources"][0]["format"] == "CSV" and pkg["organization"]["name"] == org
    status, same = await site.call("package_update", key=EDITOR, post=pkg)
    assert same["result"]["metadata_modified"] == pkg["metadata_modified"]  # nothing changed
    _, patched = await site.call("package_patch", key=EDITOR,
                                 post={"id": pkg["id"], "notes": "patched"})
    assert patched["result"]["notes"] == "patched" and patched["result"]["title"] == "Névé ❄"
    assert patched["result"]["metadata_modified"] > pkg["metadata_modified"]
    assert patched["result"]["resources"][0]["id"] == pkg["resources"][0]["id"]
    status, body = await site.call("package_delete", key=EDITOR, post={"id": "new-one"})
    assert (status, body["result"]) == (200, None)
    _, search = await site.call("package_search", get={"fq": "name:new-one"}, key=EDITOR)
    assert search["result"]["count"] == 0
    _, shown = await site.call("package_show", get={"id": "new-one"}, key=EDITOR)
    assert shown["result"]["state"] == "deleted"
    status, _ = await site.call("package_show", get={"id": "new-one"})
    assert status == 403
    writes = site.store.stats
    assert (writes["ckan:package_create"], writes["ckan:package_update"],
            writes["ckan:package_patch"], writes["ckan:package_delete"]) == (1, 1, 1, 1)


async def test_upload_then_download_gives_the_same_bytes(site: Site) -> None:
    pkg = next(iter(site.store.packages.values()))
    file = SyntheticFile(40_000, seed=12)
    form = aiohttp.FormData()
    form.add_field("package_id", pkg["id"])
    form.add_field("name", "Données 2024")
    form.add_field("upload", file.read(), filename="Données 2024.csv",
                   content_type="text/csv")
    status, body = await site.call("resource_create", post=form, key=EDITOR)
    assert status == 200, body
    res = body["result"]
    assert res["url_type"] == "upload" and res["size"] == 40_000 and res["format"] == "CSV"
    assert res["url"].startswith(f"{site.url}/dataset/{pkg['id']}/resource/{res['id']}/download/")
    async with site.session.get(res["url"]) as response:
        assert response.status == 200
        assert hashlib.sha256(await response.read()).hexdigest() == file.sha256()
    assert site.store.blobs.get(res["id"]).sha256 == file.sha256()  # type: ignore[union-attr]
    _, shown = await site.call("package_show", get={"id": pkg["id"]}, key=EDITOR)
    _, updated = await site.call("package_update", post=shown["result"], key=EDITOR)
    assert updated["result"] == shown["result"]  # the absolute URL round-trips: no change
    too_big = aiohttp.FormData()
    too_big.add_field("package_id", pkg["id"])
    too_big.add_field("upload", b"x" * 60_000, filename="big.bin")
    status, body = await site.call("resource_create", post=too_big, key=EDITOR)
    assert status == 409 and body["error"]["upload"] == ["File upload too large"]


async def test_downloads_respect_privacy_and_links_redirect(site: Site) -> None:
    private = next(p for p in site.store.packages.values()
                   if p["private"] and p["resources"][0]["url_type"] == "upload")
    res = private["resources"][0]
    url = f"{site.url}/dataset/{private['name']}/resource/{res['id']}/download/f.csv"
    async with site.session.get(url) as response:  # as CKAN 2.12: refused, not hidden
        assert response.status == 403
    async with site.session.get(url.replace(res["id"], "0" * 8 + res["id"][8:])) as response:
        assert response.status == 404
    async with site.session.get(url, headers={"Authorization": EDITOR}) as response:
        assert response.status == 200 and len(await response.read()) == res["size"]
    link = next(r for p in site.store.packages.values() for r in p["resources"]
                if r["url_type"] == "" and not p["private"])
    path = f"/dataset/{link['package_id']}/resource/{link['id']}/download"
    async with site.session.get(site.url + path, allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == link["url"]


async def test_organizations_need_a_sysadmin(site: Site) -> None:
    status, body = await site.call("organization_create", post={"name": "org-x"}, key=EDITOR)
    assert status == 403
    status, body = await site.call("organization_create", post={"name": "org-x"}, key=ADMIN)
    assert status == 200 and body["result"]["name"] == "org-x"
    status, body = await site.call("organization_create", post={"name": "org-x"}, key=ADMIN)
    assert status == 409 and body["error"]["name"] == ["Group name already exists in database"]
    _, names = await site.call("organization_list")
    # CKAN sorts by title: org-x has none, so it comes first.
    assert names["result"][0] == "org-x" and sorted(names["result"][1:]) == names["result"][1:]
    _, licences = await site.call("license_list")
    assert {"cc-by", "odc-odbl", "other-closed"} <= {lic["id"] for lic in licences["result"]}


async def test_post_only_search_and_a_renamed_key_header() -> None:
    async for site in _site(search_requires_post=True, header_name="X-CKAN-API-Key"):
        async with site.session.get(site.url + "/api/3/action/package_search") as response:
            assert response.status == 405
        status, body = await site.call("package_search", post={"rows": 1})
        assert status == 200 and body["result"]["count"] > 0
        org = next(iter(site.store.org_names))
        data = {"name": "via-header", "owner_org": org}
        status, _ = await site.call("package_create", post=data, key=EDITOR)
        assert status == 403  # the token is not read from Authorization any more
        async with site.session.post(site.url + "/api/3/action/package_create", json=data,
                                     headers={"X-CKAN-API-Key": EDITOR}) as response:
            assert response.status == 200


async def test_drafts_show_only_when_asked_with_a_key(site: Site) -> None:
    org = next(iter(site.store.org_names))
    status, _ = await site.call("package_create", key=EDITOR,
                                post={"name": "a-draft", "owner_org": org, "state": "draft"})
    assert status == 200
    params = {"fq": "name:a-draft", "include_drafts": "true"}
    _, anonymous = await site.call("package_search", get=params)
    _, keyed = await site.call("package_search", get=params, key=EDITOR)
    _, not_asked = await site.call("package_search", get={"fq": "name:a-draft"}, key=EDITOR)
    counts = [body["result"]["count"] for body in (anonymous, keyed, not_asked)]
    assert counts == [0, 1, 0]
