"""Request plumbing of the DataPress simulator: route labels, keys, bodies, rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from bulkport.testing.datapress.errors import bad_request, forbidden, not_found
from bulkport.testing.datapress.store import DataPressStore, DataPressUser


def route_label(request: web.Request) -> str:
    """``"datapress:patch"``: the label the route's handler was registered with."""
    label = request.app["labels"].get(request.match_info.handler, "other")
    return f"datapress:{label}"


def current_user(request: web.Request) -> DataPressUser | None:
    """The user of the raw ``Authorization`` key (no scheme); None when anonymous."""
    store: DataPressStore = request.app["store"]
    return store.user_for_key(request.headers.get("Authorization", "").strip())


async def read_json(request: web.Request) -> Any:
    """The JSON document in the body."""
    body = await request.read()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON.") from None


def dataset_for(request: web.Request, *, edit: bool, dataset_id: str | None = None
                ) -> tuple[dict[str, Any], DataPressUser | None]:
    """The dataset of the URL and the caller, who may read it (or edit it, with ``edit``).

    Raises:
        DataPressError: 404 for an unknown id, 403 when the key may not read or edit it.
    """
    store: DataPressStore = request.app["store"]
    dataset_id = dataset_id or request.match_info["id"]
    dataset = store.datasets.get(dataset_id)
    if dataset is None:
        raise not_found(f"Dataset not found: {dataset_id}")
    user = current_user(request)
    if edit and not store.can_edit(user, dataset["team"]):
        raise forbidden("API key does not have editor permissions on this dataset.")
    if not edit and not store.can_read(user, dataset):
        raise forbidden("API key does not have read permissions to this private dataset.")
    return dataset, user


def download_path(dataset_id: str, resource_id: str, origin: str) -> str:
    """Where a hosted file is served: its name is the last part of its ``origin``."""
    filename = origin.rsplit("/", 1)[-1]
    return f"/download/{dataset_id}/{resource_id}/{quote(filename)}"


def render_resource(store: DataPressStore, dataset_id: str, resource_id: str,
                    resource: dict[str, Any], base: str) -> dict[str, Any]:
    """A resource as the API shows it: a hosted file gets its absolute ``url``."""
    origin = resource.get("origin")
    if not origin:
        return resource
    return {**resource, "hash": resource.get("hash") or store.file_md5(origin),
            "url": base + download_path(dataset_id, resource_id, origin)}


def render_dataset(store: DataPressStore, dataset: dict[str, Any],
                   base: str) -> dict[str, Any]:
    """The dataset JSON of ``GET /dataset/{id}``."""
    resources = {rid: render_resource(store, dataset["id"], rid, res, base)
                 for rid, res in dataset["resources"].items()}
    return {**dataset, "resources": resources}
