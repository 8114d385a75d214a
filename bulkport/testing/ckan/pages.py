"""What a visitor opens, as CKAN 2.12's ``dataset.read`` and ``resource.download`` views
answer: dataset pages, and who may download a file.

``GET {root}/dataset/{name}``: the page (HTML, 200). Asked for by id, a redirect (302) to
the page by name. Unknown, or not readable by the caller (a private dataset, a deleted one,
for an anonymous visitor), a 404: CKAN never reveals that a private dataset exists unless
``ckan.auth.reveal_private_datasets`` is set. The page is a stand-in: a title, the
description and a link to each resource, enough for a client to follow.

A download is another matter: an unknown resource or dataset is a 404, but a file of a
dataset the caller may not read is a 403 ("Not authorized to download resource"), as the
real tier shows (``tests/contract/test_ckan_pages.py``).
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from bulkport.testing.ckan.actions import can_read
from bulkport.testing.ckan.model import resource_out
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.responses import base_url

NOT_FOUND = "Dataset not found or you have no permission to view it"  # CKAN's words


def page_html(pkg: dict[str, Any], site_title: str, base: str) -> str:
    """A dataset's page: its title, description and resource links."""
    links = "".join(f'<li><a href="{escape(r["url"] or "")}">{escape(r.get("name") or r["id"])}'
                    "</a></li>" for r in (resource_out(res, base) for res in pkg["resources"]))
    title = escape(pkg.get("title") or pkg["name"])
    return (f"<!DOCTYPE html>\n<html><head><title>{title} - {escape(site_title)}</title></head>"
            f"<body><h1>{title}</h1><p>{escape(pkg.get('notes') or '')}</p>"
            f"<ul>{links}</ul></body></html>\n")


def not_found(message: str = NOT_FOUND) -> web.Response:
    return web.Response(status=404, content_type="text/html",
                        text=f"<html><body><h1>404 Not Found</h1><p>{escape(message)}</p>"
                             "</body></html>")


def forbidden(message: str) -> web.Response:
    return web.Response(status=403, content_type="text/html",
                        text=f"<html><body><h1>403 Forbidden</h1><p>{escape(message)}</p>"
                             "</body></html>")


def download_of(store: CkanStore, user: str | None, dataset: str,
                res_id: str) -> dict[str, Any] | web.Response:
    """The resource ``res_id`` that ``user`` may download from ``{root}/dataset/{dataset}``,
    or the refusal: CKAN runs ``resource_show`` then ``package_show`` as the caller."""
    owner = store.packages.get(store.resources.get(res_id, ""))
    res: dict[str, Any] | None = next(
        (r for r in (owner or {}).get("resources", []) if r["id"] == res_id), None)
    pkg = store.get_package(dataset)
    for found in (owner, pkg):
        if found is None or res is None:
            return not_found("Resource not found")
        if not can_read(user, found):
            return forbidden("Not authorized to download resource")
    assert res is not None
    return res


def readable(store: CkanStore, user: str | None, ident: str) -> dict[str, Any] | None:
    """The package of id or name ``ident`` if ``user`` may see it (None: not, or none)."""
    pkg = store.get_package(ident)
    return pkg if pkg is not None and can_read(user, pkg) else None


def page_reply(request: web.Request, pkg: dict[str, Any] | None, ident: str, *,
               site_title: str) -> web.StreamResponse:
    """The reply to ``GET {root}/dataset/{ident}`` when the caller may see ``pkg`` (None:
    unknown or not theirs to see); the app holds ``root_path``."""
    if pkg is None:
        return not_found()
    base = base_url(request) + request.app["root_path"]
    if ident == pkg["id"] and ident != pkg["name"]:
        raise web.HTTPFound(f"{base}/dataset/{pkg['name']}")
    return web.Response(text=page_html(pkg, site_title, base), content_type="text/html")
