"""One sequence of CKAN Action API calls, sent the same way to any CKAN-compatible server.

Each step is one HTTP request. ``$name.path`` in a step's data is replaced by a value saved
from an earlier step's result (``$pkg.resources.0.id``), so the scenario runs unchanged on
servers that hand out different ids. A :class:`Fact` is no request: it compares results of
earlier steps (did ``metadata_modified`` move?) so that a behaviour hidden by normalisation is
still compared.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bulkport.portals.ckan.tokens import token_id_of

CSV_1 = b"id,value\n1,alpha\n2,beta\n"
CSV_2 = b"id,value\n1,alpha\n2,beta\n3,gamma\n"


@dataclass
class Step:
    label: str
    action: str
    data: dict[str, Any] = field(default_factory=dict)
    role: str = "admin"  # admin (sysadmin), user (an editor made by the scenario), anon, bad
    get: bool = False  # GET with the data as the query string
    upload: bytes | None = None  # multipart, the file in ``upload``
    save: str | None = None  # keep the result under this name
    raw: bytes | None = None  # the exact body to POST (malformed JSON)


@dataclass
class Download:
    """GET a resource's ``url`` (a saved value), as ``role``."""

    label: str
    url: str
    role: str = "admin"


@dataclass
class Fact:
    label: str
    check: Callable[[dict[str, Any]], Any]


Item = Step | Download | Fact


def _moved(before: str, after: str) -> Callable[[dict[str, Any]], bool]:
    return lambda saved: saved[before]["metadata_modified"] != saved[after]["metadata_modified"]


