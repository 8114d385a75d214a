"""Users and API tokens of the CKAN simulator, with CKAN 2.10+ rules.

A token is a JWT (HS256) whose payload is ``{"jti", "iat"}``; ``api_token_list`` shows the
``jti`` as ``id`` and never the token itself. A token that does not decode, or whose
``jti`` was revoked, leaves the request anonymous (no error), as CKAN does. Using a token
sets its ``last_access``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson

from bulkport.testing.ckan.errors import NotAuthorized, NotFound, ValidationError
from bulkport.testing.ckan.model import as_bool

if TYPE_CHECKING:
    from bulkport.testing.ckan.actions import Context

SITE_USER = "default"  # ckan.site_id: the site user, hidden from user_list by default


def _iso(moment: float) -> str:
    """CKAN's token dates: naive UTC, ISO 8601 with microseconds."""
    return datetime.fromtimestamp(moment, timezone.utc).replace(tzinfo=None).isoformat()


def _now() -> str:
    return _iso(time.time())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class User:
    id: str
    name: str
    fullname: str
    email: str
    sysadmin: bool
    created: str
    state: str = "active"

    def out(self, requester: str | None, requester_is_sysadmin: bool) -> dict[str, Any]:
        """``user_dictize``: the e-mail only for the user themself and sysadmins."""
        data = {"id": self.id, "name": self.name, "fullname": self.fullname,
                "display_name": self.fullname or self.name, "about": None,
                "created": self.created, "state": self.state, "sysadmin": self.sysadmin,
                "number_created_packages": 0, "image_display_url": ""}
        if requester == self.name or requester_is_sysadmin:
            data["email"] = self.email
        return data


@dataclass
class ApiToken:
    id: str  # the jti
    name: str
    user_id: str
    created_at: str
    last_access: str | None = None

    def out(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "user_id": self.user_id,
                "created_at": self.created_at, "last_access": self.last_access}


class Accounts:
    """The site's users and their API tokens.

    Attributes tests may inspect: ``users`` (name → :class:`User`) and ``tokens``
    (jti → :class:`ApiToken`, revoked ones removed, as CKAN deletes them).
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self.users: dict[str, User] = {}
        self.tokens: dict[str, ApiToken] = {}
        self._by_id: dict[str, User] = {}
        self._rng = random.Random(seed)
        self._secret = self._rng.randbytes(32)

    def add_user(self, name: str, *, sysadmin: bool = False, fullname: str = "",
                 email: str | None = None, created: str | None = None) -> User:
        """Create a user (or return the existing one, made sysadmin if asked)."""
        user = self.users.get(name)
        if user is None:
            user_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            user = User(id=user_id, name=name, fullname=fullname,
                        email=email or f"{name}@example.org", sysadmin=sysadmin,
                        created=created or _now())
            self.users[name] = user
            self._by_id[user.id] = user
        user.sysadmin = user.sysadmin or sysadmin
        return user

    def get_user(self, id_or_name: str) -> User | None:
        user = self.users.get(id_or_name) or self._by_id.get(id_or_name)
        return user if user is not None and user.state == "active" else None

    def create_token(self, user: str, name: str, *, created_at: str | None = None,
                     last_access: str | None = None) -> tuple[str, str]:
        """Issue a token; return ``(jti, encoded token)``."""
        owner = self.get_user(user)
        if owner is None:
            raise KeyError(user)
        jti = _b64(self._rng.randbytes(32))  # CKAN: secrets.token_urlsafe(32)
        created = created_at or _now()
        self.tokens[jti] = ApiToken(jti, name, owner.id, created, last_access)
        iat = int(datetime.fromisoformat(created).replace(tzinfo=timezone.utc).timestamp())
        return jti, self.encode({"jti": jti, "iat": iat})

    def encode(self, payload: dict[str, Any]) -> str:
        head = _b64(orjson.dumps({"typ": "JWT", "alg": "HS256"}))
        body = _b64(orjson.dumps(payload))
        signature = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(signature)}"

    def decode(self, token: str) -> dict[str, Any] | None:
        """The payload of a token signed by this site, or None."""
        try:
            head, body, signature = token.split(".")
            expected = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(_unb64(signature), expected):
                return None
            payload = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        return payload if isinstance(payload, dict) else None

    def user_for_token(self, token: str) -> User | None:
        """The owner of a live token, touching its ``last_access``; None otherwise."""
        payload = self.decode(token)
        found = self.tokens.get(str(payload.get("jti"))) if payload else None
        if found is None:
            return None
        found.last_access = _now()
        return self._by_id.get(found.user_id)

    def tokens_of(self, user: User) -> list[ApiToken]:
        """A user's tokens, oldest first (as ``api_token_list`` orders them)."""
        return sorted((t for t in self.tokens.values() if t.user_id == user.id),
                      key=lambda t: t.created_at)


def _accounts(ctx: Context) -> Accounts:
    return ctx.store.accounts


def user_list(ctx: Context, data: dict[str, Any]) -> Any:
    """Every active user, by display name; no pagination (CKAN has none here)."""
    if data.get("email") and not ctx.sysadmin:
        raise NotAuthorized("User not authorized to filter users by email")
    accounts = _accounts(ctx)
    users = [u for u in accounts.users.values() if u.state == "active"]
    if not as_bool(data.get("include_site_user", False)):
        users = [u for u in users if u.name != SITE_USER]
    if q := str(data.get("q") or ""):
        users = [u for u in users if q.lower() in u.name.lower()
                 or q.lower() in u.fullname.lower()]
    if email := data.get("email"):
        users = [u for u in users if u.email.lower() == str(email).lower()]
    order_by = str(data.get("order_by") or "display_name")
    if order_by in ("id", "name", "created", "sysadmin"):
        users.sort(key=lambda u: (str(getattr(u, order_by)), u.name))
    else:
        users.sort(key=lambda u: u.fullname or u.name)
    if not as_bool(data.get("all_fields", True)):
        return [u.name for u in users]
    return [u.out(ctx.user, ctx.sysadmin) for u in users]


