"""CKAN Action API adapter (also the base of PortalJS Cloud)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from anyio.abc import ObjectSendStream

from bulkport.config import PortalConfig
from bulkport.errors import BadResponse, ValidationError
from bulkport.http import HttpClient, Response, StreamResponse, field_messages
from bulkport.mappers.ckan import package_to_dataset
from bulkport.model import Dataset, Resource
from bulkport.queue import fan_out_pages

ROWS_MAX = 1000  # CKAN's default ckan.search.rows_max


def parse_error(response: Response) -> tuple[str, dict[str, str]]:
    """CKAN's ``{"success": false, "error": {"__type", "message", field: [...]}}``."""
    try:
        error = orjson.loads(response.body).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return response.snippet() or f"HTTP {response.status}", {}
    if not isinstance(error, dict):
        return str(error), {}
    fields = field_messages(error, skip=("__type", "message"))
    message = error.get("message") or error.get("__type") or "error"
    if fields:
        message = f"{message}: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
    return str(message), fields


class CkanPortal:
    """Reads a CKAN catalog: ``package_search`` pages fanned out, files streamed."""

    def __init__(self, client: HttpClient, config: PortalConfig, *, page_size: int = ROWS_MAX) -> None:
        self.client = client
        self.config = config
        self.api = f"{config.url}/api/3/action/"
        # [source] rows wins over [options] page_size; the server may clamp it further.
        self.rows = max(1, min(int(config.get("rows", page_size)), ROWS_MAX))
        self._search_by_post = bool(config.get("search_by_post", False))
        self._seen: set[str] = set()  # ids already listed (pages can overlap when data moves)
        if config.api_key:
            client.bind(config.url, {config.auth_header: config.api_key})

    def describe(self) -> str:
        return f"CKAN {self.config.url}"

    async def call(self, action: str, params: Mapping[str, Any] | None = None,
                   *, post: bool = False, retry: bool = True) -> Any:
        """Call an action and return its ``result``."""
        url = self.api + action
        if post:
            response = await self.client.request("POST", url, json=params or {},
                                                 errors=parse_error, retry=retry)
        else:
            query = {k: str(v).lower() if isinstance(v, bool) else v
                     for k, v in (params or {}).items()}
            response = await self.client.request("GET", url, params=query, errors=parse_error)
        body = response.json()
        if not isinstance(body, dict) or "result" not in body:
            raise BadResponse(f"{url}: reply has no 'result' (is this a CKAN API?)", response.status)
        return body["result"]

    def _search_params(self, offset: int, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {
            "q": self.config.get("q", "*:*"),
            "rows": limit,
            "start": offset,
            "sort": "id asc",  # stable across pages, unlike the default score sort
            "include_private": bool(self.config.get("include_private", False)),
            "include_drafts": bool(self.config.get("include_drafts", False)),
        }
        if self.config.get("fq"):
            params["fq"] = self.config.get("fq")
        return params

    async def search_page(self, offset: int, limit: int) -> tuple[int, Sequence[Any]]:
        """One ``package_search`` page, with duplicates from earlier pages removed."""
        params = self._search_params(offset, limit)
        if not self._search_by_post:
            try:
                result = await self.call("package_search", params)
            except ValidationError as error:
                # Some deployments (or proxies) refuse GET here: 400 "use POST", 405, 414.
                if error.status not in (400, 405, 414):
                    raise
                self._search_by_post = True
        if self._search_by_post:
            result = await self.call("package_search", params, post=True)
        if not isinstance(result, dict) or not isinstance(result.get("results"), list):
            raise BadResponse(f"{self.api}package_search: unexpected result shape")
        fresh = []
        for pkg in result["results"]:
            pkg_id = pkg.get("id") if isinstance(pkg, dict) else None
            if pkg_id is not None:
                if pkg_id in self._seen:
                    continue
                self._seen.add(pkg_id)
            fresh.append(pkg)
        return int(result.get("count", 0)), fresh

    async def produce(self, send: ObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None) -> int:
        """Send every package of the catalog (raw dicts) into ``send``."""
        return await fan_out_pages(self.search_page, send, page_size=self.rows,
                                   concurrency=page_concurrency, on_total=on_total,
                                   on_page_error=on_page_error)

    def to_pivot(self, raw: Any) -> Dataset:
        return package_to_dataset(raw, fields=self.config.get("fields"))

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        """Stream a hosted file. The key goes along only if the file is on the portal's host."""
        return self.client.stream(resource.url, errors=parse_error)
