"""CKAN Action API simulator (CKAN 2.10/2.11 semantics) over an in-memory store.

Routes: ``/api/3/action/{name}`` (and ``/api/action/{name}``), GET or POST, the dataset
pages at ``/dataset/{id}`` (:mod:`.pages`) and hosted files at
``/dataset/{id}/resource/{resource_id}/download/{filename}``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_DISPOSITION
from aiohttp.multipart import content_disposition_filename, parse_content_disposition
from multidict import MultiMapping

from bulkport.testing.ckan.actions import ACTIONS, Action, Context, RawResult, Upload
from bulkport.testing.ckan.errors import ActionError, BadRequest, ValidationError, ckan_error_body
from bulkport.testing.ckan.model import guess_mimetype, munge_filename
from bulkport.testing.ckan.pages import download_of, not_found, page_reply, readable
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.ckan.write import WRITE_ACTIONS
from bulkport.testing.core.app import build_app
from bulkport.testing.core.faults import Faults
from bulkport.testing.core.files import BlobTooLarge
from bulkport.testing.core.responses import base_url, json_response, stream_blob

DEFAULT_API_KEY = "simulator-key"
PAGE_ROUTE = "dataset_page"  # the route's name, for the request counters
DEFAULT_USER = "admin"
_NGINX_413 = ("<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
              "<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx"
              "</center>\r\n</body>\r\n</html>\r\n")


@dataclass
class CkanConfig:
    """The site settings the simulator honours."""

    api_keys: dict[str, str]
    sysadmins: set[str]
    header_name: str = "Authorization"
    rows_max: int = 1000
    search_requires_post: bool = False
    max_resource_size: int = 10 * 1024 * 1024
    create_unowned_dataset: bool = False
    proxy_max_body_size: int | None = None
    site_title: str = "CKAN simulator"
    create_race: float = 0.0
    create_race_reply: str = "200"


def site_actions() -> dict[str, tuple[Action, bool]]:
    """Every Action API function a CKAN site serves: name → (function, side_effect_free)."""
    return {**ACTIONS, **WRITE_ACTIONS}


def add_key_holders(store: CkanStore, config: CkanConfig) -> None:
    """Every user a configured key belongs to is a user of the site (``user_list`` shows them)."""
    for name in sorted({*config.api_keys.values(), *config.sysadmins}):
        store.accounts.add_user(name, sysadmin=name in config.sysadmins)


def create_ckan_app(store: CkanStore | None = None, *, api_keys: dict[str, str] | None = None,
                    sysadmins: set[str] | None = None, header_name: str = "Authorization",
                    rows_max: int = 1000, faults: Faults | None = None,
                    search_requires_post: bool = False,
                    max_resource_size: int = 10 * 1024 * 1024,
                    create_unowned_dataset: bool = False,
                    proxy_max_body_size: int | None = None, create_race: float = 0.0,
                    create_race_reply: str = "200") -> web.Application:
    """Build the CKAN simulator.

    Args:
        store: the site content (a new empty one by default); ``app["store"]``.
        api_keys: token → user name; default ``{"simulator-key": "admin"}``.
        sysadmins: user names with sysadmin rights; default every user of ``api_keys``.
            Other users may create and edit datasets in any organization (as editors).
        header_name: where the token is read (``apitoken_header_name``), raw, no scheme.
        rows_max: ``ckan.search.rows_max``: ``rows`` is silently clamped to it.
        faults: latency and errors to inject.
        search_requires_post: refuse GET ``package_search`` with a 405, as some proxies do.
        max_resource_size: ``ckan.max_resource_size`` in bytes (CKAN's default: 10 MB).
        proxy_max_body_size: the reverse proxy's ``client_max_body_size`` in bytes (nginx's
            default is 1 MiB); a bigger declared body gets nginx's 413 HTML page before
            CKAN sees it. None (the default): no proxy limit.
        create_unowned_dataset: ``ckan.auth.create_unowned_dataset`` (default False: a
            dataset needs an ``owner_org``).
        create_race: seconds between a ``package_create``'s validation and its write, as
            on a real CKAN with several workers: overlapping creates of one name all pass
            validation, and each later one overwrites the first (a 200 with the same id and
            its own body) or, with ``create_race_reply="500"``, fails with a 500. 0 (the
            default): creates run one at a time and a second one gets a clean 409.
    """
    store = store if store is not None else CkanStore()
    keys = dict(api_keys) if api_keys is not None else {DEFAULT_API_KEY: DEFAULT_USER}
    config = CkanConfig(
        api_keys=keys, sysadmins=set(sysadmins) if sysadmins is not None else set(keys.values()),
        header_name=header_name, rows_max=rows_max, search_requires_post=search_requires_post,
        max_resource_size=max_resource_size, create_unowned_dataset=create_unowned_dataset,
        proxy_max_body_size=proxy_max_body_size, create_race=create_race,
        create_race_reply=create_race_reply)
    add_key_holders(store, config)
    app = build_app(_label, faults=faults, error_body=ckan_error_body, store=store,
                    stats=store.stats, config=config, actions=site_actions(), root_path="")
    for prefix in ("/api/3/action", "/api/action"):
        app.router.add_route("GET", prefix + "/{name}", handle_action)
        app.router.add_route("POST", prefix + "/{name}", handle_action)
    app.router.add_get("/dataset/{id}", dataset_page, name=PAGE_ROUTE)
    app.router.add_get("/dataset/{id}/resource/{resource_id}/download/{filename}", _download)
    app.router.add_get("/dataset/{id}/resource/{resource_id}/download", _download)
    return app


def _label(request: web.Request) -> str:
    if request.match_info.route.name == PAGE_ROUTE:
        return "ckan:page"
    if "name" in request.match_info:
        return "ckan:" + request.match_info["name"]
    if "resource_id" in request.match_info:
        return "ckan:download"
    return "ckan:other"


def request_user(request: web.Request, config: CkanConfig, store: CkanStore) -> str | None:
    """The name of the user whose key or token the request carries; None when anonymous."""
    # CKAN 2.10+: a token that decodes to no user leaves the request anonymous (no error).
    token = request.headers.get(config.header_name, "")
    if not token:
        return None
    if token in config.api_keys:
        return config.api_keys[token]
    user = store.accounts.user_for_token(token)
    return user.name if user is not None else None


def _is_sysadmin(user: str | None, config: CkanConfig, store: CkanStore) -> bool:
    account = store.accounts.users.get(user or "")
    return user is not None and (user in config.sysadmins or bool(account and account.sysadmin))


def _mixed(values: MultiMapping[object]) -> dict[str, Any]:
    """CKAN's ``mixed``: repeated keys become lists."""
    out: dict[str, Any] = {}
    for key in dict.fromkeys(values):
        items = values.getall(key)
        out[key] = items[0] if len(items) == 1 else list(items)
    return out


