"""What a CKAN key is worth: whose it is, and whether it may read or write what a job asks.

CKAN (2.10+) treats a key it does not know — mistyped, revoked, from another site, sent in
the wrong header — as an anonymous caller: no error, only fewer datasets. ``user_show``
without an ``id`` answers with the caller's own account (``sysadmin`` included), and with
a 404 to an anonymous caller (a 403 where ``ckan.auth.public_user_details`` is off), so one
call tells a valid key from an unknown one. What a non-sysadmin may read or write comes
from ``organization_list_for_user`` with the ``read`` or ``create_dataset`` permission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bulkport.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    NotFound,
    SkippableError,
    first_few,
)
from bulkport.portals.ckan.api import CkanApi
from bulkport.portals.ckan.settings import CkanSourceSettings, CkanTargetSettings

ORG_PAGE = 1000  # organization_list's default ceiling (ckan.group_and_organization_list_max)
SHOWN = 10  # names listed in one message
# A whole fq that only picks organizations: organization:x, "x", or (x OR y).
_ORG_FILTER = re.compile(r'^\s*\+?(?:organization|owner_org):(?:"(?P<quoted>[^"]+)"'
                         r'|\((?P<group>[^()]*)\)|(?P<bare>[^\s()"]+))\s*$')


def shown(names: Iterable[str]) -> str:
    """Names for a message: the first few, then how many more."""
    return first_few([repr(n) for n in names], SHOWN)


def filtered_organizations(fq: str | None) -> set[str] | None:
    """The organizations (names or ids) a ``[source] fq`` restricts the listing to, when
    that is all it does; None when it reads every organization (or says more than that)."""
    found = _ORG_FILTER.match(fq or "")
    if found is None:
        return None
    if found["group"] is None:
        return {found["quoted"] or found["bare"]}
    words = [w.strip('"') for w in found["group"].split() if w != "OR"]
    if not words or any(w in ("AND", "NOT") or w.startswith(("-", "!", "+")) for w in words):
        return None
    return set(words)


async def key_owner(api: CkanApi, role: str, consequence: str) -> dict[str, Any]:
    """The account of the key ``[role] api_key`` holds.

    Args:
        consequence: what CKAN would do with an unknown key, for the message.

    Raises:
        AuthError: the site does not know the key.
        ConfigError: the URL leads to no CKAN Action API.
    """
    try:
        user = await api.call("user_show")
    except (NotFound, AuthError):
        user = None
    if user is None:
        try:
            await api.call("status_show")  # a CKAN site, or something else at that URL?
        except SkippableError as error:
            answer = f"HTTP {error.status}" if error.status else str(error)
            raise ConfigError(f"[{role}] url {api.settings.url} answers no CKAN Action API "
                              f"({api.base}status_show: {answer})") from None
        raise AuthError(f"[{role}] api_key: {api.describe()} does not know this key (mistyped, "
                        f"revoked, or from another site) and would {consequence}: check the "
                        f"key, and [{role}] auth_header if the site renamed the token header, "
                        "or make a new API token")
    if not isinstance(user, dict) or not isinstance(user.get("name"), str):
        raise BadResponse(f"{api.base}user_show: the reply names no user (is this a CKAN API?)")
    return user


async def organizations_for(api: CkanApi, permission: str) -> list[dict[str, Any]]:
    """The organizations the caller has ``permission`` in (every one, for a sysadmin)."""
    orgs = await api.call("organization_list_for_user", {"permission": permission})
    if not isinstance(orgs, list):
        raise BadResponse(f"{api.base}organization_list_for_user: expected a list")
    return [o for o in orgs if isinstance(o, dict)]


async def every_organization(api: CkanApi) -> set[str]:
    """The names of every organization of the site (pages of :data:`ORG_PAGE`)."""
    names: set[str] = set()
    while True:
        page = await api.call("organization_list", {"limit": ORG_PAGE, "offset": len(names)})
        if not isinstance(page, list):
            raise BadResponse(f"{api.base}organization_list: expected a list")
        names.update(str(n) for n in page)
        if len(page) < ORG_PAGE:
            return names


def _known(orgs: list[dict[str, Any]]) -> set[str]:
    return {str(o[k]) for o in orgs for k in ("id", "name") if o.get(k)}


async def check_source_key(api: CkanApi, settings: CkanSourceSettings) -> None:
    """Stop a run whose listing would quietly lack datasets the job asks for.

    Raises:
        ConfigError: private or draft datasets are asked for without a key.
        AuthError: the key is unknown to the site, or its user may not read them all.
    """
    hidden = [name for name, wanted in (("include_private", settings.include_private),
                                        ("include_drafts", settings.include_drafts)) if wanted]
    asked = " and ".join(f"{name} = true" for name in hidden)
    if not settings.api_key:
        if hidden:
            raise ConfigError(
                f"[source] {asked} needs an api_key: {api.describe()} shows an anonymous "
                "caller only its public datasets. Set [source] api_key to the API token of a "
                "sysadmin or of a member of the organizations read")
        return
    user = await key_owner(api, "source", "list only the public datasets, as to anyone")
    if user.get("sysadmin") or not hidden:
        return
    readable = _known(await organizations_for(api, "read"))
    involved = filtered_organizations(settings.fq) or await every_organization(api)
    missing = sorted(involved - readable)
    if missing:
        name = user["name"]
        raise AuthError(
            f"[source] api_key: user {name!r} is neither a sysadmin nor a member of "
            f"organization(s) {shown(missing)} on {api.describe()}, so their private and "
            f"draft datasets would be missing from the listing: use a sysadmin's API token, "
            f"make {name!r} a member of them, or narrow [source] fq to the organizations "
            f"{name!r} belongs to")


def _named(settings: CkanTargetSettings) -> dict[str, str]:
    """Each organization the ``[target]`` table names → the setting that names it."""
    named = {org: f"organizations {source!r} = {org!r}"
             for source, org in settings.organizations.items()}
    if settings.organization:
        named[settings.organization] = f"organization = {settings.organization!r}"
    return named


async def check_target_key(api: CkanApi, settings: CkanTargetSettings) -> None:
    """Stop a run before its first write when the key cannot write what the job names.

    Raises:
        ConfigError: no key, or an organization named in ``[target]`` does not exist while
            ``create_organizations`` is off.
        AuthError: the key is unknown to the site, or its user may not create datasets in
            the organizations named (or in any, when none can be made).
    """
    if not settings.api_key:
        raise ConfigError(f"[target] api_key is missing: {api.describe()} takes no anonymous "
                          "writes. Set it to the API token of a sysadmin or of an editor of "
                          "the organizations written to")
    user = await key_owner(api, "target", "refuse every write, as to anyone")
    named = _named(settings)
    sysadmin = bool(user.get("sysadmin"))
    if sysadmin and (settings.create_organizations or not named):
        return
    writable = await organizations_for(api, "create_dataset")  # every one, for a sysadmin
    known = _known(writable)
    elsewhere = [org for org in named if org not in known]
    absent = elsewhere if sysadmin else [org for org in elsewhere if not await _exists(api, org)]
    if absent and not settings.create_organizations:
        raise ConfigError(
            f"[target] {', '.join(named[org] for org in absent)}: no such organization on "
            f"{api.describe()}, and create_organizations = false: create "
            f"{'it' if len(absent) == 1 else 'them'} there, correct the name(s), or set "
            "create_organizations = true")
    refused = [org for org in elsewhere if org not in absent]
    name = user["name"]
    if refused:
        raise AuthError(
            f"[target] api_key: user {name!r} is neither a sysadmin nor an editor of "
            f"organization(s) {shown(refused)} on {api.describe()}, so it cannot create "
            f"datasets there: use a sysadmin's API token, or make {name!r} an editor (or "
            "admin) of them")
    if not sysadmin and not writable and not settings.create_organizations:
        raise AuthError(
            f"[target] api_key: user {name!r} is neither a sysadmin nor an editor of any "
            f"organization on {api.describe()}, so it cannot create datasets: use a "
            f"sysadmin's API token, or make {name!r} an editor of the organizations "
            "written to")


async def _exists(api: CkanApi, org: str) -> bool:
    try:
        await api.call("organization_show", {"id": org, "include_datasets": False})
    except NotFound:
        return False
    return True
