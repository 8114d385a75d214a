"""Users and API tokens in the CKAN simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from bulkport.portals.ckan.tokens import token_id_of
from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.ckan.tokens import seed_tokens
from bulkport.testing.core.server import serve

ADMIN = "legacy-admin-key"


class Client:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url, self.session = url, session

    async def ckan(self, action: str, key: str | None = None, *, post: Any = None,
                   **params: Any) -> tuple[int, Any]:
        headers = {"Authorization": key} if key else {}
        url = f"{self.url}/api/3/action/{action}"
        request = (self.session.get(url, params=params, headers=headers) if post is None
                   else self.session.post(url, json=post, headers=headers))
        async with request as response:
            return response.status, await response.json()


@pytest.fixture
async def ckan() -> AsyncIterator[tuple[Client, CkanStore]]:
    store = CkanStore(seed=1)
    async with serve(create_ckan_app(store, api_keys={ADMIN: "admin"})) as url, \
            aiohttp.ClientSession() as session:
        yield Client(url, session), store


async def test_tokens_are_jwts_that_authenticate_their_owner(
        ckan: tuple[Client, CkanStore]) -> None:
    client, store = ckan
    store.accounts.add_user("alice")
    status, body = await client.ckan("api_token_create", ADMIN,
                                     post={"user": "alice", "name": "ci"})
    assert status == 200
    token, jti = body["result"]["token"], body["result"]["id"]
    assert token_id_of(token) == jti
    status, body = await client.ckan("api_token_list", token, user_id="alice")
    assert status == 200
    [listed] = body["result"]
    assert listed["id"] == jti and listed["name"] == "ci" and listed["last_access"]
    assert "token" not in listed
    # alice is no sysadmin: another user's tokens are refused
    assert (await client.ckan("api_token_list", token, user_id="admin"))[0] == 403
    assert (await client.ckan("config_option_list", token))[0] == 403
    assert (await client.ckan("config_option_list", ADMIN))[0] == 200
    # Revoked, the token leaves requests anonymous rather than failing them.
    assert (await client.ckan("api_token_revoke", token, post={"jti": jti}))[0] == 200
    assert (await client.ckan("api_token_list", token, user_id="alice"))[0] == 403
    assert (await client.ckan("status_show", token))[0] == 200


async def test_revoking_a_gone_token(ckan: tuple[Client, CkanStore]) -> None:
    client, store = ckan
    store.accounts.add_user("alice")
    jti, token = store.accounts.create_token("alice", "one")
    other, _ = store.accounts.create_token("alice", "two")
    store.accounts.tokens.pop(other)
    # A sysadmin is never refused; to others an unknown jti looks like someone else's.
    assert (await client.ckan("api_token_revoke", ADMIN, post={"jti": other}))[0] == 200
    status, body = await client.ckan("api_token_revoke", token, post={"jti": other})
    assert status == 403 and body["error"]["__type"] == "Authorization Error"
    assert (await client.ckan("api_token_revoke", ADMIN, jti=jti))[0] == 400  # POST only
    assert (await client.ckan("api_token_revoke", token, post={"token": token}))[0] == 200
    assert jti not in store.accounts.tokens


async def test_user_list(ckan: tuple[Client, CkanStore]) -> None:
    client, store = ckan
    seed_tokens(store.accounts, users=5, tokens=20, seed=1)
    store.accounts.add_user("default", sysadmin=True)  # the site user
    status, body = await client.ckan("user_list", all_fields="false")
    assert status == 200 and body["result"] == ["admin", *(f"user{i:03d}" for i in range(5))]
    _, body = await client.ckan("user_list", all_fields="false", include_site_user="true")
    assert "default" in body["result"]
    _, body = await client.ckan("user_list", ADMIN, q="user001")
    assert [u["name"] for u in body["result"]] == ["user001"] and "email" in body["result"][0]
    _, body = await client.ckan("user_list", q="user001")
    assert "email" not in body["result"][0]
    status, body = await client.ckan("api_token_list", ADMIN, user_id="user001")
    assert status == 200 and len(body["result"]) == 4
    created = [t["created_at"] for t in body["result"]]
    assert created == sorted(created)
    assert (await client.ckan("api_token_list", ADMIN, user_id="nobody"))[0] == 404
    assert (await client.ckan("api_token_list", ADMIN))[0] == 409
