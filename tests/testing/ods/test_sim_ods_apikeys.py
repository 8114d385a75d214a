"""API keys in the Opendatasoft simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkport.testing.core.server import serve
from bulkport.testing.ods.apikeys import seed_apikeys
from bulkport.testing.ods.app import create_ods_app
from bulkport.testing.ods.store import OdsStore

ADMIN = "legacy-admin-key"


class Client:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def ods(self, method: str, path: str, key: str, body: Any = None,
                  **params: Any) -> tuple[int, Any]:
        async with self.session.request(
                method, f"{self.url}/api/automation/v1.0{path}", json=body, params=params,
                headers={"Authorization": f"apikey {key}"}) as response:
            return response.status, await response.json()


@pytest.fixture
async def ods() -> AsyncIterator[tuple[Client, OdsStore]]:
    store = OdsStore(seed=1)
    async with serve(create_ods_app(store, api_keys={ADMIN})) as url, \
            aiohttp.ClientSession() as session:
        yield Client(url, session), store


async def test_apikeys_list_and_revoke(ods: tuple[Client, OdsStore]) -> None:
    client, store = ods
    issued = seed_apikeys(store.apikeys, users=3, count=25, seed=1)
    status, page = await client.ods("GET", "/apikeys/", ADMIN, limit=10, offset=20)
    assert status == 200 and page["total_count"] == 25 and len(page["results"]) == 5
    assert page["next"] is None and "offset=10" in page["previous"]
    uid, key = next(iter(issued.items()))
    owner = store.apikeys.keys[uid].username
    # A user's own key sees only that user's keys, and may not search others'.
    _, page = await client.ods("GET", "/apikeys/", key, limit=100)
    assert {k["user"]["username"] for k in page["results"]} == {owner}
    someone_else = next(u for u, k in store.apikeys.keys.items() if k.username != owner)
    assert (await client.ods("POST", f"/apikeys/{someone_else}/revoke/", key))[0] == 404
    assert (await client.ods("POST", "/apikeys/search_key/", key, {"key": key}))[0] == 403
    status, body = await client.ods("POST", f"/apikeys/{uid}/revoke/", ADMIN,
                                    {"reason": "leaked"})
    assert status == 200 and body["is_revoked"]
    assert body["revocation_status"]["revocation_reason"] == "leaked"
    status, body = await client.ods("POST", f"/apikeys/{uid}/revoke/", ADMIN, {"reason": "x"})
    assert status == 200 and body["revocation_status"]["revocation_reason"] == "leaked"
    status, body = await client.ods("GET", "/apikeys/", key)
    assert status == 401 and body["error_code"] == "authentication_failed"
    assert (await client.ods("POST", "/apikeys/ak_nope00/revoke/", ADMIN))[0] == 404
    status, body = await client.ods("POST", "/apikeys/", ADMIN, {"label": "new"})
    assert status == 201 and body["user"]["username"] == "admin"
    assert (await client.ods("GET", "/datasets/", body["key"]))[0] == 200
