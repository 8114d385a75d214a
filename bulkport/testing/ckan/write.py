"""Action API functions a migration *into* CKAN needs beyond create/update/patch/delete.

``package_revise`` (``ckan/logic/action/update.py``), ``dataset_purge``
(``ckan/logic/action/delete.py``), ``organization_member_create`` and
``organization_list_for_user``, with CKAN 2.10/2.11's rules, order of checks and messages.
"""

from __future__ import annotations

from typing import Any

import orjson

from bulkport.testing.ckan.actions import (
    Action,
    Context,
    Upload,
    get_or_bust,
    readable_package,
    require_user,
    write_package,
)
from bulkport.testing.ckan.errors import ActionError, DataError, NotAuthorized, NotFound, ValidationError
from bulkport.testing.ckan.model import as_bool, package_out, with_file
from bulkport.testing.ckan.revise import (
    RevisionError,
    check_dict,
    check_string_key,
    filter_glob_match,
    update_merge_dict,
    update_merge_string_key,
)

# authz.ROLE_PERMISSIONS: the permissions each organization role grants.
ROLE_PERMISSIONS = {
    "admin": {"admin", "membership", "read", "delete_dataset", "create_dataset",
              "update_dataset", "manage_group"},
    "editor": {"read", "delete_dataset", "create_dataset", "update_dataset", "manage_group"},
    "member": {"read", "manage_group"},
}


def _json_or_string(value: Any) -> Any:
    """``json_or_string``: a string that parses as JSON becomes its value."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    return value


def _json_list_or_string(value: Any) -> Any:
    """``json_list_or_string``: JSON, else a comma-separated list."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value.split(",")
    return value


def _revise_input(data: dict[str, Any]) -> dict[str, Any]:
    """``package_revise_schema`` applied: parsed values and field errors (a 409)."""
    errors: dict[str, list[str]] = {}
    out: dict[str, Any] = {
        prefix: {key[len(prefix):]: _json_or_string(value) for key, value in data.items()
                 if key.startswith(prefix)}
        for prefix in ("match__", "update__")}
    for field in ("match", "update"):
        if data.get(field) is not None:
            out[field] = _json_or_string(data[field])
            if not isinstance(out[field], dict):
                errors[field] = ["Must be a dict"]
    for field in ("filter", "include"):
        if data.get(field) is not None:
            out[field] = _json_list_or_string(data[field])
            if not isinstance(out[field], list):
                errors[field] = ["Not a list"]
            elif bad := [p for p in out[field] if not isinstance(p, str)]:
                errors[field] = [f"Not a string: {bad[0]}"]
    if errors:
        raise ValidationError(errors)
    return out


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    """The request data for an error body: files shown by name, as CKAN's repr does."""
    return {key: f"<FileStorage: {value.filename!r}>" if isinstance(value, Upload) else value
            for key, value in data.items()}


def package_revise(ctx: Context, data: dict[str, Any]) -> Any:
    """Revise a dataset: check ``match``, drop ``filter``, merge ``update``, then update.

    Files posted as ``update__resources__<index or id>__upload`` (multipart) become hosted
    files of those resources, as ``package_update`` stores an ``upload`` in a resource.
    """
    given = _revise_input(data)
    match, match_keys = given.get("match") or {}, given["match__"]
    name_or_id = (match_keys.get("id") or match.get("id") or match_keys.get("name")
                  or match.get("name"))
    if name_or_id is None:
        raise ValidationError({"match__id": "Missing value"})  # a bare string, as in CKAN
    existing = readable_package(ctx, name_or_id)
    orig = package_out(existing, ctx.store.organizations, ctx.base)

    unmatched = check_dict(orig, match) if "match" in given else []
    try:
        for key, value in sorted(match_keys.items()):
            unmatched.extend(check_string_key(orig, key, value))
    except RevisionError as error:
        # Not caught by package_revise: the API view answers 400 "Integrity Error".
        raise DataError(error.error, _plain(data)) from None
    if unmatched:
        raise ValidationError({"match": ["__".join(str(p) for p in path)
                                         for path in unmatched]})

    if "filter" in given:
        filter_glob_match(orig, given["filter"])
        orig["id"] = existing["id"]
    if "update" in given:
        try:
            update_merge_dict(orig, given["update"])
        except RevisionError as error:
            raise ValidationError({"update": [error.error]}) from None
    # CKAN's sort key: ``__extend`` keys sort by one character ("_"), so before the others,
    # and a file can go to a resource added in the same call.
    for key, value in sorted(given["update__"].items(),
                             key=lambda item: item[0][-6] if item[0].endswith("extend")
                             else item[0]):
        try:
            update_merge_string_key(orig, key, value)
        except RevisionError as error:
            raise ValidationError({key: [error.error]}) from None

    require_user(ctx, "package_revise")
    resources = orig.get("resources")
    files: dict[int, Upload] = {}
    if isinstance(resources, list):
        for index, res in enumerate(resources):
            if isinstance(res, dict) and isinstance(res.get("upload"), Upload):
                files[index] = res["upload"]
                resources[index] = with_file(res, res["upload"])
    saved = write_package(ctx, orig, existing)
    for index, upload in files.items():
        ctx.store.blobs.rename(upload.key, saved["resources"][index]["id"])
    result: dict[str, Any] = {"package": package_out(saved, ctx.store.organizations, ctx.base)}
    if "include" in data:
        # CKAN filters with the raw ``include``: a string is taken character by character.
        raw = data["include"]
        filter_glob_match(result, raw if isinstance(raw, list) else list(str(raw)))
    return result


