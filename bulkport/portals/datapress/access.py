"""What a DataPress key is worth, and whether the teams, mastheads and topics a job names
exist on the site.

``whoami`` names the key's user (JSON ``null`` for a key the site does not know) with
``admin`` and the teams it is a member of. The site settings (``GET {prefix}/site``) hold
the mastheads and topics, keyed by id; the teams list is ``GET /api/team`` in the v4.0
docs and ``GET /api/v3/teams`` in the newer ones, keyed by team id too. A dataset is
created with one team and one masthead, so a wrong id there would fail every create.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulkport.errors import AuthError, BadResponse, ConfigError, first_few
from bulkport.http import HttpClient
from bulkport.portals.base import QUIET, CheckSteps
from bulkport.portals.datapress.api import parse_error, refused_key, whoami
from bulkport.portals.datapress.settings import DataPressTargetSettings

SHOWN = 12  # ids of the site listed in one message


def teams_url(settings: DataPressTargetSettings) -> str:
    """Where the site lists its teams, for the API generation ``prefix`` names."""
    if settings.prefix.strip("/") == "api":
        return f"{settings.url}/api/team"
    return f"{settings.api}/teams"


async def _get(client: HttpClient, url: str) -> Any:
    return (await client.request("GET", url, errors=parse_error)).json()


def _by_id(reply: Any, url: str) -> dict[str, str]:
    """``{id: {title, ...}}`` (or a list of such objects) as id → title."""
    if isinstance(reply, Mapping):
        pairs = list(reply.items())
    elif isinstance(reply, list):
        pairs = [(item.get("id"), item) for item in reply if isinstance(item, Mapping)]
    else:
        raise BadResponse(f"{url}: expected an object keyed by id")
    return {str(key): str(item.get("title") or "") if isinstance(item, Mapping) else ""
            for key, item in pairs}


def _listed(known: Mapping[str, str]) -> str:
    return first_few([f"{key} ({title})" if title and title != key else key
                      for key, title in known.items()], SHOWN)


def _unknown(what: str, named: Mapping[str, list[str]], known: Mapping[str, str],
             where: str) -> str | None:
    """The clause saying which settings name a ``what`` the site lacks (None: all exist)."""
    missing = [setting for value, settings in named.items() if value not in known
               for setting in settings]
    if not missing:
        return None
    return (f"{', '.join(missing)}: no such {what} on {where} (its {what}s: "
            f"{_listed(known)})")


def _named(single: tuple[str, str] | None, key: str,
           mapping: Mapping[str, str]) -> dict[str, list[str]]:
    """Each id the settings name → how the settings name it (``team = 'x'``...)."""
    named: dict[str, list[str]] = {}
    if single is not None:
        named.setdefault(single[1], []).append(f"{single[0]} = {single[1]!r}")
    for source, value in mapping.items():
        named.setdefault(value, []).append(f"{key} {source!r} = {value!r}")
    return named


def user_of(me: Mapping[str, Any]) -> str:
    """How messages name a ``whoami`` user."""
    return str(me.get("title") or me.get("email") or me.get("id"))


def whose(me: Mapping[str, Any]) -> str:
    """A key's owner for a message: ``key of admin 'Ann'``."""
    return f"key of {'admin' if me.get('admin') else 'user'} {user_of(me)!r}"


async def check_target_key(client: HttpClient, settings: DataPressTargetSettings,
                           steps: CheckSteps = QUIET) -> None:
    """Before any write: the key is known, its user may write into every team named, and
    the teams, mastheads and topics named exist.

    Steps: ``key``, ``ids`` (teams, mastheads and topics) and ``permissions``.

    Raises:
        AuthError: the site does not know the key, or its user is neither an admin nor a
            member of a team named.
        ConfigError: a team, masthead or topic named does not exist (one line naming
            every one), or the URL and prefix lead to no DataPress API.
    """
    where = f"DataPress {settings.url}"
    steps.begin("key")
    me = await whoami(client, settings.api, "target")
    if me is None:
        raise refused_key(where, "target")
    if not isinstance(me, dict):
        raise BadResponse(f"{settings.api}/whoami: unexpected reply (is this a DataPress API?)")
    steps.passed(f"reachable, DataPress API at {settings.prefix}, {whose(me)}")
    steps.begin("ids")
    site = await _get(client, f"{settings.api}/site")
    if not isinstance(site, dict):
        raise BadResponse(f"{settings.api}/site: unexpected reply (is this a DataPress API?)")
    teams = _named(("team", settings.team), "teams", settings.teams)
    member = {str(m.get("id") if isinstance(m, dict) else m) for m in me.get("memberships") or []}
    problems = []
    outside = {team: named for team, named in teams.items() if team not in member}
    known_teams: dict[str, str] = {}
    if outside:  # a membership proves the team exists; the others are looked up
        url = teams_url(settings)
        known_teams = _by_id(await _get(client, url), url)
        problems.append(_unknown("team", outside, known_teams, where))
    problems.append(_unknown("masthead", _named(("masthead", settings.masthead), "mastheads",
                                                settings.mastheads),
                             _by_id(site.get("mastheads") or {}, f"{settings.api}/site"), where))
    problems.append(_unknown("topic", _named(None, "topics", settings.topics),
                             _by_id(site.get("topics") or {}, f"{settings.api}/site"), where))
    stated = [p for p in problems if p]
    if stated:
        raise ConfigError("[target] " + "; ".join(stated) + ": use those ids")
    steps.passed(_present(teams, settings))
    steps.begin("permissions")
    refused = sorted(team for team in outside if team in known_teams)
    user = user_of(me)
    if refused and not me.get("admin"):
        raise AuthError(
            f"[target] api_key: user {user!r} is neither an admin nor a member of team(s) "
            f"{', '.join(map(repr, refused))} on {where}, so it cannot create datasets there: "
            f"use an admin's API key, or add {user!r} to those teams")
    steps.passed(f"{'admin' if me.get('admin') else 'user'} {user!r} may create datasets in "
                 f"team(s) {', '.join(map(repr, teams))}"
                 + ("" if me.get("admin") else " (a member of each)"))


def _present(teams: Mapping[str, list[str]], settings: DataPressTargetSettings) -> str:
    """What the ``ids`` step found, once nothing named was missing."""
    mastheads = {settings.masthead, *settings.mastheads.values()}
    topics = set(settings.topics.values())
    return ", ".join(
        [f"team(s) {', '.join(map(repr, teams))}",
         f"masthead(s) {', '.join(map(repr, sorted(mastheads)))}"]
        + ([f"topic(s) {', '.join(map(repr, sorted(topics)))}"] if topics else [])) + " exist"
