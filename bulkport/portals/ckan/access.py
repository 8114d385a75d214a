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
from bulkport.portals.base import QUIET, CheckSteps
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


async def site_status(api: CkanApi, role: str) -> dict[str, Any]:
    """``status_show``: whether a CKAN Action API answers at ``[role] url``, and its version.

    Raises:
        ConfigError: the URL leads to no CKAN Action API.
    """
    try:
        status = await api.call("status_show")
    except SkippableError as error:
        answer = f"HTTP {error.status}" if error.status else str(error)
        raise ConfigError(f"[{role}] url {api.settings.url} answers no CKAN Action API "
                          f"({api.base}status_show: {answer})") from None
    return status if isinstance(status, dict) else {}


async def check_site(api: CkanApi, role: str, steps: CheckSteps) -> bool:
    """The ``api`` step, when nothing reads after the check (a run's first call tells
    instead); whether it ran."""
    if not steps.standalone:
        return False
    steps.begin("api")
    version = (await site_status(api, role)).get("ckan_version")
    steps.passed(f"reachable, CKAN {version or '(version not stated)'} Action API")
    return True


def whose(user: dict[str, Any]) -> str:
    """A key's owner for a message: ``key of sysadmin 'admin'``."""
    return f"key of {'sysadmin' if user.get('sysadmin') else 'user'} {user['name']!r}"


async def key_owner(api: CkanApi, role: str, consequence: str, *,
                    site_known: bool = False) -> dict[str, Any]:
    """The account of the key ``[role] api_key`` holds.

    Args:
        consequence: what CKAN would do with an unknown key, for the message.
        site_known: ``status_show`` answered already (no need to ask it again).

    Raises:
        AuthError: the site does not know the key.
        ConfigError: the URL leads to no CKAN Action API.
    """
    try:
        user = await api.call("user_show")
    except (NotFound, AuthError):
        user = None
    if user is None:
        if not site_known:
            await site_status(api, role)  # a CKAN site, or something else at that URL?
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


async def check_source_key(api: CkanApi, settings: CkanSourceSettings,
                           steps: CheckSteps = QUIET) -> None:
    """Stop a run whose listing would quietly lack datasets the job asks for.

    Steps: ``api`` (standalone only), ``key``, and ``permissions`` for a non-sysadmin
    asked for private or draft datasets.

    Raises:
        ConfigError: private or draft datasets are asked for without a key.
        AuthError: the key is unknown to the site, or its user may not read them all.
    """
    hidden = [name for name, wanted in (("include_private", settings.include_private),
                                        ("include_drafts", settings.include_drafts)) if wanted]
    asked = " and ".join(f"{name} = true" for name in hidden)
    if not settings.api_key:
        steps.begin("key")
        if hidden:
            raise ConfigError(
                f"[source] {asked} needs an api_key: {api.describe()} shows an anonymous "
                "caller only its public datasets. Set [source] api_key to the API token of a "
                "sysadmin or of a member of the organizations read")
        await check_site(api, "source", steps)
        steps.begin("key")
        steps.passed("no api_key: the public datasets, as anyone sees them")
        return
    known = await check_site(api, "source", steps)
    steps.begin("key")
    user = await key_owner(api, "source", "list only the public datasets, as to anyone",
                           site_known=known)
    if user.get("sysadmin") or not hidden:
        steps.passed(whose(user) + (", who sees every dataset" if user.get("sysadmin") else
                                    ": the public datasets and those of its organizations"))
        return
    steps.passed(whose(user))
    steps.begin("permissions")
    readable = _known(await organizations_for(api, "read"))
    involved = filtered_organizations(settings.fq) or await every_organization(api)
    missing = sorted(involved - readable)
    name = user["name"]
    if missing:
        raise AuthError(
            f"[source] api_key: user {name!r} is neither a sysadmin nor a member of "
            f"organization(s) {shown(missing)} on {api.describe()}, so their private and "
            f"draft datasets would be missing from the listing: use a sysadmin's API token, "
            f"make {name!r} a member of them, or narrow [source] fq to the organizations "
            f"{name!r} belongs to")
    steps.passed(f"user {name!r} is a member of every organization read "
                 f"({shown(sorted(involved)) or 'none'}), so it sees their private and draft "
                 "datasets")


def _named(settings: CkanTargetSettings) -> dict[str, str]:
    """Each organization the ``[target]`` table names → the setting that names it."""
    named = {org: f"organizations {source!r} = {org!r}"
             for source, org in settings.organizations.items()}
    if settings.organization:
        named[settings.organization] = f"organization = {settings.organization!r}"
    return named


async def check_target_key(api: CkanApi, settings: CkanTargetSettings,
                           steps: CheckSteps = QUIET) -> None:
    """Stop a run before its first write when the key cannot write what the job names.

    Steps: ``key`` (a key is set), ``api`` (standalone only), ``key`` (whose it is),
    ``organizations`` (those named exist, or may be created) and ``permissions``.

    Raises:
        ConfigError: no key, or an organization named in ``[target]`` does not exist while
            ``create_organizations`` is off.
        AuthError: the key is unknown to the site, or its user may not create datasets in
            the organizations named (or in any, when none can be made).
    """
    steps.begin("key")
    if not settings.api_key:
        raise ConfigError(f"[target] api_key is missing: {api.describe()} takes no anonymous "
                          "writes. Set it to the API token of a sysadmin or of an editor of "
                          "the organizations written to")
    known_site = await check_site(api, "target", steps)
    steps.begin("key")
    user = await key_owner(api, "target", "refuse every write, as to anyone",
                           site_known=known_site)
    steps.passed(whose(user))
    named = _named(settings)
    sysadmin = bool(user.get("sysadmin"))
    if sysadmin and (settings.create_organizations or not named):
        steps.begin("permissions")
        steps.passed("a sysadmin may create datasets in every organization"
                     + (", and create organizations" if settings.create_organizations else ""))
        return
    if named:
        steps.begin("organizations")
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
    if named:
        present = [org for org in named if org not in absent]
        steps.passed(", ".join(
            ([f"organization(s) {shown(present)} exist"] if present else [])
            + ([f"{shown(absent)} will be created (create_organizations = true)"]
               if absent else [])))
    steps.begin("permissions")
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
    steps.passed(_may_write(user, named, writable))


def _may_write(user: dict[str, Any], named: dict[str, str],
               writable: list[dict[str, Any]]) -> str:
    """What the key may write, once the permissions step found nothing missing."""
    who = f"{'sysadmin' if user.get('sysadmin') else 'user'} {user['name']!r}"
    if named:
        return f"{who} may create datasets in {shown(named)}"
    if writable:
        return (f"{who} may create datasets in organization(s) "
                f"{shown(str(o.get('name') or o.get('id')) for o in writable)}")
    return (f"{who} is an editor of no organization: it writes into those it creates "
            "(create_organizations = true)")


async def _exists(api: CkanApi, org: str) -> bool:
    try:
        await api.call("organization_show", {"id": org, "include_datasets": False})
    except NotFound:
        return False
    return True
