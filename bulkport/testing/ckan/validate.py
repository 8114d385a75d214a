"""CKAN's create/update schemas, reduced to what the simulator stores.

Each ``build_*`` function turns request data into the stored dict, or raises
:class:`ValidationError` with CKAN's field messages.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bulkport.testing.ckan.errors import DataError, ValidationError
from bulkport.testing.ckan.model import (
    PACKAGE_KEYS,
    PACKAGE_TEXT_FIELDS,
    RESOURCE_CLEARED,
    RESOURCE_COLUMNS,
    RESOURCE_SKIP,
    UUID_RE,
    as_bool,
    as_int,
    as_text,
    check_email,
    check_name,
    check_package_name,
    check_tag,
    clean_format,
    guess_format,
    guess_mimetype,
    now_iso,
)

if TYPE_CHECKING:
    from bulkport.testing.ckan.store import CkanStore

MISSING: Any = object()


def _dicts(data: dict[str, Any], key: str) -> list[Any] | None:
    """A list of dicts under ``key``; navl's DataError when it is something else."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        bad = type(value[0] if isinstance(value, list) and value else value)
        raise DataError(f"Only lists of dicts can be placed against subschema ('{key}',), "
                        f"not {bad}", data)
    return value


def _isodate(value: Any) -> str:
    text = str(value).strip().replace("Z", "")
    return datetime.fromisoformat(text).isoformat(timespec="microseconds")


