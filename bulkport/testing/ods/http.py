"""Request plumbing of the Opendatasoft simulator: routes, auth, bodies, pagination."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError

from bulkport.testing.ods.errors import OdsError, invalid, not_found
from bulkport.testing.ods.store import OdsDataset, OdsStore

PREFIX = "/api/automation/v1.0"
# What also answers anonymous callers: the explore APIs and the portal's pages.
PUBLIC_PREFIXES = ("/api/explore/", "/api/v2/", "/api/datasets/1.0/", "/explore/",
                   "/backoffice/", "/login/")
ADMIN_USER = "admin"  # the owner of the keys given to create_ods_app
MAX_LIMIT = 1000


def route_label(request: web.Request) -> str:
    """``"GET /datasets/{uid}/"``: the method and the route without the API prefix."""
    resource = request.match_info.route.resource
    if resource is None:
        return f"{request.method} unmatched"
    return f"{request.method} {resource.canonical.removeprefix(PREFIX)}"


def auth_middleware(keys: set[str]) -> Middleware:
    """``Authorization: apikey KEY`` or ``?apikey=KEY``; anything else is a 401.

    ``keys`` belong to the domain administrator; keys created through ``/apikeys/`` to
    their user, until revoked. The caller's user name goes in ``request["ods_user"]``
    (None for an anonymous caller of the explore API or the portal, which need no key).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is None:
            header = request.headers.get("Authorization", "")
            scheme, _, value = header.partition(" ")
            key = value.strip() if scheme.lower() == "apikey" else request.query.get("apikey")
            challenge = {"WWW-Authenticate": 'ApiKey realm="api"'}
            if not key and request.path.startswith(PUBLIC_PREFIXES):
                request["ods_user"] = None
                return await handler(request)
            if not key:
                raise OdsError(401, "not_authenticated",
                               "Authentication credentials were not provided.",
                               headers=challenge)
            user = ADMIN_USER if key in keys else request.app["store"].apikeys.user_for(key)
            if user is None:
                raise OdsError(401, "authentication_failed",
                               "Incorrect authentication credentials.", headers=challenge)
            request["ods_user"] = user
        return await handler(request)

    return middleware


async def read_json(request: web.Request) -> dict[str, Any]:
    """The JSON object in the body; anything else is a 400 ``validation_error`` (what the
    document declares for a malformed body: never a 5xx, which a client would retry)."""
    try:
        body = await request.read()
    except RequestPayloadError as error:  # e.g. a Content-Encoding the bytes do not follow
        raise invalid({"non_field_errors": [
            f"The request body cannot be decoded: {str(error).strip() or 'bad payload'}"]},
            close=True) from None
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as error:
        raise invalid({"non_field_errors": [f"JSON parse error - {error}"]}) from None
    if not isinstance(data, dict):
        raise invalid({"non_field_errors": [
            f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]})
    return data


def expect_str(data: dict[str, Any], name: str, errors: dict[str, list[str]], *,
               default: str = "") -> str:
    """``data[name]`` when it is a string (``default`` when absent); else an error."""
    value = data.get(name, default)
    if not isinstance(value, str):
        errors[name] = ["Not a valid string."]
        return default
    return value


def dataset_of(request: web.Request) -> OdsDataset:
    store: OdsStore = request.app["store"]
    dataset = store.datasets.get(request.match_info["uid"])
    if dataset is None:
        raise not_found()
    return dataset


def _number(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid({name: ["A valid integer is required."]}) from None
    if value < 0:
        raise invalid({name: ["Ensure this value is greater than or equal to 0."]})
    return value


def paginate(request: web.Request, items: list[Any]) -> dict[str, Any]:
    """``{total_count, next, previous, results}`` with absolute links, as documented."""
    limit = _number(request, "limit", 20)
    if limit > MAX_LIMIT:
        raise invalid({"limit": [f"Ensure this value is less than or equal to {MAX_LIMIT}."]})
    offset = _number(request, "offset", 0)
    total = len(items)
    url = request.url
    upcoming = None
    if limit and offset + limit < total:
        upcoming = str(url.update_query(limit=limit, offset=offset + limit))
    previous = None
    if offset > 0 and limit:
        if offset - limit <= 0:
            query = {k: v for k, v in url.query.items() if k != "offset"}
            previous = str(url.with_query(query).update_query(limit=limit))
        else:
            previous = str(url.update_query(limit=limit, offset=offset - limit))
    return {"total_count": total, "next": upcoming, "previous": previous,
            "results": items[offset:offset + limit]}
