"""``package_revise``'s dict surgery: match, filter and update by nested or flattened keys.

A port of the helpers in ``ckan/lib/navl/dictization_functions.py`` (CKAN 2.10/2.11):
``check_dict``, ``resolve_string_key``, ``filter_glob_match`` and ``update_merge_*``.
Flattened keys join path parts with ``__``; a list item is picked by its index (negative
counts from the end) or by the first 5+ characters of its ``id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Path = tuple[Any, ...]


class RevisionError(Exception):
    """CKAN's ``DataError`` raised by these helpers: a key that resolves to nothing."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _path(parts: Iterable[Any]) -> str:
    return "__".join(str(part) for part in parts)


def check_dict(data: Any, select: dict[str, Any], parent: Path = ()) -> list[Path]:
    """Paths of ``select`` whose values differ from those in ``data``."""
    if not isinstance(data, dict):
        return [parent]
    unmatched: list[Path] = []
    for key, value in sorted(select.items()):
        if key not in data:
            unmatched.append((*parent, key))
        elif isinstance(value, dict):
            unmatched.extend(check_dict(data[key], value, (*parent, key)))
        elif isinstance(value, list):
            unmatched.extend(check_list(data[key], value, (*parent, key)))
        elif data[key] != value:
            unmatched.append((*parent, key))
    return unmatched


def check_list(data: Any, select: list[Any], parent: Path = ()) -> list[Path]:
    """Paths of ``select`` whose items differ from those in ``data``."""
    if not isinstance(data, list):
        return [parent]
    unmatched: list[Path] = []
    for index, value in enumerate(select):
        if index >= len(data):
            unmatched.append((*parent, index))
        elif isinstance(value, dict):
            unmatched.extend(check_dict(data[index], value, (*parent, index)))
        elif isinstance(value, list):
            unmatched.extend(check_list(data[index], value, (*parent, index)))
        elif data[index] != value:
            unmatched.append((*parent, index))
    return unmatched


def resolve_string_key(data: Any, string_key: str) -> tuple[Any, Path]:
    """The value at a flattened key and its path.

    Raises:
        RevisionError: a part names no key, index or id prefix ("Unmatched key ...").
    """
    parent: list[Any] = []
    current = data
    for key in string_key.split("__"):
        if isinstance(current, dict):
            if key not in current:
                raise RevisionError(f"Unmatched key {_path([*parent, key])}")
            parent.append(key)
            current = current[key]
            continue
        if not isinstance(current, list):
            raise RevisionError(f"Unmatched key {_path([*parent, key])}")
        if len(key) >= 5:  # an id prefix
            for index, item in enumerate(current):
                if not isinstance(item, dict) or "id" not in item:
                    raise RevisionError(f"Unmatched key {_path([*parent, key])}")
                if str(item["id"]).startswith(key):
                    parent.append(index)
                    current = item
                    break
            else:
                raise RevisionError(f"Unmatched key {_path([*parent, key])}")
            continue
        try:
            index = int(key)
            if index < -len(current) or index >= len(current):
                raise ValueError(key)
        except ValueError:
            raise RevisionError(f"Unmatched key {_path([*parent, key])}") from None
        parent.append(index)
        current = current[index]
    return current, tuple(parent)


def check_string_key(data: dict[str, Any], string_key: str, value: Any) -> list[Path]:
    """Paths under a flattened key whose values differ from ``value``."""
    current, parent = resolve_string_key(data, string_key)
    if isinstance(value, dict):
        return check_dict(current, value, parent)
    if isinstance(value, list):
        return check_list(current, value, parent)
    return [] if current == value else [parent]


def filter_glob_match(data: dict[str, Any], patterns: Iterable[str]) -> None:
    """Remove keys from ``data`` in place by glob patterns (``-x`` removes, ``+x`` keeps).

    ``*`` matches everything at its level; the first pattern that names a key wins.
    """
    _filter(data, [(p.startswith("+"), p.lstrip("-+").split("__")) for p in patterns])


