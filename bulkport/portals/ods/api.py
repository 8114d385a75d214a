"""Opendatasoft Automation API v1.0: the key bound to its domain, calls, error replies."""

from __future__ import annotations

from typing import Any

from bulkport.http import ErrorReply, HttpClient, Response, error_body, field_messages
from bulkport.settings import PortalSettings

API_PATH = "/api/automation/v1.0"


def parse_error(response: Response) -> ErrorReply:
    """ODS's ``{"error_code", "message", "detail"?}``."""
    body = error_body(response)
    if isinstance(body, ErrorReply):
        return body
    detail = body.get("detail")
    fields = field_messages(detail) if isinstance(detail, dict) else {}
    message = f"{body.get('error_code', 'error')}: {body.get('message', '')}".strip(": ")
    if fields:
        message += " (" + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ")"
    code = body.get("error_code")
    return ErrorReply(message, fields, code if isinstance(code, str) else None)


def total_count(page: Any) -> int | None:
    """A list page's ``total_count`` as a number. The document types it as a string (or
    null) while the API sends integers: both are taken. None when the page states none."""
    value = page.get("total_count") if isinstance(page, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


class OdsApi:
    """One domain's Automation API; the key is sent to that domain only."""

    def __init__(self, settings: PortalSettings, client: HttpClient) -> None:
        self.settings = settings
        self.client = client
        self.base = settings.url + API_PATH
        client.bind(settings.url, {"Authorization": f"apikey {settings.api_key}"},
                    secrets=(settings.api_key or "",))

    def describe(self) -> str:
        return f"Opendatasoft {self.settings.url}"

    async def call(self, method: str, path: str, *, retry: bool = True, **kwargs: Any) -> Any:
        """A request to ``path`` under the API; its JSON reply (None when empty)."""
        response = await self.client.request(method, self.base + path, errors=parse_error,
                                             retry=retry, **kwargs)
        return response.json() if response.body else None

    async def list_all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a paginated list under the API, 1,000 a page."""
        items: list[dict[str, Any]] = []
        while True:
            page = await self.call("GET", path, params={"limit": 1000, "offset": len(items)})
            if isinstance(page, list):  # some list endpoints are not paginated
                return page
            batch = page.get("results", []) if isinstance(page, dict) else []
            items.extend(batch)
            if not batch or not page.get("next"):
                return items
