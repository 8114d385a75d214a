"""DataPress API simulator over an in-memory store.

Routes, under a configurable prefix (``/api/v3``, the newer docs and the official client;
``/api``, the v4.0 docs):

- ``GET {prefix}/whoami`` → the key's user, or JSON ``null``;
- ``GET {prefix}/site`` → the site settings (mastheads and topics by id); ``GET /api/team``
  (v4.0 docs) or ``GET /api/v3/teams`` (newer docs) → every team by id;
- ``GET|PATCH {prefix}/dataset/{id}`` → the dataset; a PATCH takes an RFC 6902 list and
  answers ``{"dataset": ...}``, ``updatedAt`` untouched unless patched;
- ``POST /api/dataset`` → create (``title``, ``masthead``, ``team``), as documented;
- ``POST {prefix}/dataset/{id}/upload``, then ``{prefix}/upload/{uuid}/chunk`` per part and
  ``{prefix}/upload/{uuid}/complete``; with the ``/api`` prefix also the v4 single-request
  ``POST /api/dataset/{id}/resources[/{resource_id}]``;
- ``GET /download/{id}/{resource_id}/{filename}`` → a hosted file (each resource's ``url``);
- ``GET /dataset/{id}`` and ``/dataset/{id}/{slug}`` → the dataset's public page (HTML);
- ``GET {prefix}/datasets/export.json`` → every dataset the key may read, streamed.

Auth is the raw key in ``Authorization`` (no scheme). Admins edit everything, team members
their team's datasets; private datasets are for their editors. Errors are Nuxt bodies
``{url, statusCode, statusMessage, message, data?}``: 400 (Zod issues in ``data``, each
with its ``path``), 403 (no permission), 404 (unknown id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from bulkport.testing.core.app import build_app
from bulkport.testing.core.faults import Faults
from bulkport.testing.core.responses import CHUNK, DROP_AFTER_KEY, base_url, drop_connection, json_response
from bulkport.testing.datapress.errors import datapress_error_body, error_middleware, forbidden, invalid
from bulkport.testing.datapress.files import (
    PART_SIZE,
    complete_upload,
    download,
    start_upload,
    upload_chunk,
    upload_resource,
)
from bulkport.testing.datapress.http import (
    current_user,
    dataset_for,
    read_json,
    render_dataset,
    render_resource,
    route_label,
)
from bulkport.testing.datapress.pages import dataset_page
from bulkport.testing.datapress.patch import PatchFailed, apply_patch
from bulkport.testing.datapress.schema import build_dataset
from bulkport.testing.datapress.store import DataPressStore, iso

DEFAULT_API_KEY = "simulator-key"

__all__ = ["DEFAULT_API_KEY", "create_datapress_app", "export_entry"]


async def whoami(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    store: DataPressStore = request.app["store"]
    return json_response(store.whoami(user) if user is not None else None)


async def site_settings(request: web.Request) -> web.StreamResponse:
    """``GET {prefix}/site``: the site settings, with the mastheads and topics by id (the
    documented shape; the design settings stay empty here)."""
    store: DataPressStore = request.app["store"]

    def by_id(titles: Mapping[str, str]) -> dict[str, Any]:
        return {key: {"img": "", "title": title} for key, title in titles.items()}

    return json_response({
        "title": "DataPress Simulator", "mastheads": by_id(store.mastheads),
        "topics": by_id(store.topics), "searchFilters": ["topic", "format", "tag"],
        "licences": [], "design": {}, "customFields": {}, "id": store.site,
        "hostname": request.host, "https": request.secure})


async def list_teams(request: web.Request) -> web.StreamResponse:
    """Every team by id: ``GET /api/team`` (v4.0 docs, users as ids) or
    ``GET /api/v3/teams`` (newer docs, users as ``{id, manager}``)."""
    store: DataPressStore = request.app["store"]
    newer = request.app["prefix"] != "/api"
    return json_response({team_id: {**team, "users": [
        {"id": user, "manager": False} if newer else user for user in team["users"]]}
        for team_id, team in store.teams.items()})


async def get_dataset(request: web.Request) -> web.StreamResponse:
    dataset, _ = dataset_for(request, edit=False)
    return json_response(render_dataset(request.app["store"], dataset, base_url(request)))


async def patch_dataset(request: web.Request) -> web.StreamResponse:
    store: DataPressStore = request.app["store"]
    dataset, user = dataset_for(request, edit=True)
    operations = await read_json(request)
    base = base_url(request)
    # The patch applies to the document as GET shows it, so a ``test`` sees the same.
    shown = render_dataset(store, dataset, base)
    try:
        patched = apply_patch(shown, operations)
    except PatchFailed as error:
        raise invalid(error.issues, "The patch could not be applied.") from None
    new, issues = build_dataset(store, patched, shown, dataset_id=dataset["id"], now=iso(),
                                reject_immutable=request.app["reject_immutable"])
    if issues:
        raise invalid(issues)
    if new["team"] != dataset["team"] and not store.can_edit(user, new["team"]):
        raise forbidden(f"API key does not have editor permissions on team {new['team']}.")
    store.drop_unreferenced(dataset, new)
    store.datasets[dataset["id"]] = new
    return json_response({"dataset": render_dataset(store, new, base)})


async def create_dataset(request: web.Request) -> web.StreamResponse:
    store: DataPressStore = request.app["store"]
    user = current_user(request)
    if user is None:
        raise forbidden("API key does not have editor permissions.")
    new, issues = build_dataset(store, await read_json(request), None,
                                dataset_id=store.new_id(), now=iso())
    if issues:
        raise invalid(issues)
    if not store.can_edit(user, new["team"]):
        raise forbidden(f"API key does not have editor permissions on team {new['team']}.")
    store.datasets[new["id"]] = new
    return json_response({"dataset": render_dataset(store, new, base_url(request))})


def export_entry(store: DataPressStore, dataset: dict[str, Any], base: str) -> dict[str, Any]:
    """One dataset of ``export.json``: the dataset JSON with its ``webpage``, resources and
    links as lists in page order (ids inside), masthead, topics and team as ``{id, title}``.
    """
    def listed(items: dict[str, Any], render: Any) -> list[dict[str, Any]]:
        ordered = sorted(items.items(), key=lambda item: item[1]["order"])
        return [{"id": item_id, **render(item_id, item)} for item_id, item in ordered]

    def titled(item_id: str, titles: Mapping[str, str]) -> dict[str, Any]:
        return {"id": item_id, "title": titles.get(item_id, item_id)}

    teams = {team_id: team["title"] for team_id, team in store.teams.items()}
    return {"webpage": f"{base}/dataset/{dataset['id']}", **dataset,
            "masthead": titled(dataset["masthead"], store.mastheads),
            "topics": [titled(topic, store.topics) for topic in dataset["topics"]],
            "team": titled(dataset["team"], teams),
            "resources": listed(dataset["resources"], lambda rid, res: render_resource(
                store, dataset["id"], rid, res, base)),
            "links": listed(dataset["links"], lambda _, link: link)}


async def export(request: web.Request) -> web.StreamResponse:
    """The whole catalogue the key may read, one JSON array written as it is made."""
    store: DataPressStore = request.app["store"]
    user = current_user(request)
    base = base_url(request)
    response = web.StreamResponse()
    response.content_type = "application/json"
    await response.prepare(request)
    datasets = list(store.datasets.values())  # a snapshot: writes may land meanwhile
    # An injected drop after the handler cuts the array half-way, as a real one would.
    cut = len(datasets) // 2 if request.get(DROP_AFTER_KEY) else None
    buffer = bytearray(b"[")
    first = True
    for index, dataset in enumerate(datasets):
        if index == cut:
            await response.write(bytes(buffer))
            drop_connection(request)
            return response
        if not store.can_read(user, dataset):
            continue
        if not first:
            buffer += b","
        buffer += orjson.dumps(export_entry(store, dataset, base))
        first = False
        if len(buffer) >= CHUNK:
            await response.write(bytes(buffer))
            buffer.clear()
    buffer += b"]"
    await response.write(bytes(buffer))
    await response.write_eof()
    return response


def _routes(prefix: str) -> list[tuple[str, str, Any, str]]:
    """(method, path, handler, stats label) of every route."""
    routes = [
        ("GET", f"{prefix}/whoami", whoami, "whoami"),
        ("GET", f"{prefix}/site", site_settings, "site"),
        ("GET", "/api/team" if prefix == "/api" else f"{prefix}/teams", list_teams, "teams"),
        ("GET", f"{prefix}/dataset/{{id}}", get_dataset, "get"),
        ("PATCH", f"{prefix}/dataset/{{id}}", patch_dataset, "patch"),
        # The docs give create one path, whatever the other routes' generation.
        ("POST", "/api/dataset", create_dataset, "create"),
        ("POST", f"{prefix}/dataset/{{id}}/upload", start_upload, "upload"),
        ("POST", f"{prefix}/upload/{{uuid}}/chunk", upload_chunk, "chunk"),
        ("POST", f"{prefix}/upload/{{uuid}}/complete", complete_upload, "complete"),
        ("GET", f"{prefix}/datasets/export.json", export, "export"),
        ("GET", "/download/{id}/{resource_id}/{filename}", download, "download"),
        ("GET", "/dataset/{id}", dataset_page, "page"),
        ("GET", "/dataset/{id}/{slug}", dataset_page, "page"),
    ]
    if prefix == "/api":  # the v4.0 docs' single-request upload and replace
        routes += [("POST", "/api/dataset/{id}/resources", upload_resource, "upload"),
                   ("POST", "/api/dataset/{id}/resources/{resource_id}", upload_resource,
                    "upload")]
    return routes


def create_datapress_app(store: DataPressStore | None = None, *,
                         api_keys: Mapping[str, int] | None = None, prefix: str = "/api/v3",
                         faults: Faults | None = None, min_part_size: int = PART_SIZE,
                         reject_immutable: bool = False) -> web.Application:
    """Build the DataPress simulator.

    Args:
        store: the site's content (a new empty one by default); ``app["store"]``.
        api_keys: more keys, key → id of a user of the store. When neither these nor the
            store hold any key, an admin user is made with the key ``"simulator-key"``.
        prefix: ``"/api/v3"`` (newer docs, official client) or ``"/api"`` (v4.0 docs).
        faults: latency and errors to inject.
        min_part_size: bytes every part of a chunked upload but the last must have (the
            client's 5 MiB by default; tests may lower it).
        reject_immutable: answer a PATCH of an immutable field with a 400 instead of
            ignoring the edit (the documented behaviour).

    Returns:
        The application, with ``app["store"]`` and ``app["stats"]``.

    Raises:
        ValueError: a key of ``api_keys`` names no user of the store.
    """
    store = store if store is not None else DataPressStore()
    if api_keys is not None:
        unknown = set(api_keys.values()) - set(store.users)
        if unknown:
            raise ValueError(f"api_keys name users the store does not have: {sorted(unknown)}")
        store.keys.update(api_keys)
    elif not store.keys:
        store.add_user("Simulator Admin", "admin@example.org", admin=True, key=DEFAULT_API_KEY)
    prefix = "/" + prefix.strip("/")
    routes = _routes(prefix)
    app = build_app(route_label, faults=faults, error_body=datapress_error_body,
                    extra_middlewares=(error_middleware,), store=store, stats=store.stats,
                    prefix=prefix, min_part_size=min_part_size,
                    reject_immutable=reject_immutable,
                    labels={handler: label for _, _, handler, label in routes})
    resources: dict[str, web.Resource] = {}
    for method, path, handler, _ in routes:
        if path not in resources:
            resources[path] = app.router.add_resource(path)
        resources[path].add_route(method, handler)
    return app