async def _read_multipart(request: web.Request, store: CkanStore,
                          config: CkanConfig) -> tuple[dict[str, Any], dict[str, Upload]]:
    data: dict[str, Any] = {}
    uploads: dict[str, Upload] = {}
    reader = await request.multipart()
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            # Parsed once: aiohttp's part.name and part.filename each parse it again.
            _, params = parse_content_disposition(part.headers.get(CONTENT_DISPOSITION))
            name, filename = params.get("name"), content_disposition_filename(params, "filename")
            if name is None:
                continue
            if filename is None:
                data[name] = (await part.read()).decode("utf-8", "replace")
                continue
            # CKAN hands every file field to the action; only ``upload`` (resource_*) and
            # ``update__...`` (package_revise) are read by one, and the first of each counts.
            if name in uploads or not (name == "upload" or name.startswith("update__")):
                continue
            key = f"upload:{uuid.uuid4()}"

            async def chunks(part: BodyPartReader = part) -> AsyncIterator[bytes]:
                while chunk := await part.read_chunk(65536):
                    yield chunk

            try:
                blob = await store.blobs.write(key, chunks(), max_size=config.max_resource_size)
            except BlobTooLarge:
                # ckan/lib/uploader.py _copy_file: a ValidationError, so a 409.
                raise ValidationError({"upload": ["File upload too large"]}) from None
            uploads[name] = Upload(key=key, filename=filename, size=blob.size,
                                        mimetype=guess_mimetype(munge_filename(filename)))
    except BaseException:
        for upload in uploads.values():
            store.blobs.delete(upload.key)
        raise
    return data, uploads


