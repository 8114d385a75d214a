"""DataPress simulator: the public dataset pages a person opens.

A dataset's page is ``/dataset/{id}`` (the ``webpage`` of ``export.json``) and, with a
slug made from the title, ``/dataset/{id}/{slug}`` (the "friendly webpage URL" of the
dataset JSON docs). The docs do not say how the slug is made, so any slug is served. The
page lists the dataset's files at their ``url`` and its links. A private dataset needs a
key that may read it, as the API does; an unknown id is a 404.
"""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from bulkport.testing.core.responses import base_url
from bulkport.testing.datapress.http import dataset_for, render_dataset


def _items(items: dict[str, Any], url_key: str) -> str:
    ordered = sorted(items.values(), key=lambda item: item.get("order") or 0)
    return "".join(f'<li><a href="{escape(str(item.get(url_key) or ""))}">'
                   f'{escape(str(item.get("title") or ""))}</a></li>' for item in ordered)


async def dataset_page(request: web.Request) -> web.StreamResponse:
    """``GET /dataset/{id}[/{slug}]``: the dataset's page, in HTML."""
    dataset, _ = dataset_for(request, edit=False)
    shown = render_dataset(request.app["store"], dataset, base_url(request))
    title = escape(str(shown.get("title") or shown["id"]))
    body = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1><h2>Files</h2><ul>{_items(shown['resources'], 'url')}</ul>"
            f"<h2>Links</h2><ul>{_items(shown['links'], 'url')}</ul></body></html>")
    return web.Response(text=body, content_type="text/html")
