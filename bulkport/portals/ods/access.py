"""What an Opendatasoft key is worth, and whether the licence and theme ids a job maps to
are ones the domain has.

The Automation API answers no anonymous caller: a wrong, revoked or missing key gets a 401
(403 is taken the same way), so one small list call tells whether the key works. Licences
and themes are identifiers configured per domain; the ``internal`` metadata template's
``license_id`` and ``theme_id`` fields list them as their ``choices`` (with ``labels``),
which ``GET /metadata/templates/`` returns with every template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bulkport.errors import AuthError, ConfigError, NotFound, first_few
from bulkport.portals.ods.api import OdsApi

SHOWN = 12  # domain ids listed in one message
# [target] map → (field of the internal template, what messages call one of its ids)
MAPPED_IDS = {"licenses": ("license_id", "licence"), "themes": ("theme_id", "theme")}


def refused_key(site: OdsApi, role: str, needs: str, error: AuthError) -> AuthError:
    """The one-line error of a key the domain refused (``error``: its 401 or 403).

    Args:
        needs: what the key's user must be allowed, for the message.
    """
    reply = str(error).partition(": HTTP ")[2] or str(error.status)
    return AuthError(f"[{role}] api_key: {site.describe()} refused the key (HTTP {reply}; "
                     "the Automation API answers no anonymous caller): check the key, or "
                     f"make a new one on the domain for a user who may {needs}", error.status)


async def check_key(site: OdsApi, role: str, needs: str) -> Any:
    """``GET /datasets/?limit=0`` with the run's key; its reply (the total only).

    Raises:
        AuthError: the domain refused the key (:func:`refused_key`).
        ConfigError: there is no Automation API at ``[role] url``.
    """
    try:
        return await site.call("GET", "/datasets/", params={"limit": 0})
    except AuthError as error:
        raise refused_key(site, role, needs, error) from None
    except NotFound:
        raise ConfigError(f"[{role}] url {site.settings.url} has no Opendatasoft Automation "
                          "API (GET /api/automation/v1.0/datasets/ answered 404)") from None


def _field(templates: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    internal = next((t for t in templates if isinstance(t, dict)
                     and t.get("name") == "internal"), None)
    fields = internal.get("schema") if internal else None
    return next((f for f in fields or [] if isinstance(f, dict) and f.get("name") == name), None)


def _listed(choices: list[Any], labels: Any) -> str:
    """The domain's ids for a message, each with its label where the domain gives one."""
    def label(choice: str) -> str:
        by_language = labels.get(choice) if isinstance(labels, Mapping) else None
        titles = [v for v in by_language.values() if v] if isinstance(by_language, Mapping) else []
        return f"{choice} ({titles[0]})" if titles else choice

    return first_few([label(str(c)) for c in choices], SHOWN)


def check_mapped_ids(templates: list[dict[str, Any]], maps: Mapping[str, Mapping[str, str]],
                     where: str) -> list[str]:
    """Refuse ``[target.licenses]`` / ``[target.themes]`` values the domain does not have.

    A domain whose template lists no ``choices`` for the field states nothing to check
    against: its values are then taken as they are.

    Args:
        templates: what ``GET /metadata/templates/`` listed.
        maps: the settings' ``licenses`` and ``themes`` (pivot value → domain id).
        where: the domain, for the message.

    Returns:
        What was found, a clause per map given (``3 licence ids exist``).

    Raises:
        ConfigError: one line naming every unknown id of the first map that has one.
    """
    found: list[str] = []
    for setting, (name, kind) in MAPPED_IDS.items():
        wanted = maps.get(setting) or {}
        field = _field(templates, name) if wanted else None
        choices = field.get("choices") if field else None
        if not isinstance(choices, list):
            if wanted:
                found.append(f"[target.{setting}] taken as they are (the domain lists no "
                             f"{kind} ids)")
            continue
        missing = [(key, value) for key, value in wanted.items() if value not in choices]
        if missing:
            named = ", ".join(f"{key!r} = {value!r}" for key, value in missing)
            raise ConfigError(
                f"[target.{setting}] {named}: no such {kind} id on {where} (its {kind}s: "
                f"{_listed(choices, field.get('labels') if field else None)}): map to one "
                "of those ids")
        ids = sorted(set(wanted.values()))
        found.append(f"{kind} id{'s' if len(ids) > 1 else ''} {first_few([repr(i) for i in ids], SHOWN)} "
                     f"{'exist' if len(ids) > 1 else 'exists'}")
    return found