def _list_errors(items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return items if any(items) else None


def build_tags(data: dict[str, Any], tag_id: Callable[[str], str],
               errors: dict[str, Any]) -> list[dict[str, Any]]:
    tags: dict[str, dict[str, Any]] = {}
    item_errors: list[dict[str, Any]] = []
    for item in _dicts(data, "tags") or []:
        name = as_text(item.get("name"))
        messages = ["Missing value"] if not name else check_tag(name)
        item_errors.append({"name": messages} if messages else {})
        if not messages:
            tags[name] = {"id": tag_id(name), "name": name, "display_name": name,
                          "state": "active", "vocabulary_id": None}
    if _list_errors(item_errors):
        errors["tags"] = item_errors
    tag_string = data.get("tag_string")
    if isinstance(tag_string, str):
        for name in (t.strip() for t in tag_string.split(",")):
            if not name:
                continue
            messages = check_tag(name)
            if messages:
                errors.setdefault("tag_string", []).extend(messages)
            else:
                tags[name] = {"id": tag_id(name), "name": name, "display_name": name,
                              "state": "active", "vocabulary_id": None}
    return sorted(tags.values(), key=lambda tag: tag["name"])


def build_extras(data: dict[str, Any], errors: dict[str, Any]) -> list[dict[str, Any]]:
    extras: list[dict[str, Any]] = []
    item_errors: list[dict[str, Any]] = []
    for item in _dicts(data, "extras") or []:
        problems: dict[str, list[str]] = {}
        key = as_text(item.get("key"))
        if not key:
            problems["key"] = ["Missing value"]
        elif key in PACKAGE_KEYS:
            problems["key"] = ["There is a schema field with the same name"]
        if "value" not in item:
            problems["value"] = ["Missing value"]
        item_errors.append(problems)
        if not problems and not item.get("deleted"):
            extras.append({"key": key, "value": as_text(item["value"])})
    if _list_errors(item_errors):
        errors["extras"] = item_errors
    keys = [extra["key"] for extra in extras]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        errors["extras_validation"] = [f"There are duplicate keys: {', '.join(duplicates)}"]
    return sorted(extras, key=lambda extra: extra["key"])


def build_resource(item: dict[str, Any], *, pkg_id: str, position: int,
                   previous: dict[str, Any] | None, new_id: Callable[[], str],
                   on_update: bool = True,
                   taken: Callable[[str], bool]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One resource of a package; returns it with its field errors."""
    errors: dict[str, Any] = {}
    if previous is not None:
        res = {key: previous[key] for key in (
            "id", "package_id", "created", "metadata_modified", *RESOURCE_COLUMNS)
            if key in previous}
        res.update(state="active", datastore_active=previous.get("datastore_active", False))
        res.update({k: blank for k, blank in RESOURCE_CLEARED.items() if k not in item})
    else:
        given = as_text(item.get("id"))
        if given and not UUID_RE.match(given):
            errors["id"] = ["Badly formed hexadecimal UUID string"]
        elif given and taken(given):
            errors["id"] = ["Resource id already exists."]
        res = {"id": given or new_id(), "package_id": pkg_id, "url": "", "format": "",
               "description": None, "hash": "", "name": None, "resource_type": None,
               "mimetype": None, "mimetype_inner": None, "cache_url": None, "size": None,
               "created": now_iso(), "last_modified": None, "cache_last_updated": None,
               "url_type": None, "metadata_modified": None, "state": "active",
               "datastore_active": False}
    for column in RESOURCE_COLUMNS:
        if column not in item:
            continue
        value = item[column]
        if column == "size":
            try:
                value = as_int(value)
            except ValueError:
                errors["size"] = ["Invalid integer"]
                continue
        elif column in ("created", "last_modified", "cache_last_updated") and value:
            try:
                value = _isodate(value)
            except ValueError:
                errors[column] = ["Date format incorrect"]
                continue
        elif column == "url":
            value = str(value or "").strip()
        elif column == "format":
            value = clean_format(value) if value else ""
        else:
            value = as_text(value)
        res[column] = value
    if res["url"] and res.get("url_type") == "upload":
        res["url"] = res["url"].rsplit("/", 1)[-1]  # CKAN stores a hosted file's name only
    if previous is None and not res["format"] and res["url"]:
        res["format"] = guess_format(res["url"])
    if on_update and "mimetype" not in item and res["url"] and res.get("url_type") != "upload":
        # Updates run CKAN's ResourceUpload, which guesses it from a link's extension;
        # package_create does not.
        res["mimetype"] = guess_mimetype(res["url"].split("?", 1)[0]) or res["mimetype"]
    for key, value in item.items():  # anything else is a resource extra
        if key not in RESOURCE_COLUMNS and key not in RESOURCE_SKIP:
            res[key] = value
    res["position"] = position
    res["package_id"] = pkg_id
    return res, errors


def build_package(data: dict[str, Any], store: CkanStore, *,
                  existing: dict[str, Any] | None, sysadmin: bool, create_unowned: bool,
                  creator_id: str | None) -> dict[str, Any]:
    """The stored package for ``package_create`` (``existing`` None) or ``package_update``."""
    errors: dict[str, Any] = {}
    if existing is not None:
        pkg_id = existing["id"]
    else:
        given = as_text(data.get("id"))
        if given and not sysadmin:  # CKAN 2.11: only sysadmins choose a dataset's id
            errors["id"] = ["The input field id was not expected."]
            given = None
        elif given and not UUID_RE.match(given):
            errors["id"] = ["Badly formed hexadecimal UUID string"]
        elif given and given in store.packages:
            errors["id"] = ["Dataset id already exists"]
        pkg_id = given or store.new_id()

    name = data.get("name", MISSING)
    if existing is not None and name is MISSING:
        name = existing["name"]
    elif name is MISSING or name is None or name == "":
        errors["name"] = ["Missing value"]
    else:
        name = as_text(name)
        owner = store.name_owner(name)
        messages = check_package_name(name, in_use=owner not in (None, pkg_id))
        if messages:
            errors["name"] = messages

    pkg: dict[str, Any] = {"id": pkg_id, "name": name}
    for field in PACKAGE_TEXT_FIELDS:
        pkg[field] = as_text(data.get(field))
    pkg["title"] = pkg["title"] or (name if isinstance(name, str) else None)
    for field in ("author_email", "maintainer_email"):
        if check_email(pkg[field]):
            errors[field] = check_email(pkg[field])
        elif pkg[field]:
            pkg[field] = pkg[field].strip()
    if pkg["version"] and len(pkg["version"]) > 100:
        errors["version"] = ["Version must be a maximum of 100 characters long"]
    pkg["type"] = as_text(data.get("type")) or (existing or {}).get("type") or "dataset"
    pkg["state"] = as_text(data.get("state")) or (existing or {}).get("state") or "active"

    owner_org = data.get("owner_org")
    if owner_org in (None, ""):
        if not create_unowned:
            errors["owner_org"] = ["An organization must be provided"]
        pkg["owner_org"] = None
    else:
        org = store.get_org(str(owner_org))
        if org is None:
            errors["owner_org"] = ["Organization does not exist"]
        pkg["owner_org"] = org["id"] if org else None
    pkg["private"] = as_bool(data.get("private", False))
    if pkg["private"] and not owner_org:
        errors["private"] = ["Datasets with no organization can't be private."]

    pkg["tags"] = build_tags(data, store.tag_id, errors)
    pkg["extras"] = build_extras(data, errors)
    pkg["groups"] = []
    pkg["relationships_as_object"] = []
    pkg["relationships_as_subject"] = []
    pkg["creator_user_id"] = (existing or {}).get("creator_user_id", creator_id)
    now = now_iso()
    pkg["metadata_created"] = (existing or {}).get("metadata_created", now)
    pkg["metadata_modified"] = (existing or {}).get("metadata_modified", now)
    pkg["indexed_ts"] = (existing or {}).get("indexed_ts")  # moved by _save when it indexes
    pkg["resources"] = _package_resources(data, store, pkg_id, existing, errors)

    if errors:
        raise ValidationError(errors)
    if sysadmin and data.get("metadata_modified"):
        try:
            pkg["metadata_modified"] = _isodate(data["metadata_modified"])
        except ValueError:
            raise ValidationError({"metadata_modified": ["Date format incorrect"]}) from None
    elif existing is None or pkg != existing:
        # An update that changes nothing leaves metadata_modified alone, as CKAN does.
        pkg["metadata_modified"] = now
    for res in pkg["resources"]:
        before = previous_resource(existing, res["id"])
        if before is None or {**res, "metadata_modified": None} != {
                **before, "metadata_modified": None}:
            res["metadata_modified"] = pkg["metadata_modified"]
    return pkg


def _package_resources(data: dict[str, Any], store: CkanStore, pkg_id: str,
                       existing: dict[str, Any] | None,
                       errors: dict[str, Any]) -> list[dict[str, Any]]:
    items = _dicts(data, "resources")
    if items is None and existing is not None:
        kept: list[dict[str, Any]] = existing["resources"]  # package_update leaves them alone
        return kept
    previous = {res["id"]: res for res in (existing or {}).get("resources", [])}
    resources: list[dict[str, Any]] = []
    res_errors: list[dict[str, Any]] = []
    for position, item in enumerate(items or []):
        res, problems = build_resource(
            item, pkg_id=pkg_id, position=position, previous=previous.get(item.get("id")),
            new_id=store.new_id, on_update=existing is not None,
            taken=lambda rid: store.resources.get(rid) not in (None, pkg_id))
        resources.append(res)
        res_errors.append(problems)
    if _list_errors(res_errors):
        errors["resources"] = res_errors
    return resources


def previous_resource(pkg: dict[str, Any] | None, res_id: str) -> dict[str, Any] | None:
    resources: list[dict[str, Any]] = (pkg or {}).get("resources", [])
    for res in resources:
        if res["id"] == res_id:
            return res
    return None


def build_organization(data: dict[str, Any], *, name_taken: Callable[[str], bool],
                       new_id: Callable[[], str]) -> dict[str, Any]:
    """The stored organization for ``organization_create``."""
    errors: dict[str, Any] = {}
    name = data.get("name")
    if not name:
        errors["name"] = ["Missing value"]
    else:
        messages = check_name(name)
        if not messages and name_taken(name):
            messages = ["Group name already exists in database"]
        if messages:
            errors["name"] = messages
    given = as_text(data.get("id"))
    if given and not UUID_RE.match(given):
        errors["id"] = ["Badly formed hexadecimal UUID string"]
    extras = build_extras(data, errors)
    if errors:
        raise ValidationError(errors)
    return {
        "id": given or new_id(), "name": name,
        "title": as_text(data.get("title")) or "", "type": "organization",
        "description": as_text(data.get("description")) or "",
        "image_url": as_text(data.get("image_url")) or "", "created": now_iso(),
        "is_organization": True, "approval_status": "approved", "state": "active",
        "extras": extras,
    }
