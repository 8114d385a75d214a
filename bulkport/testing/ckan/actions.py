"""The Action API functions the CKAN simulator serves, with CKAN's rules and messages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from bulkport.testing.ckan.errors import (
    ActionError,
    NotAuthorized,
    NotFound,
    SearchQueryError,
    ValidationError,
)
from bulkport.testing.ckan.model import (
    as_bool,
    as_int,
    license_list,
    now_iso,
    package_out,
    resource_out,
    with_file,
)
from bulkport.testing.ckan.search import compile_filter, facet_counts, parse_query, parse_sort, solr_value
from bulkport.testing.ckan.tokens import TOKEN_ACTIONS
from bulkport.testing.ckan.validate import build_organization, build_package

if TYPE_CHECKING:
    from bulkport.testing.ckan.app import CkanConfig
    from bulkport.testing.ckan.store import CkanStore

DEFAULT_SORT = "score desc, metadata_modified desc"
SEARCH_PARAMS = frozenset({
    "q", "fl", "fq", "rows", "sort", "start", "wt", "qf", "bf", "boost", "facet",
    "facet.mincount", "facet.limit", "facet.field", "extras", "fq_list", "tie", "defType",
    "mm", "df", "include_private", "include_drafts", "include_deleted", "use_default_schema",
})


@dataclass
class Upload:
    """A file posted in the ``upload`` field, already streamed into the blob store."""

    key: str
    filename: str
    size: int
    mimetype: str | None


@dataclass
class Context:
    store: CkanStore
    config: CkanConfig
    user: str | None
    sysadmin: bool
    base: str
    upload: Upload | None = None


@dataclass
class RawResult:
    """A result already serialized (``package_search`` pages are built from cached JSON)."""

    body: bytes


Action = Callable[[Context, dict[str, Any]], Any]  # a coroutine it returns is awaited


def can_read(user: str | None, pkg: dict[str, Any]) -> bool:
    """Anonymous users see active public datasets; every key holder is an editor."""
    return user is not None or (pkg["state"] == "active" and not pkg["private"])


def require_user(ctx: Context, action: str) -> None:
    """Refuse an anonymous caller, as CKAN's auth functions do."""
    if ctx.user is None:
        raise NotAuthorized(f"Action {action} requires an authenticated user")


def get_or_bust(data: dict[str, Any], key: str) -> Any:
    """``data[key]``; missing or empty, a validation error (CKAN's ``get_or_bust``)."""
    value = data.get(key)
    if value in (None, ""):
        raise ValidationError({key: ["Missing value"]})
    return value


def _int_param(data: dict[str, Any], key: str, default: int | None) -> int | None:
    try:
        value = as_int(data.get(key))
    except ValueError:
        raise ValidationError({key: ["Invalid integer"]}) from None
    if value is None:
        return default
    if value < 0:
        raise ValidationError({key: ["Must be a natural number"]})
    return value


def readable_package(ctx: Context, ident: Any) -> dict[str, Any]:
    """The package of id or name ``ident``, if the caller may read it."""
    pkg = ctx.store.get_package(str(ident))
    if pkg is None:
        raise NotFound()
    if not can_read(ctx.user, pkg):
        raise NotAuthorized(f"User {ctx.user or ''} not authorized to read package {pkg['id']}")
    return pkg


def as_input(pkg: dict[str, Any]) -> dict[str, Any]:
    """A stored package as input for an update (its timestamps are not re-imposed)."""
    return {k: v for k, v in pkg.items() if k not in ("metadata_modified", "metadata_created")}


