"""``package_search`` over the in-memory store: the Solr query subset CKAN clients send.

Supported in ``q`` and ``fq``: ``*:*``, free words (matched in name, title, notes and tags),
``field:value``, ``field:"a phrase"``, ``field:prefix*``, ``field:*``, ``field:(a OR b)``,
ranges ``field:[A TO B]`` (``*`` and ``NOW`` allowed, dates or numbers), a leading ``+`` or
``-``, and clauses joined by spaces, ``AND`` or ``OR``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bulkport.testing.ckan.errors import SearchError, SearchQueryError

# Solr "string" fields match exactly; the others are tokenized text (case-insensitive).
STRING_FIELDS = frozenset({"id", "name", "state", "license_id", "owner_org", "organization",
                           "tags", "res_format", "res_url", "type", "capacity", "private",
                           "groups", "url", "version", "site_id", "res_type", "creator_user_id"})
DATE_FIELDS = frozenset({"metadata_modified", "metadata_created", "indexed_ts"})
SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id": lambda p: p["id"],
    "name": lambda p: p["name"],
    "metadata_modified": lambda p: p["metadata_modified"],
    "metadata_created": lambda p: p["metadata_created"],
    "title_string": lambda p: (p.get("title") or "").casefold(),
    "num_resources": lambda p: len(p["resources"]),
    "num_tags": lambda p: len(p["tags"]),
}
_UNITS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_NOW_RE = re.compile(r"NOW(?:([+-]\d+)(SECOND|MINUTE|HOUR|DAY)S?)?$")


@dataclass
class Clause:
    """One ``field:value`` test; ``field`` None means free text."""

    field: str | None
    kind: str  # "eq", "phrase", "prefix", "any", "range", "in"
    value: Any
    negate: bool = False


Groups = list[list[Clause]]  # every group must match; a group matches if any clause does


def parse_query(text: str) -> Groups:
    """Parse a ``q`` or ``fq`` string.

    Raises:
        SearchError: the syntax is broken (Solr would refuse it too).
    """
    groups: Groups = []
    join_next = False
    sealed = False  # the last groups are a parenthesised AND: no OR may join them
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        word_end = _scan_bare(text, i)
        word = text[i:word_end]
        if word in ("AND", "&&"):
            i = word_end
            continue
        if word in ("OR", "||"):
            if not groups:
                raise SearchError(f"Cannot parse '{text}': OR with nothing before it")
            if sealed:
                raise SearchError(f"Cannot parse '{text}': the simulator cannot OR a "
                                  "parenthesised AND")
            join_next = True
            i = word_end
            continue
        close = _closing(text, i) if text[i] == "(" else -1
        if close > 0 and _FIELDED.search(text, i, close):
            # A parenthesised query of fielded clauses, e.g. "(a:[x TO *] OR b:[x TO *])".
            inner = parse_query(text[i + 1:close])
            i, sealed = close + 1, len(inner) > 1
            if sealed and join_next:
                raise SearchError(f"Cannot parse '{text}': the simulator cannot OR a "
                                  "parenthesised AND")
            if join_next:
                groups[-1].extend(inner[0] if inner else [])
                join_next = False
            else:
                groups.extend(inner)
            continue
        clause, i = _parse_clause(text, i)
        sealed = False
        if clause is None:
            continue
        if join_next:
            groups[-1].append(clause)
            join_next = False
        else:
            groups.append([clause])
    if join_next:
        raise SearchError(f"Cannot parse '{text}': OR with nothing after it")
    return groups


_FIELDED = re.compile(r"[A-Za-z_][\w.\-]*:")


def _closing(text: str, i: int) -> int:
    """The index of the ``)`` that closes the ``(`` at ``i`` (quotes and ranges skipped)."""
    depth, j = 0, i
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 1
        elif char == '"':
            j = text.find('"', j + 1)
            if j < 0:
                break
        elif char in "[{":
            j = text.find("]" if char == "[" else "}", j)
            if j < 0:
                break
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    raise SearchError(f"Cannot parse '{text}': unbalanced parenthesis")


def _scan_bare(text: str, i: int) -> int:
    while i < len(text) and not text[i].isspace():
        i += 2 if text[i] == "\\" else 1
    return min(i, len(text))


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _parse_clause(text: str, i: int) -> tuple[Clause | None, int]:
    negate = False
    if text[i] in "+-":
        negate = text[i] == "-"
        i += 1
    elif text.startswith("NOT ", i):
        negate, i = True, i + 4
    match = re.match(r"([A-Za-z_][\w.\-]*|\*):", text[i:])
    field = None
    if match:
        field = match.group(1)
        i += match.end()
    if i >= len(text):
        raise SearchError(f"Cannot parse '{text}': a value is missing")
    char = text[i]
    if char == '"':
        end = i + 1
        while end < len(text) and text[end] != '"':
            end += 2 if text[end] == "\\" else 1
        if end >= len(text):
            raise SearchError(f"Cannot parse '{text}': unterminated quote")
        return Clause(field, "phrase", _unescape(text[i + 1:end]), negate), end + 1
    if char in "[{":
        end = text.find("]" if char == "[" else "}", i)
        if end < 0:
            raise SearchError(f"Cannot parse '{text}': unterminated range")
        parts = text[i + 1:end].split(" TO ")
        if len(parts) != 2:
            raise SearchError(f"Cannot parse '{text}': a range needs 'A TO B'")
        low, high = (_unescape(p.strip()) for p in parts)
        return Clause(field, "range", (low, high), negate), end + 1
    if char == "(":
        end = text.find(")", i)
        if end < 0:
            raise SearchError(f"Cannot parse '{text}': unbalanced parenthesis")
        values = [v.strip('"') for v in re.findall(r'"[^"]*"|\S+', text[i + 1:end])
                  if v not in ("OR", "||")]
        return Clause(field, "in", [_unescape(v) for v in values], negate), end + 1
    end = _scan_bare(text, i)
    value = _unescape(text[i:end])
    if field == "*" and value == "*":
        return None, end  # *:* matches everything
    if value == "*":
        return Clause(field, "any", None, negate), end
    if value.endswith("*"):
        return Clause(field, "prefix", value[:-1], negate), end
    return Clause(field, "eq", value, negate), end


def field_values(pkg: dict[str, Any], field: str, org_name: Callable[[str | None], str | None]
                 ) -> list[str]:
    """The indexed values of ``field`` for a stored package."""
    if field == "tags":
        return [tag["name"] for tag in pkg["tags"]]
    if field == "organization":
        name = org_name(pkg.get("owner_org"))
        return [name] if name else []
    if field in ("private", "capacity"):
        private = bool(pkg.get("private"))
        return [("true" if private else "false") if field == "private"
                else ("private" if private else "public")]
    if field.startswith("res_"):
        key = {"res_format": "format", "res_url": "url", "res_name": "name",
               "res_description": "description", "res_type": "resource_type"}.get(field)
        return [str(res[key]) for res in pkg["resources"] if key and res.get(key)]
    if field.startswith("extras_"):
        key = field[len("extras_"):]
        return [e["value"] for e in pkg["extras"] if e["key"] == key and e["value"] is not None]
    if field in ("num_resources", "num_tags"):
        return [str(len(pkg["resources" if field == "num_resources" else "tags"]))]
    if field == "text":
        return [_text_blob(pkg)]
    value = pkg.get(field)
    if value is None or isinstance(value, (dict, list)):
        return []
    return [str(value)]


def solr_value(field: str, value: Any) -> Any:
    """A field as Solr returns it to ``fl``: dates are indexed with a ``Z`` and come back
    in UTC at millisecond precision (``2024-05-01T12:00:00.123Z``, no fraction when 0)."""
    if field not in DATE_FIELDS or not isinstance(value, str) or not value:
        return value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
    text = moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat()
    return (text[:-3] if "." in text else text) + "Z"


def _text_blob(pkg: dict[str, Any]) -> str:
    tags = " ".join(tag["name"] for tag in pkg["tags"])
    return f"{pkg['name']} {pkg.get('title') or ''} {pkg.get('notes') or ''} {tags}"


def _point(value: str, field: str | None) -> Any:
    if value == "*":
        return None
    if field in DATE_FIELDS:
        now = _NOW_RE.match(value)
        if now:
            moment = datetime.now(timezone.utc).replace(tzinfo=None)
            if now.group(1):
                moment += timedelta(seconds=int(now.group(1)) * _UNITS[now.group(2)])
            return moment
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
        except ValueError:
            raise SearchError(f"Invalid Date String:'{value}'") from None
    try:
        return float(value)
    except ValueError:
        return value


def _in_range(value: str, field: str | None, low: Any, high: Any) -> bool:
    point: Any = value
    try:
        if field in DATE_FIELDS:
            point = datetime.fromisoformat(value)
        elif not isinstance(low if low is not None else high, str):
            point = float(value)
    except ValueError:
        return False
    return (low is None or point >= low) and (high is None or point <= high)


def _matches(clause: Clause, pkg: dict[str, Any],
             org_name: Callable[[str | None], str | None]) -> bool:
    field = clause.field
    values = field_values(pkg, field, org_name) if field else [_text_blob(pkg)]
    exact = field in STRING_FIELDS
    if clause.kind == "any":
        found = bool(values)
    elif clause.kind == "range":
        low, high = clause.value  # resolved by compile_filter
        found = any(_in_range(v, field, low, high) for v in values)
    elif clause.kind == "prefix":
        prefix = clause.value if exact else clause.value.casefold()
        found = any((v if exact else v.casefold()).startswith(prefix) for v in values)
    else:
        wanted = clause.value if clause.kind == "in" else [clause.value]
        if exact:
            found = any(v in wanted for v in values)
        else:
            folded = [v.casefold() for v in values]
            found = any(w.casefold() in v for w in wanted for v in folded)
    return found != clause.negate


def compile_filter(groups: Groups, org_name: Callable[[str | None], str | None]
                   ) -> Callable[[dict[str, Any]], bool]:
    """A predicate for the parsed query (range bounds are resolved once, here)."""
    resolved = [
        [Clause(c.field, c.kind, tuple(_point(v, c.field) for v in c.value), c.negate)
         if c.kind == "range" else c for c in group]
        for group in groups
    ]

    def accept(pkg: dict[str, Any]) -> bool:
        return all(any(_matches(c, pkg, org_name) for c in group) for group in resolved)

    return accept


def parse_sort(sort: str) -> list[tuple[str, bool]]:
    """``"name asc, metadata_modified desc"`` → ``[("name", False), (..., True)]``.

    Raises:
        SearchQueryError: a direction is not asc/desc.
        SearchError: a field cannot be sorted on.
    """
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) != 2 or words[1].lower() not in ("asc", "desc"):
            raise SearchQueryError('Invalid "sort" parameter')
        field, direction = words[0], words[1].lower()
        if field != "score" and field not in SORT_KEYS:
            raise SearchError(f"sort param field can't be found: {field}")
        keys.append((field, direction == "desc"))
    return keys


def sort_packages(packages: Iterable[dict[str, Any]],
                  keys: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Sort by several keys; ties keep store order, as Solr keeps index order."""
    ordered = list(packages)
    for field, descending in reversed(keys):
        if field == "score":  # every match scores alike here
            continue
        ordered.sort(key=SORT_KEYS[field], reverse=descending)
    return ordered


def facet_counts(packages: Iterable[dict[str, Any]], fields: list[str], limit: int,
                 mincount: int, org_name: Callable[[str | None], str | None]
                 ) -> dict[str, dict[str, int]]:
    """``facets``: for each field, value → number of matching packages."""
    counts: dict[str, dict[str, int]] = {field: {} for field in fields}
    for pkg in packages:
        for field in fields:
            for value in set(field_values(pkg, field, org_name)):
                counts[field][value] = counts[field].get(value, 0) + 1
    result = {}
    for field, values in counts.items():
        ranked = sorted(((v, c) for v, c in values.items() if c >= mincount),
                        key=lambda item: (-item[1], item[0]))
        result[field] = dict(ranked[:limit] if limit >= 0 else ranked)
    return result
