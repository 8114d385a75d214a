"""Pure functions that translate portal records to and from the pivot model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` in ``record`` (None when absent).

    A CKAN-style extras list (``[{"key": k, "value": v}]``) is searched by key, so
    ``extras.language`` finds the extra named ``language``.
    """
    current: Any = record
    for part in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and all(isinstance(e, Mapping) and "key" in e for e in current):
            current = next((e.get("value") for e in current if e["key"] == part), None)
        else:
            return None
    return current
