"""PortalJS Cloud simulator: the CKAN simulator under ``/@{portal}``, plus presigned uploads.

One aiohttp application answers two origins on the same port, told apart by the ``Host``
header: the API (``http://127.0.0.1:PORT/@demo/api/3/action/{name}``, ``Authorization:
<key>``) and an S3-like object store (``http://localhost:PORT/{bucket}/{key}``, presigned
URLs only). ``localhost`` and ``127.0.0.1`` reach the same socket but are different origins,
so a client that binds its key to the API's origin must never send it to the store; tests
can check ``app["objects"].authorization_headers``. Serve the app on ``127.0.0.1`` (what
:func:`~bulkport.testing.core.server.serve` and ``ThreadedServer`` do) or pick another
``object_host`` that resolves to the same address.

Upload flow (PortalJS Cloud's API guide): ``resource_create`` (JSON) → ``resource_upload
{id, filename}`` → ``result.presigned_url`` → ``PUT`` the bytes there (``Content-Length``,
no ``Authorization``) → ``resource_upload_finalize {id}``: the resource becomes a hosted
file (``url_type`` upload, ``size``, ``hash`` = hex SHA-256, ``mimetype``), downloaded from
``/@demo/dataset/{id}/resource/{rid}/download/{name}``, which redirects (302) to a
presigned GET on the object store.

Pages: CKAN's own dataset pages under the API (``/@demo/dataset/{name}``, as
:mod:`bulkport.testing.ckan.pages`), and the portal's public site on the API's origin: the
dataset pages of PortalJS Cloud's frontend, ``/@{organization}/{name}``, which show public
datasets only (the frontend reads the API without a key) and answer 404 when the
organization is not the dataset's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from bulkport.testing.ckan.actions import (
    Action,
    Context,
    as_input,
    get_or_bust,
    require_user,
    resource_owner,
    write_package,
)
from bulkport.testing.ckan.app import (
    DEFAULT_API_KEY,
    DEFAULT_USER,
    PAGE_ROUTE,
    CkanConfig,
    add_key_holders,
    dataset_page,
    handle_action,
    request_user,
    site_actions,
)
from bulkport.testing.ckan.errors import ValidationError, ckan_error_body
from bulkport.testing.ckan.model import guess_mimetype, munge_filename, now_iso, resource_out
from bulkport.testing.ckan.pages import download_of, not_found, page_html, readable
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.ckan.validate import build_organization
from bulkport.testing.core.app import build_app
from bulkport.testing.core.faults import Faults
from bulkport.testing.core.responses import base_url
from bulkport.testing.core.s3 import MAX_PUT_SIZE, ObjectStore, Signer

_HOSTED = re.compile(r"resources/([0-9a-f-]{36})/([^/]+)$")
FRONTEND_ROUTE = "frontend_page"


@dataclass
class PortalJsConfig(CkanConfig):
    """CKAN's settings plus the portal's name and its presigned-upload settings."""

    portal: str = "demo"
    url_ttl: int = 3600
    object_host: str = "localhost"
    objects: ObjectStore | None = None
    # resource id → object key of the latest resource_upload not yet finalized
    pending: dict[str, str] = field(default_factory=dict)

    def object_origin(self, base: str) -> str:
        """The object store's origin for a client that reached the API at ``base``."""
        parts = urlsplit(base)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{self.object_host}{port}"


def _config(ctx: Context) -> tuple[PortalJsConfig, ObjectStore]:
    config = ctx.config
    assert isinstance(config, PortalJsConfig) and config.objects is not None
    return config, config.objects


def resource_upload(ctx: Context, data: dict[str, Any]) -> Any:
    """``{id, filename}`` → ``{"presigned_url"}``: a fresh URL to PUT the file to."""
    require_user(ctx, "resource_upload")
    config, objects = _config(ctx)
    res_id = str(get_or_bust(data, "id"))
    resource_owner(ctx, res_id)
    filename = munge_filename(str(get_or_bust(data, "filename")))
    # A new key per request: an older URL can no longer change what finalize takes.
    key = f"api_uploads/{res_id}/{ctx.store.new_id()}/{filename}"
    previous = config.pending.get(res_id)
    if previous is not None:
        objects.delete(previous)
    config.pending[res_id] = key
    url = objects.presign("PUT", config.object_origin(ctx.base), key, config.url_ttl)
    return {"presigned_url": url}