def dataset_purge(ctx: Context, data: dict[str, Any]) -> Any:
    """Remove a dataset for good (sysadmins only); its name and id become free."""
    pkg = ctx.store.get_package(str(get_or_bust(data, "id")))
    if pkg is None:
        raise NotFound("Dataset was not found")
    require_user(ctx, "dataset_purge")
    if not ctx.sysadmin:
        raise NotAuthorized()  # the auth function gives no message
    ctx.store.purge_package(pkg["id"])
    return None


def _capacity(ctx: Context, org_id: str, user: str) -> str:
    """A user's role in an organization: every key holder is at least an editor here."""
    role = ctx.store.members.get(org_id, {}).get(user, "editor")
    account = ctx.store.accounts.get_user(user)
    sysadmin = account.sysadmin if account else ctx.sysadmin and user == ctx.user
    return "admin" if sysadmin or role == "admin" else "editor"


def organization_member_create(ctx: Context, data: dict[str, Any]) -> Any:
    """Make a user a member, editor or admin of an organization (its admins or sysadmins)."""
    require_user(ctx, "organization_member_create")
    assert ctx.user is not None
    if not ctx.sysadmin:
        if "id" not in data:
            raise ActionError()  # the auth function reads data_dict["id"]: a KeyError, 500
        org = ctx.store.get_org(str(data["id"]))
        if org is None or _capacity(ctx, org["id"], ctx.user) != "admin":
            raise NotAuthorized(f"User {ctx.user} not authorized to add members")
    errors: dict[str, list[str]] = {}
    for field in ("id", "username", "role"):
        if field not in data:
            errors[field] = ["Missing value"]
    org = ctx.store.get_org(str(data.get("id", "")))
    if "id" in data and org is None:
        errors["id"] = ["That group name or ID does not exist."]
    username = str(data.get("username", ""))
    if "username" in data and ctx.store.accounts.get_user(username) is None:
        errors["username"] = ["Not found: User"]
    if "role" in data and data["role"] not in ROLE_PERMISSIONS:
        errors["role"] = ["role does not exist."]
    if errors:
        raise ValidationError(errors)
    assert org is not None
    members = ctx.store.members.setdefault(org["id"], {})
    if (members.get(username) == "admin" and username == ctx.user
            and data["role"] != "admin"):
        raise NotAuthorized("Administrators cannot revoke their own admin status")
    members[username] = str(data["role"])
    member_id = f"{org['id']}:{username}"
    return {"id": ctx.store.user_id(member_id), "table_name": "user",
            "table_id": ctx.store.user_id(username), "group_id": org["id"],
            "state": "active", "capacity": members[username]}


def organization_list_for_user(ctx: Context, data: dict[str, Any]) -> Any:
    """Organizations where the user ``id`` (default: the caller) has ``permission``
    (default ``manage_group``)."""
    account = ctx.store.accounts.get_user(str(data["id"])) if data.get("id") else None
    user = account.name if account else ctx.user
    if user is None:
        return []
    permission = str(data.get("permission") or "manage_group")
    account = ctx.store.accounts.get_user(user)
    sysadmin = account.sysadmin if account else ctx.sysadmin and user == ctx.user
    out = []
    for org in sorted(ctx.store.organizations.values(), key=lambda o: o["name"]):
        # The role the user holds there, as CKAN reads it (a member may read, not create);
        # a sysadmin gets every organization as its admin.
        capacity = "admin" if sysadmin else ctx.store.members.get(org["id"], {}).get(user)
        if (org["state"] == "active" and capacity in ROLE_PERMISSIONS
                and permission in ROLE_PERMISSIONS[capacity]):
            item = {**{k: v for k, v in org.items() if k != "extras"},
                    "display_name": org["title"] or org["name"],
                    "image_display_url": org["image_url"], "capacity": capacity}
            if as_bool(data.get("include_dataset_count")):
                item["package_count"] = sum(1 for p in ctx.store.packages.values()
                                            if p["owner_org"] == org["id"]
                                            and p["state"] == "active")
            out.append(item)
    return out


# name → (function, side_effect_free), merged into the site's table by ``site_actions``.
WRITE_ACTIONS: dict[str, tuple[Action, bool]] = {
    "package_revise": (package_revise, False),
    "dataset_purge": (dataset_purge, False),
    "organization_member_create": (organization_member_create, False),
    "organization_list_for_user": (organization_list_for_user, True),
}