def user_create(ctx: Context, data: dict[str, Any]) -> Any:
    """Sysadmins only (``ckan.auth.create_user_via_api`` is false by default)."""
    if not ctx.sysadmin:
        raise NotAuthorized(f"User {ctx.user or ''} not authorized to create users via the API")
    accounts = _accounts(ctx)
    errors = {k: ["Missing value"] for k in ("name", "email", "password") if not data.get(k)}
    name = str(data.get("name") or "")
    if name and name in accounts.users:
        errors["name"] = ["The username is already associated with another account. "
                          "Please use a different username."]
    if errors:
        raise ValidationError(errors)
    user = accounts.add_user(name, fullname=str(data.get("fullname") or ""), email=str(data["email"]))
    return user.out(ctx.user, ctx.sysadmin)


def user_show(ctx: Context, data: dict[str, Any]) -> Any:
    """The user ``id``; without one, the caller: an anonymous caller (no key, or one the
    site does not know) gets a 404, as ``ckan.auth.public_user_details`` allows by default."""
    ident = data["id"] if "id" in data else ctx.user
    user = _accounts(ctx).get_user(str(ident or ""))
    if user is None:
        raise NotFound()
    return user.out(ctx.user, ctx.sysadmin)


def api_token_list(ctx: Context, data: dict[str, Any]) -> Any:
    """A user's tokens; only that user or a sysadmin may list them."""
    id_or_name = data.get("user_id", data.get("user"))
    if not id_or_name:
        raise ValidationError({"user_id": ["Missing value"]})
    user = _accounts(ctx).get_user(str(id_or_name))
    if not ctx.sysadmin and (user is None or user.name != ctx.user):
        raise NotAuthorized(f"User {ctx.user or ''} not authorized to list API tokens")
    if user is None:
        raise NotFound("User not found")
    return [token.out() for token in _accounts(ctx).tokens_of(user)]


def api_token_create(ctx: Context, data: dict[str, Any]) -> Any:
    user, name = data.get("user"), data.get("name")
    missing = {k: ["Missing value"] for k, v in (("user", user), ("name", name)) if not v}
    if missing:
        raise ValidationError(missing)
    accounts = _accounts(ctx)
    owner = accounts.get_user(str(user))
    if owner is None:
        raise NotFound("User not found")
    if not ctx.sysadmin and owner.name != ctx.user:
        raise NotAuthorized(f"User {ctx.user or ''} not authorized to create API tokens")
    jti, token = accounts.create_token(owner.name, str(name))
    return {"token": token, "id": jti}


def api_token_revoke(ctx: Context, data: dict[str, Any]) -> Any:
    """Delete a token by ``jti`` (or by the token itself). For anyone but a sysadmin, an
    unknown jti is refused like someone else's, so that ids cannot be probed."""
    accounts = _accounts(ctx)
    jti = data.get("jti")
    if not jti:
        token = data.get("token")
        if not token:
            raise ValidationError({"token": ["Missing value"]})
        payload = accounts.decode(str(token))
        jti = payload.get("jti") if payload else None
    found = accounts.tokens.get(str(jti))
    if not ctx.sysadmin:
        owner = accounts.get_user(found.user_id) if found else None
        if ctx.user is None or owner is None or owner.name != ctx.user:
            raise NotAuthorized(f"User {ctx.user or ''} not authorized to revoke API token")
    accounts.tokens.pop(str(jti), None)
    return None


def config_option_list(ctx: Context, data: dict[str, Any]) -> Any:
    """Sysadmins only: the runtime-editable options."""
    if not ctx.sysadmin:
        raise NotAuthorized(f"User {ctx.user or ''} not authorized to list config options")
    return ["ckan.site_title", "ckan.site_description", "ckan.site_about"]


TOKEN_ACTIONS = {
    "user_list": (user_list, True),
    "user_show": (user_show, True),
    "user_create": (user_create, False),
    "api_token_list": (api_token_list, True),
    "api_token_create": (api_token_create, False),
    "api_token_revoke": (api_token_revoke, False),
    "config_option_list": (config_option_list, True),
}


def seed_tokens(accounts: Accounts, *, users: int, tokens: int,
                names: tuple[str, ...] = ("datapusher", "harvest", "jupyter", "ci"),
                seed: int = 0, days: int = 720) -> dict[str, str]:
    """Spread ``tokens`` tokens over ``users`` users with varied names and dates.

    Roughly half are named ``datapusher``; about a third were never used.

    Returns:
        jti → encoded token, for tests that check no token value leaks.
    """
    rng = random.Random(seed)
    owners = [accounts.add_user(f"user{i:03d}").name for i in range(users)]
    now = time.time()
    issued: dict[str, str] = {}
    for i in range(tokens):
        name = names[0] if rng.random() < 0.5 else rng.choice(names[1:] or names)
        created = now - rng.uniform(0, days * 86400)
        used = None if rng.random() < 0.35 else rng.uniform(created, now)
        jti, value = accounts.create_token(
            owners[i % users], name,
            created_at=_iso(created), last_access=_iso(used) if used else None)
        issued[jti] = value
    return issued