async def _read_data(request: web.Request, side_effect_free: bool, store: CkanStore,
                     config: CkanConfig) -> tuple[dict[str, Any], dict[str, Upload]]:
    """The action's input, read the way ``ckan/views/api.py`` reads it."""
    if request.method == "GET":
        if not side_effect_free:
            raise BadRequest("JSON Error: Invalid request. Please use POST method for your "
                             "request")
        return _mixed(request.query), {}
    content_type = request.content_type  # parsed anew on each access
    if content_type == "multipart/form-data":
        return await _read_multipart(request, store, config)
    if content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        values = list(form.values())
        if len(form) == 1 and values[0] in ("1", ""):  # a JSON document posted as a form key
            return _decode(next(iter(form.keys())).encode()), {}
        return _mixed(form), {}
    if side_effect_free and request.query:
        return _mixed(request.query), {}
    body = await request.read()
    return (_decode(body) if body.strip() else {}), {}


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"JSON Error: Error decoding JSON data. Error: {error!r} JSON data "
                         "extracted from the request: {}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"JSON Error: Request data JSON decoded to {data!r} but it needs to "
                         "be a dictionary.")
    return data


async def handle_action(request: web.Request) -> web.StreamResponse:
    """``{root}/api/3/action/{name}``: run the action, reply as ``ckan/views/api.py`` does.

    The app holds ``store``, ``config``, ``actions`` (the table to serve) and ``root_path``
    (a site served under a path, e.g. ``/@portal``: links and help URLs carry it).
    """
    store: CkanStore = request.app["store"]
    config: CkanConfig = request.app["config"]
    limit = config.proxy_max_body_size  # the proxy answers before CKAN sees anything
    if limit is not None and (request.content_length or 0) > limit:
        return web.Response(status=413, content_type="text/html", text=_NGINX_413)
    name = request.match_info["name"]
    entry = request.app["actions"].get(name)
    if entry is None:
        return json_response(f"Bad request - Action name not known: {name}", 400)
    func, side_effect_free = entry
    if config.search_requires_post and name == "package_search" and request.method == "GET":
        return web.Response(status=405, headers={"Allow": "POST"}, content_type="text/html",
                            text="<html><head><title>405 Not Allowed</title></head><body>"
                                 "<h1>405 Not Allowed</h1></body></html>")
    base = base_url(request) + request.app["root_path"]
    help_url = f"{base}/api/3/action/help_show?name={name}"
    uploads: dict[str, Upload] = {}
    try:
        data, uploads = await _read_data(request, side_effect_free, store, config)
        # package_revise finds its files among its data, as CKAN passes them.
        data.update({field: up for field, up in uploads.items() if field != "upload"})
        user = request_user(request, config, store)
        if "callback" in data:  # JSONP requests run anonymously
            del data["callback"]
            user = None
        ctx = Context(store=store, config=config, user=user,
                      sysadmin=_is_sysadmin(user, config, store), base=base,
                      upload=uploads.get("upload"))
        result = func(ctx, data)
        if inspect.isawaitable(result):  # an action that waits (package_create's race)
            result = await result
    except BadRequest as error:
        return json_response(error.body, 400)
    except ActionError as error:
        return json_response({"help": help_url, "success": False, "error": error.error()},
                             error.status)
    finally:
        for upload in uploads.values():  # a file an action kept was renamed away already
            store.blobs.delete(upload.key)
    if isinstance(result, RawResult):
        body = (b'{"help":' + orjson.dumps(help_url) + b',"success":true,"result":'
                + result.body + b"}")
        return web.Response(body=body, content_type="application/json")
    return json_response({"help": help_url, "success": True, "result": result})


async def dataset_page(request: web.Request) -> web.StreamResponse:
    """``{root}/dataset/{id}``: the dataset's page, as CKAN's ``dataset.read`` serves it."""
    store: CkanStore = request.app["store"]
    config: CkanConfig = request.app["config"]
    ident = request.match_info["id"]
    pkg = readable(store, request_user(request, config, store), ident)
    return page_reply(request, pkg, ident, site_title=config.site_title)


async def _download(request: web.Request) -> web.StreamResponse:
    store: CkanStore = request.app["store"]
    user = request_user(request, request.app["config"], store)
    res_id = request.match_info["resource_id"]
    res = download_of(store, user, request.match_info["id"], res_id)
    if isinstance(res, web.Response):
        return res
    if res.get("url_type") == "upload":
        blob = store.blobs.get(res_id)
        if blob is None:
            return not_found("Resource data not found")
        mimetype = res.get("mimetype") or guess_mimetype(res.get("url") or "")
        return await stream_blob(request, blob,
                                 content_type=mimetype or "application/octet-stream")
    if res.get("url"):
        raise web.HTTPFound(res["url"])
    return not_found("No download is available")