def _fields(name: str, index: int, keys: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    return lambda saved: {k: saved[name]["resources"][index].get(k) for k in keys}


RESOURCE_FIELDS = ("name", "description", "format", "resource_type", "mimetype", "url_type")

SCENARIO: list[Item] = [
    # The site, routing and authentication
    Step("status", "status_show", role="anon"),
    Step("status by GET", "status_show", get=True, role="anon"),
    Step("licence ids", "license_list", role="anon", save="licences"),
    Fact("licences offered", lambda s: sorted(lic["id"] for lic in s["licences"])),
    Step("unknown action", "no_such_action"),
    Step("write action by GET", "package_create", {"name": "by-get"}, get=True),
    Step("malformed JSON body", "package_create", raw=b'{"name": "broken",'),
    Step("JSON body not an object", "package_show", raw=b'["a", "b"]'),
    Step("anonymous create", "package_create", {"name": "anon-set"}, role="anon"),
    Step("create with a wrong key", "package_create", {"name": "bad-key-set"}, role="bad"),
    Step("read with a wrong key", "package_search", {"rows": 0}, role="bad"),
    # Organizations
    Step("organization create", "organization_create", {"name": "org-a", "title": "Org A"}, save="org"),
    Step("organization create taken", "organization_create", {"name": "org-a"}),
    Step("organization create bad name", "organization_create", {"name": "Bad Name!"}),
    Step("organization create no name", "organization_create", {"title": "Nameless"}),
    Step("second organization", "organization_create", {"name": "org-b"}),
    Step("organization show", "organization_show", {"id": "org-a"}),
    Step("organization show by id", "organization_show", {"id": "$org.id"}),
    Step("organization show missing", "organization_show", {"id": "no-such-org"}),
    Step("organization list", "organization_list"),
    Step("organization list all fields", "organization_list", {"all_fields": True}),
    # Users and tokens
    Step("user create", "user_create", {"name": "contract-editor", "email": "editor@example.org",
                                        "password": "Editor-pass-123"}, save="editor"),
    Step("user create taken", "user_create", {"name": "contract-editor", "email": "e2@example.org",
                                              "password": "Editor-pass-123"}),
    Step("user create anonymously", "user_create", {"name": "sneaky", "email": "s@example.org",
                                                    "password": "Sneaky-pass-123"}, role="anon"),
    Step("user show", "user_show", {"id": "contract-editor"}),
    Step("user show missing", "user_show", {"id": "nobody-here"}),
    Step("user list", "user_list", save="users"),
    Fact("user names", lambda s: sorted({"admin", "contract-editor", "default"}
                                        & {u["name"] for u in s["users"]})),
    Step("member create", "organization_member_create",
         {"id": "org-a", "username": "contract-editor", "role": "editor"}),
    Step("member create bad role", "organization_member_create",
         {"id": "org-a", "username": "contract-editor", "role": "chief"}),
    Step("organizations of user", "organization_list_for_user", {"id": "contract-editor"}),
    Step("token create", "api_token_create", {"user": "contract-editor", "name": "contract"},
         save="token"),
    Step("token create missing user", "api_token_create", {"user": "nobody-here", "name": "x"}),
    Step("token create no name", "api_token_create", {"user": "contract-editor"}),
    Step("token list", "api_token_list", {"user_id": "contract-editor"}, save="tokens"),
    Fact("token listed by jti", lambda s: [t["id"] for t in s["tokens"]] == [s["token_jti"]]),
    Step("token list anonymously", "api_token_list", {"user_id": "contract-editor"}, role="anon"),
    Step("token list by the user", "api_token_list", {"user_id": "contract-editor"}, role="user"),
    # Whose a key is (user_show without an id) and what it may do: bulkport's key checks
    Step("user show of the caller", "user_show", {}),
    Step("user show of the caller by GET", "user_show", {}, get=True, role="user"),
    Step("user show of an anonymous caller", "user_show", {}, get=True, role="anon"),
    Step("user show with a wrong key", "user_show", {}, get=True, role="bad"),
    Step("organizations the editor may create in", "organization_list_for_user",
         {"permission": "create_dataset"}, get=True, role="user"),
    Step("organizations the editor may read", "organization_list_for_user",
         {"permission": "read"}, get=True, role="user"),
    Step("organizations a sysadmin may create in", "organization_list_for_user",
         {"permission": "create_dataset"}, get=True),
    Step("organizations of a wrong key", "organization_list_for_user", {"permission": "read"},
         get=True, role="bad"),
    # Datasets: create and read
    Step("dataset create", "package_create", {
        "name": "set-1", "title": "Set one", "owner_org": "org-a", "notes": "Water quality",
        "license_id": "cc-by", "tags": [{"name": "water"}, {"name": "rivers"}],
        "extras": [{"key": "source_id", "value": "abc"}],
        "resources": [{"url": "http://example.org/a.csv", "name": "A", "format": "CSV",
                       "description": "first"}]}, save="set1"),
    Step("dataset create taken", "package_create", {"name": "set-1", "owner_org": "org-a"}),
    Step("dataset create bad name", "package_create", {"name": "Set One!", "owner_org": "org-a"}),
    Step("dataset create no name", "package_create", {"title": "x", "owner_org": "org-a"}),
    Step("dataset create no organization", "package_create", {"name": "orphan"}),
    Step("dataset create unknown organization", "package_create",
         {"name": "lost", "owner_org": "no-such-org"}),
    Step("dataset create bad extras", "package_create",
         {"name": "bad-extras", "owner_org": "org-a", "extras": "not a list"}),
    Step("dataset create bad tag", "package_create",
         {"name": "bad-tag", "owner_org": "org-a", "tags": [{"name": "no/slash"}]}),
    Step("dataset create duplicate extra", "package_create", {
        "name": "dup-extra", "owner_org": "org-a",
        "extras": [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}]}),
    Step("private dataset by the user", "package_create",
         {"name": "set-2", "owner_org": "org-a", "private": True}, role="user", save="set2"),
    Step("dataset show", "package_show", {"id": "set-1"}),
    Step("dataset show by id", "package_show", {"id": "$set1.id"}, get=True),
    Step("dataset show missing", "package_show", {"id": "no-such-set"}),
    Step("dataset show no id", "package_show", {}),
    Step("private dataset anonymously", "package_show", {"id": "set-2"}, role="anon"),
    Step("private dataset by its editor", "package_show", {"id": "set-2"}, role="user"),
    # Datasets: patch, update, revise
    Step("dataset patch", "package_patch", {"id": "set-1", "title": "Set one, patched"}, save="patched"),
    Fact("patch moves metadata_modified", _moved("set1", "patched")),
    Step("dataset patch no id", "package_patch", {"title": "x"}),
    Step("dataset patch missing", "package_patch", {"id": "no-such-set", "title": "x"}),
    Step("dataset patch bad name", "package_patch", {"id": "set-1", "name": "BAD NAME"}),
    Step("dataset update without resources", "package_update", {
        "id": "set-1", "name": "set-1", "title": "Set one, updated", "owner_org": "org-a"},
        save="updated"),
    Fact("update without resources keeps them", lambda s: len(s["updated"]["resources"])),
    Fact("update without tags keeps them", lambda s: len(s["updated"]["tags"])),
    Step("dataset revise", "package_revise",
         {"match": {"name": "set-1"}, "update": {"notes": "Revised"}}, save="revised"),
    Fact("revise returns the package", lambda s: sorted(s["revised"])),
    Step("dataset revise no match", "package_revise",
         {"match": {"name": "no-such-set"}, "update": {"notes": "x"}}),
    Step("dataset revise bad update", "package_revise", {"match": {"name": "set-1"}, "update": "x"}),
    Step("dataset revise extend resources", "package_revise", {
        "match": {"name": "set-1"},
        "update__resources__extend": [{"url": "http://example.org/b.csv", "name": "B"}]}),
    Step("dataset revise filter", "package_revise", {
        "match": {"name": "set-1"}, "filter": ["-notes"], "update": {"title": "Set one"}},
        save="filtered"),
    Fact("revise filter removes the field", lambda s: s["filtered"]["package"].get("notes")),
    # Resources
    Step("show before resource writes", "package_show", {"id": "set-1"}, save="before_res"),
    Step("resource create link", "resource_create",
         {"package_id": "set-1", "url": "http://example.org/c.csv", "name": "C",
          "description": "kept?", "format": "CSV"}, save="res_link"),
    Step("show after resource create", "package_show", {"id": "set-1"}, save="after_create"),
    Fact("resource create moves metadata_modified", _moved("before_res", "after_create")),
    Step("resource create upload", "resource_create",
         {"package_id": "set-1", "name": "Uploaded", "description": "hand-written"},
         upload=CSV_1, save="res_up"),
    Download("download the upload", "$res_up.url"),
    Download("download the upload anonymously", "$res_up.url", role="anon"),
    Step("resource show", "resource_show", {"id": "$res_link.id"}),
    Step("resource show missing", "resource_show", {"id": "no-such-resource"}),
    Step("resource patch", "resource_patch", {"id": "$res_link.id", "description": "patched"}),
    Step("resource update with url only", "resource_update",
         {"id": "$res_link.id", "url": "http://example.org/c2.csv"}, save="res_updated"),
    Fact("resource update keeps unsent fields",
         lambda s: {k: s["res_updated"].get(k) for k in RESOURCE_FIELDS}),
    Step("show before re-upload", "package_show", {"id": "set-1"}, save="before_upload"),
    Step("resource update with a new file", "resource_update", {"id": "$res_up.id"},
         upload=CSV_2, save="res_reup"),
    Fact("re-upload keeps unsent fields", lambda s: {k: s["res_reup"].get(k) for k in RESOURCE_FIELDS}),
    Download("download the new upload", "$res_reup.url"),
    Step("show after re-upload", "package_show", {"id": "set-1"}, save="after_upload"),
    Fact("re-upload moves metadata_modified", _moved("before_upload", "after_upload")),
    Step("resource patch with a new file", "resource_patch",
         {"id": "$res_up.id", "description": "patched upload"}, upload=CSV_1, save="res_patch_up"),
    Fact("patch upload keeps unsent fields",
         lambda s: {k: s["res_patch_up"].get(k) for k in RESOURCE_FIELDS}),
    Step("resource delete", "resource_delete", {"id": "$res_link.id"}),
    Step("show after resource delete", "package_show", {"id": "set-1"}, save="after_delete"),
    Fact("resource delete moves metadata_modified", _moved("after_upload", "after_delete")),
    Fact("resources left", lambda s: [r["name"] for r in s["after_delete"]["resources"]]),
    Step("resource show deleted", "resource_show", {"id": "$res_link.id"}),
    Step("resource delete again", "resource_delete", {"id": "$res_link.id"}),
    Step("resource create on a missing dataset", "resource_create",
         {"package_id": "no-such-set", "url": "http://example.org/x"}),
    Step("resource create anonymously", "resource_create",
         {"package_id": "set-1", "url": "http://example.org/x"}, role="anon"),
    Step("resource create no package", "resource_create", {"url": "http://example.org/x"}),
    Step("dataset patch with resources", "package_patch", {
        "id": "set-1", "resources": [{"url": "http://example.org/only.csv", "name": "Only"}]},
        save="res_replaced"),
    Fact("patch with resources replaces them",
         lambda s: [r["name"] for r in s["res_replaced"]["resources"]]),
    Step("dataset update keeps resource ids", "package_update", {
        "id": "set-1", "name": "set-1", "owner_org": "org-a",
        "resources": [{"id": "$res_replaced.resources.0.id", "url": "http://example.org/only.csv"}]},
        save="res_kept"),
    Fact("update with a resource id keeps it",
         lambda s: s["res_kept"]["resources"][0]["id"] == s["res_replaced"]["resources"][0]["id"]),
    Fact("update with a resource id clears its name", lambda s: s["res_kept"]["resources"][0]["name"]),
    # Search
    Step("search", "package_search", role="anon", save="search_anon"),
    Fact("search result keys", lambda s: sorted(s["search_anon"])),
    Step("search count only", "package_search", {"rows": 0}),
    Step("search private included", "package_search", {"include_private": True, "fl": "name",
                                                       "sort": "name asc"}),
    Step("search private anonymously", "package_search", {"include_private": True, "fl": "name"},
         role="anon"),
    Step("search private by its editor", "package_search", {"include_private": True, "fl": "name"},
         role="user"),
    Step("search by ids", "package_search", {"fq": 'id:("$set1.id" OR "$set2.id")', "fl": "name",
                                             "include_private": True, "sort": "name asc"}),
    Step("search fields", "package_search", {"fl": "id,metadata_modified,name", "sort": "id asc"},
         get=True),
    Step("search fields space separated", "package_search", {"fl": "id name", "sort": "id asc"},
         get=True),
    Step("search one field", "package_search", {"fl": "name"}, get=True),
    Step("search page", "package_search", {"sort": "name asc", "rows": 1, "start": 0, "fl": "name",
                                           "include_private": True}),
    Step("search words", "package_search", {"q": "water", "fl": "name"}),
    Step("search by date", "package_search", {"fq": "metadata_modified:[NOW-1DAY TO *]", "rows": 0}),
    Step("search bad sort", "package_search", {"sort": "name sideways"}),
    Step("search bad date", "package_search", {"fq": "metadata_modified:[yesterday TO *]"}),
    Step("search too many rows", "package_search", {"rows": 5000, "fl": "name"}),
    Step("search negative rows", "package_search", {"rows": -1}),
    Step("search rows not a number", "package_search", {"rows": "many"}, get=True),
    Step("search unknown parameter", "package_search", {"flavour": "mint"}),
    Step("search by POST", "package_search", {"q": "*:*", "rows": 1, "fl": "name"}),
    Step("dataset list", "package_list", role="anon"),
    # Delete and purge
    Step("dataset to delete", "package_create", {"name": "set-3", "owner_org": "org-a"}, save="set3"),
    Step("dataset delete", "package_delete", {"id": "set-3"}),
    Step("deleted dataset by a sysadmin", "package_show", {"id": "set-3"}),
    Step("deleted dataset anonymously", "package_show", {"id": "set-3"}, role="anon"),
    Step("search includes deleted", "package_search", {"include_deleted": True, "fl": "name",
                                                       "fq": "name:set-3"}),
    Step("create over a deleted name", "package_create", {"name": "set-3", "owner_org": "org-a"}),
    Step("dataset delete missing", "package_delete", {"id": "no-such-set"}),
    Step("dataset purge", "dataset_purge", {"id": "$set3.id"}),
    Step("purged dataset", "package_show", {"id": "$set3.id"}),
    # The editor's key and its revocation
    Step("editor creates in its organization", "package_create",
         {"name": "set-4", "owner_org": "org-a"}, role="user"),
    Step("editor deletes", "package_delete", {"id": "set-4"}, role="user"),
    Step("editor purges", "dataset_purge", {"id": "set-4"}, role="user"),
    Step("user creates in a foreign organization", "package_create",
         {"name": "set-foreign", "owner_org": "org-b"}, role="user"),
    Step("token revoke", "api_token_revoke", {"jti": "$token_jti"}),
    Step("revoked key reads private", "package_show", {"id": "set-2"}, role="user"),
    Step("revoked key writes", "package_create", {"name": "set-5", "owner_org": "org-a"}, role="user"),
    Step("user show with a revoked key", "user_show", {}, get=True, role="user"),
    Step("token revoke again", "api_token_revoke", {"jti": "$token_jti"}),
    Step("token revoke no jti", "api_token_revoke", {}),
    Step("token list after revoke", "api_token_list", {"user_id": "contract-editor"}),
]