def _filter(data: Any, globs: Sequence[tuple[bool, Sequence[str]]]) -> None:
    if isinstance(data, dict):
        _filter_dict(data, globs)
    elif isinstance(data, list):
        _filter_list(data, globs)


def _filter_dict(data: dict[str, Any], globs: Sequence[tuple[bool, Sequence[str]]]) -> None:
    protected: dict[str, Any] = {}
    children: dict[str, list[tuple[bool, Sequence[str]]]] = {}
    for keep, parts in globs:
        head = parts[0]
        if head == "*":
            if keep:
                protected.update(data)
            else:
                data.clear()
            continue
        if head not in data:
            continue
        if len(parts) > 1:
            children.setdefault(head, []).append((keep, parts[1:]))
        elif keep:
            protected[head] = data[head]
        else:
            del data[head]
    data.update(protected)
    for head, child_globs in children.items():
        if head in data:
            _filter(data[head], child_globs)


def _filter_list(data: list[Any], globs: Sequence[tuple[bool, Sequence[str]]]) -> None:
    protected: set[int] = set()
    removed: set[int] = set()
    children: dict[int, list[tuple[bool, Sequence[str]]]] = {}
    for keep, parts in globs:
        head = parts[0]
        if head == "*":
            if keep:
                protected.update(set(range(len(data))) - removed)
            else:
                removed.update(set(range(len(data))) - protected)
            continue
        try:
            index = resolve_string_key(data, head)[1][0]
        except RevisionError:
            continue
        if len(parts) > 1:
            children.setdefault(index, []).append((keep, parts[1:]))
        elif keep:
            if index not in removed:
                protected.add(index)
        elif index not in protected:
            removed.add(index)
        # As in CKAN, children are filtered inside the loop, once per pattern seen so far.
        for child, child_globs in children.items():
            if child not in removed - protected:
                _filter(data[child], child_globs)
    data[:] = [item for i, item in enumerate(data) if i not in removed - protected]


def update_merge_dict(data: dict[str, Any], update: Any, parent: Path = ()) -> None:
    """Merge ``update`` into ``data`` in place: dicts merge, lists merge by position.

    Raises:
        RevisionError: ``update`` is not a dict ("Expected dict for ...").
    """
    if not isinstance(update, dict):
        raise RevisionError(f"Expected dict for {_path(parent)}")
    for key, value in update.items():
        if key not in data:
            data[key] = value
        elif isinstance(data[key], dict):
            update_merge_dict(data[key], value, (*parent, key))
        elif isinstance(data[key], list):
            update_merge_list(data[key], value, (*parent, key))
        else:
            data[key] = value


def update_merge_list(data: list[Any], update: Any, parent: Path = ()) -> None:
    """Merge ``update`` into the list ``data`` item by item, appending extra items."""
    if not isinstance(update, list):
        raise RevisionError(f"Expected list for {_path(parent)}")
    for index, value in enumerate(update):
        if index >= len(data):
            data.append(value)
        elif isinstance(data[index], dict):
            update_merge_dict(data[index], value, (*parent, index))
        elif isinstance(data[index], list):
            update_merge_list(data[index], value, (*parent, index))
        else:
            data[index] = value


def update_merge_string_key(data: dict[str, Any], string_key: str, value: Any) -> None:
    """Merge ``value`` at a flattened key; a final ``__extend`` appends to a list."""
    parts = string_key.split("__")
    last, prefix = parts[-1], "__".join(parts[:-1])
    if prefix:
        current, parent = resolve_string_key(data, prefix)
    else:
        current, parent = data, ()
    if isinstance(current, dict):
        update_merge_dict(current, {last: value}, parent)
    elif isinstance(current, list):
        if last == "extend":
            if not isinstance(value, list):
                raise RevisionError(f"Expected list for {prefix}")
            current.extend(value)
            return
        child, (index,) = resolve_string_key(current, last)
        if isinstance(child, dict):
            update_merge_dict(child, value, (*parent, index))
        elif isinstance(child, list):
            update_merge_list(child, value, (*parent, index))
        else:
            current[index] = value
    else:
        raise RevisionError(f"Expected list or dict for {prefix}")
