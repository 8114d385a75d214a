"""CKAN Action API calls and CKAN's error replies, for the source, target and tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulkport.errors import BadResponse
from bulkport.http import ErrorReply, HttpClient, Response, error_body, field_messages
from bulkport.settings import PortalSettings


def parse_error(response: Response) -> ErrorReply:
    """CKAN's ``{"success": false, "error": {"__type", "message", field: [...]}}``."""
    body = error_body(response)
    if isinstance(body, ErrorReply):
        return body
    error = body.get("error") or {}
    if not isinstance(error, dict):
        return ErrorReply(str(error))
    fields = field_messages(error, skip=("__type", "message"))
    message = error.get("message") or error.get("__type") or "error"
    if fields:
        message = f"{message}: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
    code = error.get("__type")
    return ErrorReply(str(message), fields, code if isinstance(code, str) else None)


class CkanApi:
    """One CKAN site's Action API, the key bound to its host."""

    def __init__(self, settings: PortalSettings, client: HttpClient) -> None:
        self.settings = settings
        self.client = client
        self.base = f"{settings.url}/api/3/action/"
        if settings.api_key:
            client.bind(settings.url, {settings.auth_header: settings.api_key})

    def describe(self) -> str:
        return f"CKAN {self.settings.url}"

    async def call(self, action: str, params: Mapping[str, Any] | None = None,
                   *, post: bool = False, retry: bool = True) -> Any:
        """Call an action and return its ``result``."""
        url = self.base + action
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