def _build(ctx: Context, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
    return build_package(data, ctx.store, existing=existing, sysadmin=ctx.sysadmin,
                         create_unowned=ctx.config.create_unowned_dataset,
                         creator_id=ctx.store.user_id(ctx.user) if ctx.user else None)


def write_package(ctx: Context, data: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``data`` as a create (``existing`` None) or an update of ``existing``, store it."""
    pkg = _build(ctx, data, existing)
    holder = ctx.store.names.get(pkg["name"])
    if holder not in (None, pkg["id"]):  # validation let it through: a deleted dataset's name
        if existing is not None:
            # CKAN renames the row in place and hits the unique index: an IntegrityError, 500.
            raise ActionError()
        ctx.store.free_name(holder)  # a create renames the deleted dataset to its id
    if pkg != existing:
        pkg["indexed_ts"] = now_iso()  # every write reindexes: Solr stamps the document
        ctx.store.save_package(pkg)
    return pkg


def status_show(ctx: Context, data: dict[str, Any]) -> Any:
    return {"site_title": ctx.config.site_title, "site_description": "", "site_url": ctx.base,
            "ckan_version": "2.12.0", "error_emails_to": "", "locale_default": "en",
            "extensions": ["activity"]}


def license_list_action(ctx: Context, data: dict[str, Any]) -> Any:
    return license_list()


def package_show(ctx: Context, data: dict[str, Any]) -> Any:
    ident = data.get("id") or get_or_bust(data, "name_or_id")
    return package_out(readable_package(ctx, ident), ctx.store.organizations, ctx.base)


def package_list(ctx: Context, data: dict[str, Any]) -> Any:
    limit = _int_param(data, "limit", None)
    offset = _int_param(data, "offset", 0) or 0
    names = sorted(p["name"] for p in ctx.store.packages.values()
                   if p["state"] == "active" and not p["private"])
    return names[offset:offset + limit] if limit else names[offset:]


def package_search(ctx: Context, data: dict[str, Any]) -> Any:
    unknown = sorted(k for k in data if k not in SEARCH_PARAMS and not k.startswith("ext_"))
    if unknown:
        raise SearchQueryError(f"Invalid search parameters: {unknown}")
    rows = min(_int_param(data, "rows", 10) or 0, ctx.config.rows_max)
    start = _int_param(data, "start", 0) or 0
    sort = data.get("sort") or DEFAULT_SORT
    if sort == "rank":
        sort = DEFAULT_SORT
    keys = parse_sort(str(sort))
    store = ctx.store
    queries = [str(data.get("q") or "*:*"), str(data.get("fq") or "")]
    fq_list = data.get("fq_list") or []
    queries.extend(str(fq) for fq in (fq_list if isinstance(fq_list, list) else [fq_list]))
    tests = [compile_filter(parse_query(q), store.org_name) for q in queries]
    private = ctx.user is not None and as_bool(data.get("include_private", False))
    states = {"active", "draft"} if ctx.user and as_bool(data.get("include_drafts")) else {
        "active"}
    # Deleted datasets are dropped from the index (ckan.search.remove_deleted_packages).
    matches = [p for p in store.sorted_packages(str(sort), keys)
               if p["state"] in states and (private or not p["private"])
               and all(test(p) for test in tests)]
    page = matches[start:start + rows]
    facets = _facets(ctx, data, matches)
    fields = data.get("fl")
    if fields:
        names = fields.replace(",", " ").split() if isinstance(fields, str) else list(fields)
        # indexed_ts is Solr's, not the package's: stored in the index, never in package_show.
        results = orjson.dumps([
            {name: solr_value(name, p.get(name) if name == "indexed_ts" else out.get(name))
             for name in names}
            for p, out in ((p, package_out(p, store.organizations, ctx.base)) for p in page)])
    else:
        results = b"[" + b",".join(store.package_json(p, ctx.base) for p in page) + b"]"
    return RawResult(
        b'{"count":' + str(len(matches)).encode() + b',"facets":' + orjson.dumps(facets)
        + b',"results":' + results + b',"sort":' + orjson.dumps(sort)
        + b',"search_facets":' + orjson.dumps(_search_facets(ctx, facets)) + b"}")


def _facets(ctx: Context, data: dict[str, Any],
            matches: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    fields = data.get("facet.field")
    if isinstance(fields, str):
        try:
            fields = orjson.loads(fields)
        except orjson.JSONDecodeError:
            fields = [fields]
    if not fields or not as_bool(data.get("facet", "true")):
        return {}
    limit = _int_param(data, "facet.limit", 50)
    mincount = _int_param(data, "facet.mincount", 1)
    return facet_counts(matches, [str(f) for f in fields], 50 if limit is None else limit,
                        1 if mincount is None else mincount, ctx.store.org_name)


def _search_facets(ctx: Context, facets: dict[str, dict[str, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, counts in facets.items():
        items: list[dict[str, Any]] = []
        for name, count in counts.items():
            display = name
            if field == "organization":
                org = ctx.store.get_org(name)
                display = (org or {}).get("title") or name
            items.append({"name": name, "display_name": display, "count": count})
        items.sort(key=lambda item: item["display_name"], reverse=True)
        out[field] = {"title": field, "items": items}
    return out


def package_create(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "package_create")
    if ctx.config.create_race > 0:
        return _racing_create(ctx, data)
    pkg = write_package(ctx, data, None)
    return package_out(pkg, ctx.store.organizations, ctx.base)


async def _racing_create(ctx: Context, data: dict[str, Any]) -> Any:
    """``package_create`` as CKAN runs it under concurrency: validated first, written
    ``create_race`` seconds later. Creates of one name that overlap all pass validation;
    the first writes the dataset, and each later one finds that row by its unique name and
    overwrites it (CKAN's ``table_dict_save``: a 200 with the same id and the later body),
    or, with ``create_race_reply = "500"``, hits the unique index (IntegrityError).
    """
    _build(ctx, data, None)  # a name already taken is a clean 409, as without the race
    await asyncio.sleep(ctx.config.create_race)
    holder = ctx.store.name_owner(str(data.get("name")))
    if holder is None:
        pkg = write_package(ctx, data, None)
    elif ctx.config.create_race_reply == "500":
        raise ActionError()
    else:
        existing = ctx.store.packages[holder]
        pkg = write_package(ctx, {**data, "id": holder}, existing)
    return package_out(pkg, ctx.store.organizations, ctx.base)


def package_update(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "package_update")
    ident = data.get("id") or data.get("name")
    if ident is None:
        raise ValidationError({"id": ["Missing value"]})
    existing = ctx.store.get_package(str(ident))
    if existing is None:
        raise NotFound("Package was not found.")
    pkg = write_package(ctx, data, existing)
    return package_out(pkg, ctx.store.organizations, ctx.base)


def package_patch(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "package_patch")
    existing = readable_package(ctx, get_or_bust(data, "id"))
    pkg = write_package(ctx, {**as_input(existing), **data, "id": existing["id"]}, existing)
    return package_out(pkg, ctx.store.organizations, ctx.base)


def package_delete(ctx: Context, data: dict[str, Any]) -> Any:
    existing = ctx.store.get_package(str(get_or_bust(data, "id")))
    if existing is None:
        raise NotFound()  # CKAN looks the dataset up before it checks access
    require_user(ctx, "package_delete")
    if existing["state"] != "deleted":
        write_package(ctx, {**as_input(existing), "state": "deleted"}, existing)
    return None


def resource_owner(ctx: Context, res_id: str) -> tuple[dict[str, Any], int]:
    """The readable package that holds resource ``res_id``, and the resource's index in it."""
    pkg = ctx.store.packages.get(ctx.store.resources.get(res_id, ""))
    if pkg is None:
        raise NotFound("Resource was not found.")
    if not can_read(ctx.user, pkg):
        raise NotAuthorized(f"User {ctx.user or ''} not authorized to read resource {res_id}")
    index = next(i for i, res in enumerate(pkg["resources"]) if res["id"] == res_id)
    return pkg, index


def _save_resources(ctx: Context, pkg: dict[str, Any], resources: list[dict[str, Any]],
                    index: int) -> dict[str, Any]:
    """Save ``pkg`` with ``resources``; return the resource at ``index`` as shown."""
    try:
        saved = write_package(ctx, {**as_input(pkg), "resources": resources}, pkg)
    except ValidationError as error:
        problems = error.errors.get("resources")
        if isinstance(problems, list) and problems:
            raise ValidationError(problems[index]) from None
        raise
    res = saved["resources"][index]
    if ctx.upload is not None:
        ctx.store.blobs.rename(ctx.upload.key, res["id"])
    return resource_out(res, ctx.base)


def resource_create(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "resource_create")
    pkg = readable_package(ctx, get_or_bust(data, "package_id"))
    item = with_file({k: v for k, v in data.items() if k != "package_id"}, ctx.upload,
                     keep_size=True)
    item.setdefault("url", "")
    return _save_resources(ctx, pkg, [*pkg["resources"], item], len(pkg["resources"]))


def resource_update(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "resource_update")
    pkg, index = resource_owner(ctx, str(get_or_bust(data, "id")))
    resources = list(pkg["resources"])
    resources[index] = with_file(data, ctx.upload)
    return _save_resources(ctx, pkg, resources, index)


def resource_patch(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "resource_patch")
    pkg, index = resource_owner(ctx, str(get_or_bust(data, "id")))
    resources = list(pkg["resources"])
    # CKAN patches resource_show's dict, so its mimetype key is already there.
    resources[index] = with_file({**resource_out(resources[index], ctx.base), **data},
                                 ctx.upload)
    return _save_resources(ctx, pkg, resources, index)


def resource_delete(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "resource_delete")
    res_id = str(get_or_bust(data, "id"))
    gone_from = ctx.store.packages.get(ctx.store.deleted_resources.get(res_id, ""))
    if gone_from is not None and res_id not in ctx.store.resources:
        # CKAN finds the deleted row, and the package_update that follows changes nothing.
        if not can_read(ctx.user, gone_from):
            raise NotAuthorized(f"User {ctx.user or ''} not authorized to read resource {res_id}")
        return None
    if res_id not in ctx.store.resources:
        raise NotFound()  # resource_delete's own lookup: a bare "Not found"
    pkg, index = resource_owner(ctx, res_id)
    resources = [res for i, res in enumerate(pkg["resources"]) if i != index]
    # CKAN sends package_show's metadata_modified back to package_update: a sysadmin's
    # delete keeps the dataset's date (only the reindex moves indexed_ts); an editor's
    # is stripped by the schema, so it moves.
    write_package(ctx, {**as_input(pkg), "metadata_modified": pkg["metadata_modified"],
                "resources": resources}, pkg)
    return None


def resource_show(ctx: Context, data: dict[str, Any]) -> Any:
    pkg, index = resource_owner(ctx, str(get_or_bust(data, "id")))
    return resource_out(pkg["resources"][index], ctx.base)


def _org_out(ctx: Context, org: dict[str, Any]) -> dict[str, Any]:
    count = sum(1 for p in ctx.store.packages.values() if p["owner_org"] == org["id"]
                and p["state"] == "active" and (ctx.user is not None or not p["private"]))
    return {**org, "display_name": org["title"] or org["name"], "image_display_url":
            org["image_url"], "package_count": count, "num_followers": 0, "groups": [],
            "users": [_member_out(ctx, name, capacity) for name, capacity
                                  in sorted(ctx.store.members.get(org["id"], {}).items())]}


def _member_out(ctx: Context, name: str, capacity: str) -> dict[str, Any]:
    return {"id": ctx.store.user_id(name), "name": name, "fullname": None,
            "display_name": name, "state": "active", "sysadmin": name in ctx.config.sysadmins,
            "capacity": capacity}


def organization_create(ctx: Context, data: dict[str, Any]) -> Any:
    require_user(ctx, "organization_create")
    if not ctx.sysadmin:
        raise NotAuthorized(f"User {ctx.user} not authorized to create organizations")
    org = build_organization(data, name_taken=lambda n: n in ctx.store.org_names,
                             new_id=ctx.store.new_id)
    ctx.store.save_org(org)
    assert ctx.user is not None
    ctx.store.members.setdefault(org["id"], {})[ctx.user] = "admin"  # creators administer it
    return _org_out(ctx, org)


def organization_show(ctx: Context, data: dict[str, Any]) -> Any:
    org = ctx.store.get_org(str(get_or_bust(data, "id")))
    if org is None:
        raise NotFound()
    return _org_out(ctx, org)


def organization_list(ctx: Context, data: dict[str, Any]) -> Any:
    wanted = data.get("organizations")
    # CKAN's default sort is "title asc" (an empty title first), then the name.
    orgs = sorted(ctx.store.organizations.values(), key=lambda o: (o["title"] or "", o["name"]))
    if wanted:
        names = set(wanted if isinstance(wanted, list) else [wanted])
        orgs = [o for o in orgs if o["name"] in names]
    if str(data.get("sort", "name asc")).strip().endswith("desc"):
        orgs.reverse()
    offset = _int_param(data, "offset", 0) or 0
    limit = _int_param(data, "limit", 1000) or 1000
    orgs = orgs[offset:offset + limit]
    if as_bool(data.get("all_fields")):
        # include_extras, include_groups and include_users default to false here.
        hidden = ("extras", "groups", "users")
        return [{k: v for k, v in _org_out(ctx, org).items() if k not in hidden} for org in orgs]
    return [org["name"] for org in orgs]


# name → (function, side_effect_free): only side-effect-free actions accept GET.
ACTIONS: dict[str, tuple[Action, bool]] = {
    "status_show": (status_show, True),
    "license_list": (license_list_action, True),
    "package_show": (package_show, True),
    "package_list": (package_list, True),
    "package_search": (package_search, True),
    "resource_show": (resource_show, True),
    "organization_show": (organization_show, True),
    "organization_list": (organization_list, True),
    "package_create": (package_create, False),
    "package_update": (package_update, False),
    "package_patch": (package_patch, False),
    "package_delete": (package_delete, False),
    "resource_create": (resource_create, False),
    "resource_update": (resource_update, False),
    "resource_patch": (resource_patch, False),
    "resource_delete": (resource_delete, False),
    "organization_create": (organization_create, False),
    **TOKEN_ACTIONS,
}