_PLACEHOLDER = re.compile(r"\$([a-z_0-9]+(?:\.[A-Za-z_0-9]+)*)")


def resolve(value: Any, saved: dict[str, Any]) -> Any:
    """``value`` with every ``$name.path`` replaced by the saved value it names."""
    if isinstance(value, dict):
        return {k: resolve(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, saved) for v in value]
    if not isinstance(value, str):
        return value

    def lookup(path: str) -> Any:
        node: Any = saved
        try:
            for part in path.split("."):
                node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError):
            return f"missing-{path}"  # the step that saves it failed here: send on regardless
        return node

    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return lookup(whole[1])
    return _PLACEHOLDER.sub(lambda m: str(lookup(m[1])), value)


@dataclass
class Server:
    """Where to send the scenario: the site root and the sysadmin's key."""

    name: str
    url: str
    admin_key: str


async def run(server: Server, session: aiohttp.ClientSession) -> dict[str, Any]:
    """Send the whole scenario; return each item's observation by label."""
    keys: dict[str, str | None] = {"admin": server.admin_key, "anon": None, "bad": "not-a-valid-key"}
    saved: dict[str, Any] = {}
    observed: dict[str, Any] = {}
    for item in SCENARIO:
        if isinstance(item, Fact):
            try:
                observed[item.label] = {"fact": item.check(saved)}
            except (KeyError, IndexError, TypeError) as error:  # a step it needs failed
                observed[item.label] = {"fact unknown": f"{type(error).__name__}: {error}"}
            continue
        headers = {"Authorization": key} if (key := keys.get(item.role)) else {}
        if isinstance(item, Download):
            async with session.get(resolve(item.url, saved), headers=headers,
                                   allow_redirects=True) as reply:
                content = await reply.read()
                observed[item.label] = {"status": reply.status,
                                        "sha256": hashlib.sha256(content).hexdigest()[:16]
                                        if reply.status == 200 else None}
            continue
        url = f"{server.url}/api/3/action/{item.action}"
        data = resolve(item.data, saved)
        if item.get:
            params = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}
            request = session.get(url, params=params, headers=headers)
        elif item.upload is not None:
            form = aiohttp.FormData()
            for key, value in data.items():
                form.add_field(key, str(value))
            form.add_field("upload", item.upload, filename="data.csv", content_type="text/csv")
            request = session.post(url, data=form, headers=headers)
        elif item.raw is not None:
            request = session.post(url, data=item.raw,
                                   headers={**headers, "Content-Type": "application/json"})
        else:
            request = session.post(url, json=data, headers=headers)
        async with request as reply:
            text = await reply.text()
            try:
                body: Any = await reply.json(content_type=None)
            except ValueError:
                body = {"not JSON": text[:80]}
        observed[item.label] = {"status": reply.status, "body": body}
        if item.save and isinstance(body, dict) and body.get("success"):
            saved[item.save] = body["result"]
            if item.save == "token":
                keys["user"] = body["result"]["token"]
                saved["token_jti"] = token_id_of(body["result"]["token"])
    return observed
