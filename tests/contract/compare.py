"""What two servers' replies to one scenario share, once what legitimately differs is masked."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
_JTI = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Normaliser:
    """Masks one server's ids, dates, tokens and address; an id keeps its identity, as
    ``<id3>``, so that "the same id as before" is still compared."""

    def __init__(self, site: str) -> None:
        self.site = site.rstrip("/")
        self.aliases: dict[str, str] = {}

    def alias(self, value: str) -> str:
        return self.aliases.setdefault(value, f"<id{len(self.aliases) + 1}>")

    def text(self, value: str) -> str:
        value = value.replace(self.site, "<site>")
        value = _JWT.sub("<jwt>", value)
        if _JTI.match(value):
            return self.alias(value)
        value = _UUID.sub(lambda m: self.alias(m[0]), value)
        return _DATE.sub("<date>", value)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.text(k): self(value[k]) for k in sorted(value)}
        if isinstance(value, list):
            return [self(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


# Values compared as they are; every other leaf is compared by its type only (a message's
# wording, a user's e-mail hash, a licence's flags are not what clients depend on).
COMPARED_VALUES = {
    "__type", "success", "status", "count", "name", "state", "private", "capacity", "url_type",
    "format", "title", "type", "num_resources", "num_tags", "is_organization", "sysadmin", "fact",
    "sha256", "description", "notes", "id", "package_id", "owner_org", "url", "not JSON",
    "token", "user_id", "position",
}


def shape(value: Any, key: str | None = None) -> Any:
    """A normalised reply with each leaf outside :data:`COMPARED_VALUES` reduced to its type."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v, key) for v in value]
    if key in COMPARED_VALUES or key is None:
        return value
    return "<null>" if value is None else f"<{type(value).__name__}>"


def differences(left: Any, right: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every place where two normalised values differ: (path, left, right)."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = []
        for key in sorted(set(left) | set(right), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in left or key not in right:
                out.append((sub, left.get(key, "<absent>"), right.get(key, "<absent>")))
            else:
                out.extend(differences(left[key], right[key], sub))
        return out
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        pairs = enumerate(zip(left, right, strict=True))
        return [d for n, (a, b) in pairs for d in differences(a, b, f"{path}[{n}]")]
    return [] if left == right else [(path, left, right)]


def compare(simulated: dict[str, Any], real: dict[str, Any], sim_site: str,
            real_site: str) -> list[tuple[str, str, Any, Any]]:
    """(step label, path, simulator's value, real server's value) for every difference."""
    sim_norm, real_norm = Normaliser(sim_site), Normaliser(real_site)
    out = []
    for label in real:
        mine, theirs = shape(sim_norm(simulated.get(label))), shape(real_norm(real[label]))
        for path, a, b in differences(mine, theirs):
            out.append((label, path, a, b))
    return out


def explained(label: str, path: str, accepted: dict[tuple[str, str], str]) -> tuple[str, str] | None:
    """The accepted-difference entry that covers (label, path), if any."""
    for key in accepted:
        if fnmatch.fnmatchcase(label, key[0]) and fnmatch.fnmatchcase(path, key[1]):
            return key
    return None
