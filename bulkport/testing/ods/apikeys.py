"""API keys of the Opendatasoft simulator: ``/apikeys/`` list, create, show, edit, revoke.

A domain administrator sees and revokes every key of the domain; another user only their
own (someone else's key is a 404, as a filtered list would make it). A revoked key no longer
authenticates. Revoking a revoked key changes nothing and answers 200.
"""

from __future__ import annotations

import random
import time
from typing import Any

from aiohttp import web

from bulkport.testing.core.responses import json_response
from bulkport.testing.ods.errors import OdsError, invalid, not_found
from bulkport.testing.ods.http import expect_str, paginate, read_json
from bulkport.testing.ods.store import ApiKey, ApiKeys, OdsStore, iso


def _registry(request: web.Request) -> ApiKeys:
    store: OdsStore = request.app["store"]
    return store.apikeys


def _key_of(request: web.Request) -> ApiKey:
    record = _registry(request).keys.get(request.match_info["apikey_uid"])
    user = request["ods_user"]
    if record is None or (user not in _registry(request).admins and record.username != user):
        raise not_found()
    return record


async def list_apikeys(request: web.Request) -> web.StreamResponse:
    keys = _registry(request).visible_to(request["ods_user"])
    page = paginate(request, keys)
    page["results"] = [k.out() for k in page["results"]]
    return json_response(page)


# The document's Permission enum: what a key may be granted.
PERMISSIONS = ("edit_domain", "create_page", "edit_page", "manage_page",
               "explore_restricted_page", "create_dataset", "edit_dataset", "publish_dataset",
               "manage_dataset", "explore_restricted_dataset", "edit_reuse",
               "manage_subdomains", "explore_monitoring", "edit_theme", "edit_form",
               "submit_private_form")


def _permissions(data: dict[str, Any], errors: dict[str, list[str]]) -> list[str] | None:
    if "permissions" not in data:
        return None
    value = data["permissions"]
    if not isinstance(value, list):
        errors["permissions"] = [f'Expected a list of items but got type "{type(value).__name__}".']
        return None
    unknown = [p for p in value if not isinstance(p, str) or p not in PERMISSIONS]
    if unknown:
        errors["permissions"] = [f'"{p}" is not a valid choice.' for p in unknown]
        return None
    return list(dict.fromkeys(value))


async def create_apikey(request: web.Request) -> web.StreamResponse:
    data = await read_json(request)
    errors: dict[str, list[str]] = {}
    label = expect_str(data, "label", errors)
    permissions = _permissions(data, errors)
    if errors:
        raise invalid(errors)
    record = _registry(request).create(request["ods_user"], label, permissions=permissions)
    return json_response(record.out(), 201)


async def update_apikey(request: web.Request) -> web.StreamResponse:
    """``PUT /apikeys/{uid}/``: a new label and permissions (the key and owner stay)."""
    record = _key_of(request)
    data = await read_json(request)
    errors: dict[str, list[str]] = {}
    label = expect_str(data, "label", errors, default=record.label)
    permissions = _permissions(data, errors)
    if errors:
        raise invalid(errors)
    record.label = label
    if permissions is not None:
        record.permissions = permissions
    return json_response(record.out())


async def get_apikey(request: web.Request) -> web.StreamResponse:
    return json_response(_key_of(request).out())


async def revoke_apikey(request: web.Request) -> web.StreamResponse:
    record = _key_of(request)
    data = await read_json(request)
    errors: dict[str, list[str]] = {}
    reason = expect_str(data, "reason", errors)
    if errors:
        raise invalid(errors)
    if record.revoked_at is None:
        record.revoked_at = iso()
        record.revocation_reason = reason
    return json_response(record.out())


async def search_key(request: web.Request) -> web.StreamResponse:
    if request["ods_user"] not in _registry(request).admins:
        raise OdsError(403, "permission_denied",
                       "You do not have permission to perform this action.")
    data = await read_json(request)
    errors: dict[str, list[str]] = {}
    key = expect_str(data, "key", errors)
    if errors or not key:
        raise invalid(errors or {"key": ["This field is required."]})
    record = _registry(request).find(key)
    return json_response({"found": record is not None,
                          "result": record.out() if record else None})


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/apikeys/", {"GET": list_apikeys, "POST": create_apikey}),
    ("/apikeys/search_key/", {"POST": search_key}),
    ("/apikeys/{apikey_uid}/", {"GET": get_apikey, "PUT": update_apikey}),
    ("/apikeys/{apikey_uid}/revoke/", {"POST": revoke_apikey}),
]


def seed_apikeys(keys: ApiKeys, *, users: int, count: int,
                 labels: tuple[str, ...] = ("datapusher", "harvest", "backup", "ci"),
                 seed: int = 0, days: int = 720) -> dict[str, str]:
    """Spread ``count`` keys over ``users`` users with varied labels and creation dates.

    Returns:
        uid → key value, for tests that check no key value leaks.
    """
    rng = random.Random(seed)
    now = time.time()
    issued: dict[str, str] = {}
    for i in range(count):
        label = labels[0] if rng.random() < 0.5 else rng.choice(labels[1:] or labels)
        record = keys.create(f"user{i % users:03d}", label,
                             created_at=iso(now - rng.uniform(0, days * 86400)))
        issued[record.uid] = record.key
    return issued
