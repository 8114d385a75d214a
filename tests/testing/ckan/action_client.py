"""One Action API call against a simulator, as the simulator tests make it."""

from __future__ import annotations

from typing import Any

import aiohttp


async def call_action(session: aiohttp.ClientSession, url: str, action: str, *,
                      get: dict[str, Any] | None = None, post: Any = None,
                      key: str | None = None) -> tuple[int, Any]:
    """GET with ``get`` as the query, or POST ``post`` (a form when it is FormData, else
    JSON); return the status and the decoded body."""
    headers = {"Authorization": key} if key else {}
    endpoint = f"{url}/api/3/action/{action}"
    if post is None:
        request = session.get(endpoint, params=get or {}, headers=headers)
    elif isinstance(post, aiohttp.FormData):
        request = session.post(endpoint, data=post, headers=headers)
    else:
        request = session.post(endpoint, json=post, headers=headers)
    async with request as response:
        return response.status, await response.json()
