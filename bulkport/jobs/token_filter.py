"""Which tokens a ``revoke-tokens`` job selects: the ``[filter]`` table, checked and applied.

Every condition given must hold (they combine with AND); an empty filter selects every
token. ``keep_newest = N`` then spares the N newest tokens of each (user, name), whether or
not they matched, so the service holding the newest token keeps working.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from bulkport.errors import ConfigError
from bulkport.model import Token
from bulkport.settings import NonNegative, keys, setting

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE_KEYS = ("created_before", "created_after", "last_access_before")
_MOMENT = 'an ISO 8601 date or datetime (naive = UTC), or an age like "90d"'
Moment = datetime | date | str


@dataclass(frozen=True, kw_only=True)
class FilterTable:
    """The ``[filter]`` table as a job file writes it: its keys, their types and meanings.

    :func:`parse_filter` reads the table (its own checks word the errors); this class is
    the list of keys it accepts and what the key reference says of each.
    """

    users: str | list[str] | None = setting(
        None, "only the tokens of these users; not set: every user's (needs an "
              "administrator's key)")
    name: str | list[str] | None = setting(
        None, "token names to select: an exact name, a glob (* ? [) or re:<regex> (the whole "
              "name must match); any of them")
    created_before: Moment | None = setting(None, f"tokens created before this moment: {_MOMENT}")
    created_after: Moment | None = setting(None, f"tokens created after this moment: {_MOMENT}")
    last_access_before: Moment | None = setting(
        None, f"tokens not used since this moment (never used counts too): {_MOMENT}")
    never_used: bool | None = setting(None, "true: only tokens never used; false: only tokens "
                                            "used at least once")
    keep_newest: NonNegative = setting(
        0, "spare the N newest tokens of each (user, name), matched or not, so the service "
           "holding the newest keeps working")


KEYS = tuple(keys(FilterTable))


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or datetime (naive means UTC), or a relative age like ``90d``.

    Raises:
        ValueError: neither form.
    """
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return (now or datetime.now(timezone.utc)) - timedelta(**{_UNITS[unit]: amount})
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _portal_moment(value: str | None) -> datetime | None:
    """A date as a portal gives it; an unreadable one counts as unknown."""
    if not value:
        return None
    try:
        return parse_moment(value)
    except ValueError:
        return None


def name_matcher(pattern: str) -> Callable[[str], bool]:
    """``re:<regex>`` (the whole name must match), a glob with ``* ? [``, or an exact name."""
    if pattern.startswith("re:"):
        regex = re.compile(pattern[3:])
        return lambda name: regex.fullmatch(name) is not None
    if any(c in pattern for c in "*?["):
        return lambda name: fnmatch.fnmatchcase(name, pattern)
    return lambda name: name == pattern


@dataclass(frozen=True)
class TokenFilter:
    """The checked ``[filter]`` table."""

    users: tuple[str, ...] | None = None  # None: every user (needs an administrator key)
    names: tuple[str, ...] = ()
    created_before: datetime | None = None
    created_after: datetime | None = None
    last_access_before: datetime | None = None
    never_used: bool | None = None
    keep_newest: int = 0
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @cached_property
    def _name_matchers(self) -> list[Callable[[str], bool]]:
        return [name_matcher(p) for p in self.names]

    @property
    def uses_last_access(self) -> bool:
        return self.last_access_before is not None or self.never_used is not None

    def fingerprint(self) -> str:
        """The filter as written (relative dates unresolved), to recognise a saved plan."""
        return repr(sorted(self.raw.items()))

    def matches(self, token: Token) -> bool:
        """Whether ``token`` meets every condition (``keep_newest`` aside)."""
        if self.users is not None and token.user not in self.users:
            return False
        if self.names and not any(match(token.name) for match in self._name_matchers):
            return False
        created = _portal_moment(token.created_at)
        if self.created_before and (created is None or created >= self.created_before):
            return False
        if self.created_after and (created is None or created <= self.created_after):
            return False
        used = _portal_moment(token.last_access)
        if self.never_used is not None and (used is None) != self.never_used:
            return False
        # Not used since the date: a token never used at all qualifies too.
        return not (self.last_access_before and used is not None
                    and used >= self.last_access_before)

    def select(self, tokens: Iterable[Token]) -> tuple[list[Token], int]:
        """The tokens to revoke, oldest first, and how many matches ``keep_newest`` spared."""
        groups: dict[tuple[str, str], list[Token]] = defaultdict(list)
        for token in tokens:
            groups[(token.user, token.name)].append(token)
        selected: list[Token] = []
        spared = 0
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        for group in groups.values():
            group.sort(key=lambda t: (_portal_moment(t.created_at) or epoch, t.id), reverse=True)
            for rank, token in enumerate(group):
                if self.matches(token):
                    if rank < self.keep_newest:
                        spared += 1
                    else:
                        selected.append(token)
        selected.sort(key=lambda t: (t.user, t.name, _portal_moment(t.created_at) or epoch, t.id))
        return selected, spared


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"{where} must be a non-empty string or list of strings, got {value!r}")
    return tuple(items)


def parse_filter(table: Any, path: Path, now: datetime | None = None) -> TokenFilter:
    """Check the ``[filter]`` table of a job file.

    Raises:
        ConfigError: one line naming the file, the key and what is wrong.
    """
    table = table or {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [filter] must be a table")
    for key in table:
        if key not in KEYS:
            hint = difflib.get_close_matches(key, KEYS, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{path}: [filter] unknown key {key!r}{also}")
    where = f"{path}: [filter]"
    values: dict[str, Any] = {"raw": dict(table)}
    if "users" in table:
        values["users"] = _strings(table["users"], f"{where} users")
    if "name" in table:
        values["names"] = names = _strings(table["name"], f"{where} name")
        for pattern in names:
            if pattern.startswith("re:"):
                try:
                    re.compile(pattern[3:])
                except re.error as exc:
                    raise ConfigError(f"{where} name: bad regular expression {pattern!r}: "
                                      f"{exc}") from None
    for key in _DATE_KEYS:
        if key in table:
            raw = table[key]
            if isinstance(raw, datetime):  # a bare TOML datetime
                values[key] = raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
                continue
            try:
                values[key] = parse_moment(str(raw), now)
            except ValueError:
                raise ConfigError(f"{where} {key}: expected an ISO 8601 date or an age like "
                                  f"'90d', got {raw!r}") from None
    if "never_used" in table:
        if not isinstance(table["never_used"], bool):
            raise ConfigError(f"{where} never_used must be true or false")
        values["never_used"] = table["never_used"]
    if "keep_newest" in table:
        keep = table["keep_newest"]
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise ConfigError(f"{where} keep_newest must be a whole number ≥ 0, got {keep!r}")
        values["keep_newest"] = keep
    return TokenFilter(**values)
