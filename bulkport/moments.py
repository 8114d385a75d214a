"""Moments as portals write them (ISO 8601 in several spellings), made comparable."""

from __future__ import annotations

from datetime import datetime, timezone


def canonical_time(value: str | None) -> str | None:
    """``value`` (ISO 8601, naive = UTC) as UTC at millisecond precision with a ``Z``.

    Portals state the same moment in several spellings (CKAN's package dicts carry
    microseconds, its search index milliseconds and a ``Z``): compare this form only.
    """
    moment = parse_time(value)
    if moment is None:
        return None
    text = moment.replace(tzinfo=None, microsecond=moment.microsecond // 1000 * 1000).isoformat()
    return (text if "." in text else text + ".000")[:23] + "Z"


def parse_time(value: str | None) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string, or None when there is none."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None
            else moment.astimezone(timezone.utc))