def resource_upload_finalize(ctx: Context, data: dict[str, Any]) -> Any:
    """``{id}`` → the resource, now a hosted file made of the bytes PUT to the URL.

    Finalizing twice is harmless (the second call changes nothing); finalizing before the
    PUT is a validation error, as is finalizing without a ``resource_upload``.
    """
    require_user(ctx, "resource_upload_finalize")
    config, objects = _config(ctx)
    res_id = str(get_or_bust(data, "id"))
    pkg, index = resource_owner(ctx, res_id)
    key = config.pending.get(res_id)
    res = pkg["resources"][index]
    if key is None:
        if res.get("url_type") == "upload" and res_id in ctx.store.blobs:
            return resource_out(res, ctx.base)
        raise ValidationError({"upload": ["No upload in progress for this resource: call "
                                          "resource_upload first"]})
    blob = ctx.store.blobs.get(objects.blob_key(key))
    if blob is None:
        raise ValidationError({"upload": ["No file was uploaded to the presigned URL"]})
    filename = key.rsplit("/", 1)[-1]
    content_type = objects.content_types.get(key, "")
    resources = list(pkg["resources"])
    resources[index] = {
        **resource_out(res, ctx.base), "url": filename, "url_type": "upload",
        "size": blob.size, "hash": blob.sha256, "last_modified": now_iso(),
        "mimetype": guess_mimetype(filename) or (
            content_type if content_type not in ("", "binary/octet-stream") else None)}
    saved = write_package(ctx, {**as_input(pkg), "resources": resources}, pkg)
    ctx.store.blobs.rename(objects.blob_key(key), res_id)
    objects.forget(key)
    del config.pending[res_id]
    return resource_out(saved["resources"][index], ctx.base)


PORTALJS_ACTIONS: dict[str, tuple[Action, bool]] = {
    "resource_upload": (resource_upload, False),
    "resource_upload_finalize": (resource_upload_finalize, False),
}


def _hostname(request: web.Request) -> str:
    host = request.host
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if ":" in host else host


def _label(request: web.Request) -> str:
    if _hostname(request) == request.app["config"].object_host:
        return "s3:" + request.method.lower()
    route = request.match_info.route.name
    if route in (PAGE_ROUTE, FRONTEND_ROUTE):
        return "portaljs:page" if route == PAGE_ROUTE else "portaljs:frontend"
    if "name" in request.match_info:
        return "portaljs:" + request.match_info["name"]
    if "resource_id" in request.match_info:
        return "portaljs:download"
    return "portaljs:other"


@web.middleware
async def _object_origin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests to the object host go to the object store, whatever their path."""
    if _hostname(request) == request.app["config"].object_host:
        objects: ObjectStore = request.app["objects"]
        return await objects.handle(request)
    return await handler(request)


async def _download(request: web.Request) -> web.StreamResponse:
    store: CkanStore = request.app["store"]
    config: PortalJsConfig = request.app["config"]
    user = request_user(request, config, store)
    res_id = request.match_info["resource_id"]
    res = download_of(store, user, request.match_info["id"], res_id)
    if isinstance(res, web.Response):
        return res
    if res.get("url_type") == "upload" and res_id in store.blobs:
        key = f"resources/{res_id}/{res['url']}"
        base = f"{request.scheme}://{request.host}"
        raise web.HTTPFound(request.app["objects"].presign(
            "GET", config.object_origin(base), key, config.url_ttl))
    if res.get("url") and res.get("url_type") != "upload":
        raise web.HTTPFound(res["url"])
    raise web.HTTPNotFound(text="No download is available")


async def _frontend_page(request: web.Request) -> web.StreamResponse:
    """``/@{org}/{dataset}``: the portal site's page of a public dataset of ``org``."""
    store: CkanStore = request.app["store"]
    config: PortalJsConfig = request.app["config"]
    pkg = readable(store, None, request.match_info["dataset"])
    org = store.organizations.get((pkg or {}).get("owner_org") or "")
    if pkg is None or org is None or org["name"] != request.match_info["org"]:
        return not_found("This page could not be found.")
    return web.Response(text=page_html(pkg, config.site_title,
                                       base_url(request) + request.app["root_path"]),
                        content_type="text/html")


def _ensure_portal_org(store: CkanStore, portal: str) -> None:
    # PortalJS Cloud's guide passes the portal's name as owner_org.
    if portal not in store.org_names:
        store.save_org(build_organization({"name": portal, "title": portal},
                                          name_taken=lambda _: False, new_id=store.new_id))


