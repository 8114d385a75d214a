"""API tokens on CKAN and PortalJS Cloud: users, their tokens, revocation by ``jti``.

CKAN (2.10+) treats an unknown key as anonymous, so a wrong key and a non-sysadmin key look
alike to the sysadmin-only ``config_option_list``, which is how a run tells a sysadmin's key;
``bulkport check`` also asks ``user_show`` whose key it is (see :mod:`.access`). Without a
sysadmin key only the key owner's own tokens can be listed, which the messages here say
plainly.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson
from anyio.streams.memory import MemoryObjectSendStream

from bulkport.errors import AuthError, BadResponse, NotFound, RetriableError, SkippableError
from bulkport.http import HttpClient
from bulkport.model import Token
from bulkport.portals.base import QUIET, CheckSteps
from bulkport.portals.ckan.access import key_owner, shown, whose
from bulkport.portals.ckan.api import CkanApi
from bulkport.queue import pipeline
from bulkport.settings import TargetSettings


def token_id_of(api_key: str | None) -> str | None:
    """The ``jti`` inside a CKAN API token (a JWT), read without checking the signature;
    None for a legacy API key."""
    parts = (api_key or "").split(".")
    if len(parts) != 3:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    jti = payload.get("jti") if isinstance(payload, dict) else None
    return str(jti) if jti else None


def _token(raw: Any, user: str) -> Token:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise BadResponse(f"api_token_list for {user}: a token without an id")
    return Token(id=str(raw["id"]), name=str(raw.get("name") or ""), user=user,
                 created_at=raw.get("created_at"), last_access=raw.get("last_access"))


class CkanTokens:
    """Lists and revokes API tokens through the Action API."""

    def __init__(self, settings: TargetSettings, client: HttpClient) -> None:
        self.portal = CkanApi(settings, client)
        self.sysadmin = False
        self._checked = False  # check() ran: self.sysadmin is known

    def describe(self) -> str:
        return self.portal.describe()

    def own_token_id(self) -> str | None:
        return token_id_of(self.portal.settings.api_key)

    async def check(self, wanted: tuple[str, ...] | None, steps: CheckSteps = QUIET) -> None:
        """Before anything is listed: whether the key is a sysadmin's (the sysadmin-only
        ``config_option_list``), as listing every user's tokens needs. Standalone, also whose
        key it is, and the listing of the ``wanted`` users' tokens (one user's, for all).

        Raises:
            AuthError: every user was asked for and the key is not a sysadmin's; standalone,
                also a key the site does not know, or tokens it may not list.
        """
        steps.begin("key")
        try:
            await self.portal.call("config_option_list")
            self.sysadmin = True
        except AuthError:
            self.sysadmin = False
        self._checked = True
        if steps.standalone:  # a run learns nothing more before its listing
            if self.sysadmin:
                steps.passed("key of a sysadmin: may list and revoke every user's tokens")
            else:
                user = await key_owner(self.portal, "target", "list no token at all")
                steps.passed(whose(user) + ", not a sysadmin: may list and revoke its own "
                                           "tokens only")
            steps.begin("tokens")
        if wanted is None and not self.sysadmin:
            raise AuthError(
                f"{self.describe()} refused a sysadmin-only call: the API key is wrong, or it "
                "is not a sysadmin's. A non-sysadmin key can only list its owner's tokens: "
                'name that user in [filter] users = ["<user name>"]')
        if not steps.standalone:
            return  # the run's own listing asks the rest
        users = await self.users(wanted)
        listed = [len(await self.list(user)) for user in (users if wanted else users[:1])]
        steps.passed(f"may list the tokens of {shown(users)} ({sum(listed):,} listed)" if wanted
                     else f"may list the tokens of every user ({len(users):,} users)")

    async def users(self, wanted: tuple[str, ...] | None) -> list[str]:
        """The users whose tokens to list: ``wanted``, or every user for a sysadmin.

        Raises:
            AuthError: every user was asked for and the key is not a sysadmin's.
        """
        if not self._checked:
            await self.check(wanted)
        if wanted is not None:
            return list(wanted)
        # user_list has no paging on CKAN: one call returns every user's name.
        names = await self.portal.call("user_list", {"all_fields": False,
                                                     "include_site_user": True})
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise BadResponse(f"{self.describe()}: user_list did not return a list of names")
        return names

    async def collect(self, wanted: tuple[str, ...] | None, *, concurrency: int,
                      on_error: Callable[[str, Exception], None]) -> list[Token]:
        """The tokens of ``wanted`` users (every user when None), ``concurrency`` users at
        a time. A user that cannot be listed goes to ``on_error``; a refused key stops all."""
        users = await self.users(wanted)
        tokens: list[Token] = []

        async def produce(send: MemoryObjectSendStream[str]) -> None:
            async with send:
                for user in users:
                    await send.send(user)

        async def list_one(user: str) -> None:
            try:
                tokens.extend(await self.list(user))
            except (SkippableError, RetriableError) as error:
                on_error(f"user {user}", error)

        await pipeline(produce, list_one, workers=concurrency)
        return tokens

    async def list(self, user: str) -> list[Token]:
        """A user's tokens, oldest first.

        Raises:
            AuthError: the key may not see this user's tokens (said why).
            NotFound: no such user.
        """
        try:
            result = await self.portal.call("api_token_list", {"user_id": user})
        except AuthError as error:
            why = ("the key is wrong or was revoked" if self.sysadmin else
                   "the key is wrong, or it is not a sysadmin's and belongs to another user "
                   "(a non-sysadmin key can only list its own tokens)")
            raise AuthError(f"{self.describe()} refused to list the tokens of user {user!r}: "
                            f"{why}", error.status) from None
        except NotFound:
            raise NotFound(f"{self.describe()}: user {user!r} not found") from None
        if not isinstance(result, list):
            raise BadResponse(f"api_token_list for {user}: expected a list")
        return [_token(raw, user) for raw in result]

    async def revoke(self, token: Token, reason: str) -> str:
        """Revoke one token by its ``jti``; return ``"revoked"`` or ``"already_gone"``.

        CKAN has no revocation reason: ``reason`` only goes in the report.
        """
        try:
            await self.portal.call("api_token_revoke", {"jti": token.id}, post=True)
            return "revoked"
        except AuthError:
            if self.sysadmin:
                raise
            # To a non-sysadmin, CKAN answers 403 for a jti that no longer exists (so that
            # ids cannot be probed): the token is gone if its owner's list lacks it.
            if all(t.id != token.id for t in await self.list(token.user)):
                return "already_gone"
            raise
