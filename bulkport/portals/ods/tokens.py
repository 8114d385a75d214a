"""API keys on Opendatasoft (Automation API v1.0): ``/apikeys/`` listed, filtered, revoked.

A listed key carries its own value (``key``): it is compared with the run's key, to spare
that one, and dropped at once, so it never reaches a report, a log or the journal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from anyio.streams.memory import MemoryObjectSendStream

from bulkport.errors import AuthError, BadResponse, NotFound
from bulkport.http import HttpClient
from bulkport.model import Token
from bulkport.portals.base import QUIET, CheckSteps
from bulkport.portals.ods.access import refused_key
from bulkport.portals.ods.api import OdsApi, parse_error, total_count
from bulkport.queue import fan_out_pages, pipeline
from bulkport.settings import TargetSettings

PAGE_MAX = 1000


class OdsTokens:
    """Lists and revokes a domain's API keys."""

    def __init__(self, settings: TargetSettings, client: HttpClient) -> None:
        self.client = client
        self.settings = settings
        self.site = OdsApi(settings, client)
        self.api = self.site.base
        self.own_id: str | None = None
        self.sysadmin = True  # an administrator sees every key; others only their own

    def describe(self) -> str:
        return self.site.describe()

    def own_token_id(self) -> str | None:
        return self.own_id

    async def check(self, wanted: tuple[str, ...] | None, steps: CheckSteps = QUIET) -> None:
        """Nothing to ask first in a run: the Automation API answers no anonymous caller, so
        the first ``/apikeys/`` page is the key check. Standalone, that question is asked
        here (``key``), for no key's value: ``limit=0`` returns the count only.

        Raises:
            AuthError: the domain refused the key.
        """
        if not steps.standalone:
            return
        steps.begin("key")
        try:
            page = await self.site.call("GET", "/apikeys/", params={"limit": 0})
        except AuthError as error:
            raise refused_key(self.site, "target", "list and revoke API keys", error) from None
        total = total_count(page)
        steps.passed(f"reachable, key accepted: it may list {'?' if total is None else total} "
                     "API key(s) (all of the domain's for an administrator, its own otherwise)")

    def _token(self, raw: Any) -> Token | None:
        """A listed key as a :class:`Token`; None when it is revoked already."""
        if not isinstance(raw, dict) or not raw.get("uid"):
            raise BadResponse(f"{self.describe()}: /apikeys/ listed a key without a uid")
        if raw.get("key") == self.settings.api_key:
            self.own_id = str(raw["uid"])
        if raw.get("is_revoked"):
            return None
        user = raw.get("user")
        user = user if isinstance(user, dict) else {}
        return Token(id=str(raw["uid"]), name=str(raw.get("label") or ""),
                     user=str(user.get("username") or ""), created_at=raw.get("created_at"))

    async def _page(self, offset: int, limit: int) -> tuple[int, list[Token]]:
        response = await self.client.request("GET", self.api + "/apikeys/", errors=parse_error,
                                             params={"limit": limit, "offset": offset})
        try:
            page = response.json()
        except BadResponse:
            # The body holds key values: say what failed without quoting it.
            raise BadResponse(f"{self.describe()}: /apikeys/ page at offset {offset} is not "
                              "JSON", response.status) from None
        if not isinstance(page, dict) or not isinstance(page.get("results"), list):
            raise BadResponse(f"{self.describe()}: /apikeys/ is not a documented list page")
        total = total_count(page)
        if total is None:  # read as 0, the other pages would go unlisted, their keys unrevoked
            raise BadResponse(f"{self.describe()}: /apikeys/ page at offset {offset} states no "
                              "total_count", response.status)
        tokens = [self._token(raw) for raw in page["results"]]
        return total, [t for t in tokens if t is not None]

    async def collect(self, wanted: tuple[str, ...] | None, *, concurrency: int,
                      on_error: Callable[[str, Exception], None]) -> list[Token]:
        """Every live key the run's key can see: all of the domain's for an administrator,
        only its owner's otherwise (Opendatasoft does not say which). ``wanted`` users are
        picked out later by the filter."""
        tokens: list[Token] = []

        async def produce(send: MemoryObjectSendStream[Token]) -> None:
            await fan_out_pages(self._page, send, page_size=PAGE_MAX, concurrency=concurrency,
                                on_page_error=lambda offset, error: on_error(
                                    f"/apikeys/ page at offset {offset}", error))

        async def keep(token: Token) -> None:
            tokens.append(token)

        await pipeline(produce, keep, workers=1)
        return tokens

    async def revoke(self, token: Token, reason: str) -> str:
        """Revoke one key; return ``"revoked"`` or ``"already_gone"`` (no longer listed)."""
        try:
            await self.client.request("POST", f"{self.api}/apikeys/{token.id}/revoke/",
                                      json={"reason": reason}, errors=parse_error)
        except NotFound:
            return "already_gone"
        return "revoked"