def create_portaljs_app(store: CkanStore | None = None, *, portal: str = "demo",
                        api_keys: dict[str, str] | None = None,
                        sysadmins: set[str] | None = None, faults: Faults | None = None,
                        url_ttl: int = 3600, object_host: str = "localhost",
                        max_object_size: int = MAX_PUT_SIZE,
                        max_resource_size: int = 10 * 1024 * 1024, rows_max: int = 1000,
                        clock: Callable[[], float] = time.time) -> web.Application:
    """Build the PortalJS Cloud simulator.

    Args:
        store: the site content (a new empty one by default); ``app["store"]``. An
            organization named ``portal`` is added when missing.
        portal: the portal's name: the API is at ``/@{portal}/api/3/action/{name}``.
        api_keys: key → user name; default ``{"simulator-key": "admin"}``.
        sysadmins: user names with sysadmin rights; default every user of ``api_keys``.
        faults: latency and errors to inject, on both origins (injected errors carry
            CKAN's JSON error body on the object store too).
        url_ttl: lifetime of presigned URLs in seconds (``X-Amz-Expires``).
        object_host: the object store's host name (same port as the API); it must reach
            this server and differ from the name clients use for the API.
        max_object_size: largest body one presigned PUT takes (S3: 5 GiB).
        max_resource_size: ``ckan.max_resource_size`` for multipart uploads, in bytes.
        rows_max: ``ckan.search.rows_max``.
        clock: seconds since the epoch; tests pass a fake one to expire URLs.

    Returns:
        The app; ``app["objects"]`` is the :class:`~bulkport.testing.core.s3.ObjectStore`
        (``authorization_headers``, ``etags``, ``content_types``), ``app["config"].pending``
        the uploads awaiting finalize, and ``app["stats"]`` counts ``portaljs:<action>``,
        ``portaljs:download``, ``s3:put``, ``s3:get`` and ``s3:head``.
    """
    if not re.fullmatch(r"[a-z0-9_-]{2,100}", portal):
        raise ValueError(f"portal must be a CKAN name, got {portal!r}")
    store = store if store is not None else CkanStore()
    _ensure_portal_org(store, portal)
    keys = dict(api_keys) if api_keys is not None else {DEFAULT_API_KEY: DEFAULT_USER}

    def hosted(key: str) -> str | None:
        # A hosted file is the object resources/{id}/{file name}.
        found = _HOSTED.match(key)
        if found is None:
            return None
        res_id, filename = found[1], found[2]
        owner = store.packages.get(store.resources.get(res_id, ""))
        res = next((r for r in (owner or {}).get("resources", []) if r["id"] == res_id), None)
        ok = res is not None and res.get("url_type") == "upload" and res.get("url") == filename
        return res_id if ok else None

    objects = ObjectStore(store.blobs, Signer(clock=clock), bucket=f"portaljs-{portal}",
                          max_size=max_object_size, alias=hosted)
    config = PortalJsConfig(
        api_keys=keys, sysadmins=set(sysadmins) if sysadmins is not None else set(keys.values()),
        rows_max=rows_max, max_resource_size=max_resource_size, site_title=f"{portal} (PortalJS)",
        portal=portal, url_ttl=url_ttl, object_host=object_host, objects=objects)
    add_key_holders(store, config)
    app = build_app(_label, faults=faults, error_body=ckan_error_body,
                    extra_middlewares=(_object_origin,), store=store, stats=store.stats,
                    config=config, objects=objects,
                    actions={**site_actions(), **PORTALJS_ACTIONS}, root_path=f"/@{portal}")
    for prefix in (f"/@{portal}/api/3/action", f"/@{portal}/api/action"):
        app.router.add_route("GET", prefix + "/{name}", handle_action)
        app.router.add_route("POST", prefix + "/{name}", handle_action)
    app.router.add_get(f"/@{portal}/dataset/{{id}}", dataset_page, name=PAGE_ROUTE)
    download = f"/@{portal}/dataset/{{id}}/resource/{{resource_id}}/download"
    app.router.add_get(download + "/{filename}", _download)
    app.router.add_get(download, _download)
    app.router.add_get("/@{org}/{dataset}", _frontend_page, name=FRONTEND_ROUTE)
    return app
