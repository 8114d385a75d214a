"""Opendatasoft simulator: what a visitor of the domain's portal reaches without a key.

- ``GET /explore/dataset/{dataset_id}/``: the dataset's page (HTML), as its catalog links
  to it;
- ``GET /backoffice/catalog/datasets/{dataset_id}/``: its page in the back office, published
  or not, for a user who may edit it (a caller with a valid key); a visitor is sent to the
  login page, ``/login/?next=...``, instead;
- ``GET /api/explore/v2.1/catalog/datasets/{dataset_id}/attachments``: the Explore API's
  list of its attachments, each with its own id (made from the file name, not the
  Automation API's ``uid``) and the ``href`` it downloads from;
- ``GET /api/datasets/1.0/{dataset_id}/attachments/{attachment_id}/`` (the Information
  tab's link) and ``GET /api/v2/catalog/datasets/{dataset_id}/attachments/{attachment_id}``
  (the ``href`` the list states): the attachment's bytes.

Like the domain, the others show published datasets only, and a restricted one to a caller
with a valid key only; anything else is a 404.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from bulkport.testing.core.responses import json_response, stream_blob
from bulkport.testing.ods.errors import OdsError
from bulkport.testing.ods.store import FileRecord, OdsDataset, OdsStore, attachment_id

V2_ATTACHMENT = "/api/v2/catalog/datasets/{dataset_id}/attachments/{attachment_id}"


def _visible(request: web.Request) -> OdsDataset:
    """The published dataset the path names, if the caller may see it."""
    store: OdsStore = request.app["store"]
    dataset_id = request.match_info["dataset_id"]
    dataset = store.by_dataset_id(dataset_id)
    anonymous = request.get("ods_user") is None
    if dataset is None or not dataset.is_published or (anonymous and dataset.is_restricted):
        raise OdsError(404, "NoSuchDatasetException", f"Unknown dataset: {dataset_id}")
    return dataset


def _public_id(record: FileRecord) -> str:
    return record.public_id or attachment_id(record.filename)


async def dataset_page(request: web.Request) -> web.StreamResponse:
    """The dataset's page, titled as published (the portal shows the published metadata);
    a page that says so, with a 404, for a dataset the caller cannot see."""
    try:
        dataset = _visible(request)
    except OdsError:
        return web.Response(status=404, content_type="text/html", text=(
            "<!DOCTYPE html>\n<html><head><title>Page not found</title></head><body>"
            "<h1>Page not found</h1></body></html>\n"))
    shown = dataset.published_metadata or dataset.metadata
    default = shown.get("default") or {}
    title = html.escape(str((default.get("title") or {}).get("value") or dataset.dataset_id))
    description = html.escape(str((default.get("description") or {}).get("value") or ""))
    body = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
            f"</head><body><h1>{title}</h1><p>{description}</p></body></html>\n")
    return web.Response(text=body, content_type="text/html")


def _html_page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(status=status, content_type="text/html", text=(
        f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
        f"<body>{body}</body></html>\n"))


async def backoffice_page(request: web.Request) -> web.StreamResponse:
    """The dataset's page in the back office, as its editors see it now (published or not);
    a visitor is sent to log in first."""
    if request.get("ods_user") is None:
        raise web.HTTPFound("/login/?" + urlencode({"next": request.path}))
    dataset = request.app["store"].by_dataset_id(request.match_info["dataset_id"])
    if dataset is None:
        return _html_page("Page not found", "<h1>Page not found</h1>", status=404)
    default = dataset.metadata.get("default") or {}
    title = html.escape(str((default.get("title") or {}).get("value") or dataset.dataset_id))
    state = "published" if dataset.is_published else "not published"
    return _html_page(title, f"<h1>{title}</h1><p>{state}</p>")


async def login_page(request: web.Request) -> web.StreamResponse:
    return _html_page("Log in", "<h1>Log in</h1><form method=\"post\"></form>")


async def list_attachments(request: web.Request) -> web.StreamResponse:
    """``{"_links": [], "attachments": [{"href", "metas": {...}}]}``, as v2.1 lists them."""
    dataset = _visible(request)
    origin = str(request.url.origin())
    listed: list[dict[str, Any]] = []
    for record in dataset.attachments.values():
        public_id = _public_id(record)
        href = origin + V2_ATTACHMENT.format(dataset_id=quote(dataset.dataset_id),
                                             attachment_id=quote(public_id))
        listed.append({"href": href, "metas": {
            "mime-type": record.mimetype or "application/octet-stream",
            "title": record.filename, "url": f"odsfile://{record.filename}", "id": public_id}})
    return json_response({"_links": [], "attachments": listed})


async def download_attachment(request: web.Request) -> web.StreamResponse:
    """The attachment's bytes, under its file name."""
    dataset = _visible(request)
    wanted = request.match_info["attachment_id"]
    record = next((a for a in dataset.attachments.values() if _public_id(a) == wanted), None)
    blob = request.app["store"].blobs.get(record.uid) if record is not None else None
    if record is None or blob is None:
        raise OdsError(404, "NoSuchAttachmentException", f"Unknown attachment: {wanted}")
    ascii_name = record.filename.encode("ascii", "replace").decode().replace('"', "_")
    disposition = (f'attachment; filename="{ascii_name}"; '
                   f"filename*=UTF-8''{quote(record.filename)}")
    return await stream_blob(request, blob,
                             content_type=record.mimetype or "application/octet-stream",
                             headers={"Content-Disposition": disposition})


# HEAD too, as a link checker may ask (aiohttp leaves the body out).
ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/explore/dataset/{dataset_id}/", {"GET": dataset_page, "HEAD": dataset_page}),
    ("/backoffice/catalog/datasets/{dataset_id}/", {"GET": backoffice_page,
                                                    "HEAD": backoffice_page}),
    ("/login/", {"GET": login_page}),
    ("/api/explore/v2.1/catalog/datasets/{dataset_id}/attachments", {"GET": list_attachments}),
    ("/api/datasets/1.0/{dataset_id}/attachments/{attachment_id}/",
     {"GET": download_attachment, "HEAD": download_attachment}),
    (V2_ATTACHMENT, {"GET": download_attachment, "HEAD": download_attachment}),
]
