"""The DataPress dataset schema: what a document may hold, checked the way Zod reports it.

DataPress validates datasets with Zod: a 400 lists one issue per problem, each with a
``path`` (list of keys), a ``code`` and a ``message``. Unknown keys are stripped, fields
marked immutable in the docs keep their stored value (or, with ``reject_immutable``, give
an issue), resources and links are objects keyed by 3-character ids, and an invalid key
is replaced by a fresh id.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from bulkport.testing.datapress.store import ITEM_ALPHABET, DataPressStore

Issue = dict[str, Any]
Path = list[str | int]
MISSING: Any = object()
SHARING = ("public", "private")
# Lower-case extensions a file resource may carry (the site detects them from the name).
FORMATS = frozenset({
    "csv", "tsv", "txt", "json", "geojson", "xml", "xls", "xlsx", "xlsm", "ods", "pdf",
    "doc", "docx", "odt", "ppt", "pptx", "zip", "gz", "kml", "kmz", "gpkg", "shp", "parquet",
    "html", "htm", "png", "jpg", "jpeg", "gif", "svg", "rdf", "ttl", "sav", "dta", "sql",
    "image"})
# Extensions DataPress files under a kind rather than their own name: the official client's
# suite expects an uploaded ``.jpg`` to come back as ``"image"``. (Other image types are not
# documented either way and keep their extension.)
FORMAT_OF = {"jpg": "image", "jpeg": "image"}
ITEM_ID_RE = re.compile(f"^[{ITEM_ALPHABET}]{{3}}$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}$")
_TAG_RE = re.compile(r"<[^>]*>")
IMMUTABLE = ("id", "descriptionText", "createdAt")
RESOURCE_IMMUTABLE = ("origin", "format", "hash", "size", "url")
EMPTY_QA = {"hash": None, "size": None, "mimetype": None, "timestamp": None,
            "httpStatus": None}


def valid_item_id(key: str) -> bool:
    """3 characters of the documented alphabet, or a UUID."""
    return bool(ITEM_ID_RE.match(key) or UUID_RE.match(key))


def strip_html(text: str) -> str:
    """``descriptionText``: the description without its markup."""
    return html.unescape(_TAG_RE.sub("", text)).strip()


def file_format(filename: str) -> str:
    """A file's format as DataPress detects it: the lower-case extension, or its kind
    (:data:`FORMAT_OF`)."""
    stem, dot, extension = filename.rpartition(".")
    extension = extension.lower() if dot and stem else ""
    return FORMAT_OF.get(extension, extension)


_JSON_TYPES: dict[type, str] = {str: "string", list: "array", dict: "object"}


def _received(value: Any) -> str:
    if value is MISSING:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return _JSON_TYPES.get(type(value), "unknown")


def invalid_type(path: Path, expected: str, value: Any) -> Issue:
    received = _received(value)
    message = "Required" if value is MISSING else f"Expected {expected}, received {received}"
    return {"code": "invalid_type", "expected": expected, "received": received,
            "path": path, "message": message}


def field_required(path: Path) -> Issue:
    """The issue of an empty required string, word for word as documented."""
    return {"code": "too_small", "minimum": 1, "type": "string", "inclusive": True,
            "exact": False, "message": "This field is required", "path": path}


def custom(path: Path, message: str) -> Issue:
    return {"code": "custom", "message": message, "path": path}


def invalid_enum(path: Path, options: list[str], value: Any) -> Issue:
    expected = " | ".join(f"'{option}'" for option in options)
    return {"code": "invalid_enum_value", "options": options, "received": value, "path": path,
            "message": f"Invalid enum value. Expected {expected}, received '{value}'"}


def summary(title: str, issues: list[Issue]) -> str:
    """``message`` of a 400: the title, then one ``* path: message`` line per issue."""
    lines = [f"* {'.'.join(str(p) for p in issue['path'])}: {issue['message']}"
             for issue in issues]
    return "\n".join([title, *lines])


class Checker:
    """Collects issues while reading values out of a document."""

    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def string(self, data: dict[str, Any], key: str, path: Path, *, default: Any = MISSING,
               nullable: bool = False, nonempty: bool = False) -> Any:
        value = data.get(key, default)
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.issues.append(invalid_type([*path, key], "string", value))
            return default if default is not MISSING else ""
        if nonempty and not value.strip():
            self.issues.append(field_required([*path, key]))
        return value

    def integer(self, data: dict[str, Any], key: str, path: Path, default: Any) -> Any:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.issues.append(invalid_type([*path, key], "number", value))
        elif value != int(value):
            self.issues.append({"code": "invalid_type", "expected": "integer",
                                "received": "float", "path": [*path, key],
                                "message": "Expected integer, received float"})
        else:
            return int(value)
        return default

    def obj(self, data: dict[str, Any], key: str, path: Path, *, nullable: bool = False,
            default: Any = MISSING) -> Any:
        value = data.get(key, default)
        if value is None and nullable:
            return None
        if not isinstance(value, dict):
            self.issues.append(invalid_type([*path, key], "object", value))
            return None
        return value

    def moment(self, data: dict[str, Any], key: str, path: Path, *, kind: str,
               default: Any = MISSING, nullable: bool = False) -> Any:
        """An ISO 8601 ``datetime`` or a ``date`` (``YYYY-MM-DD``) string."""
        known = len(self.issues)
        value = self.string(data, key, path, default=default, nullable=nullable)
        if not isinstance(value, str) or len(self.issues) > known:
            return value
        try:
            if kind == "date":
                date.fromisoformat(value)
            else:
                datetime.fromisoformat(value)
                if "T" not in value:
                    raise ValueError(value)
        except ValueError:
            self.issues.append({"code": "invalid_string", "validation": kind,
                                "message": f"Invalid {kind}", "path": [*path, key]})
        return value

    def strings(self, data: dict[str, Any], key: str, path: Path,
                allowed: dict[str, str] | None = None) -> list[Any]:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.issues.append(invalid_type([*path, key], "array", value))
            return []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.issues.append(invalid_type([*path, key, index], "string", item))
            elif allowed is not None and item not in allowed:
                self.issues.append(invalid_enum([*path, key, index], list(allowed), item))
        return list(value)

    def choice(self, data: dict[str, Any], key: str, path: Path, options: list[str],
               default: Any = MISSING) -> Any:
        value = data.get(key, default)
        if not isinstance(value, str):
            self.issues.append(invalid_type([*path, key], "string", value))
        elif value not in options:
            self.issues.append(invalid_enum([*path, key], options, value))
        return value

    def immutable(self, data: dict[str, Any], old: dict[str, Any], key: str, path: Path,
                  reject: bool) -> Any:
        """The value before the edit: an edit is ignored, or an issue when ``reject``."""
        if reject and data.get(key, MISSING) != old.get(key, MISSING):
            self.issues.append(custom([*path, key], "This field is read-only"))
        return old.get(key)


def _timeframe(check: Checker, data: dict[str, Any], path: Path) -> Any:
    # Spelled ``timeframe`` in the dataset JSON, as in the upload body: the official
    # client's suite reads it back under that name (``timeFrame`` is stripped, unknown).
    frame = check.obj(data, "timeframe", path, nullable=True, default=None)
    if frame is None:
        return None
    where = [*path, "timeframe"]
    return {"from": check.string(frame, "from", where), "to": check.string(frame, "to", where)}


def _resource(check: Checker, data: dict[str, Any], old: dict[str, Any] | None, path: Path,
              order: int, reject: bool) -> dict[str, Any]:
    out = {"title": check.string(data, "title", path, default=""),
           "description": check.string(data, "description", path, default=""),
           "timeframe": _timeframe(check, data, path),
           "order": check.integer(data, "order", path, order)}
    if old is not None:
        for key in RESOURCE_IMMUTABLE:
            out[key] = check.immutable(data, old, key, path, reject)
        if old.get("origin"):
            del out["url"]  # a hosted file's link is built when shown
        return out
    # A resource added by PATCH has no file behind it: it points at ``url``.
    out.update(origin=None, format=check.string(data, "format", path), hash=None, size=None,
               url=check.string(data, "url", path, nonempty=True))
    if isinstance(out["format"], str) and out["format"] not in FORMATS:
        check.issues.append(custom([*path, "format"],
                                   f"Unknown file format: '{out['format']}'"))
    return out


def _link(check: Checker, data: dict[str, Any], old: dict[str, Any] | None, path: Path,
          order: int, reject: bool) -> dict[str, Any]:
    out = {"url": check.string(data, "url", path, nonempty=True),
           "title": check.string(data, "title", path, nonempty=True),
           "order": check.integer(data, "order", path, order),
           "description": check.string(data, "description", path, default="")}
    if old is not None:
        out["qa"] = check.immutable(data, old, "qa", path, reject)
    else:
        out["qa"] = dict(EMPTY_QA)
    return out


Item = Callable[[Checker, dict[str, Any], "dict[str, Any] | None", Path, int, bool],
                dict[str, Any]]


def _items(check: Checker, store: DataPressStore, data: dict[str, Any], key: str,
           old: dict[str, dict[str, Any]], build: Item, reject: bool) -> dict[str, Any]:
    """``resources`` or ``links``: new entries get a valid id and go to the end."""
    entries = check.obj(data, key, [], default={})
    if entries is None:
        return {}
    out: dict[str, Any] = {}
    end = max((entry["order"] for entry in old.values()), default=-1) + 1
    for item_id, value in entries.items():
        previous = old.get(item_id)
        if previous is None and not valid_item_id(item_id):
            item_id = store.new_item_id([*entries, *out])
        if not isinstance(value, dict):
            check.issues.append(invalid_type([key, item_id], "object", value))
            continue
        order = previous["order"] if previous is not None else end
        out[item_id] = build(check, value, previous, [key, item_id], order, reject)
        end += previous is None
    return out


def build_dataset(store: DataPressStore, data: Any, old: dict[str, Any] | None, *,
                  dataset_id: str, now: str, reject_immutable: bool = False
                  ) -> tuple[dict[str, Any], list[Issue]]:
    """The stored document made from ``data`` (a create body, or a patched document).

    Args:
        store: the site, for its teams, mastheads, topics and fresh ids.
        data: what the client wants the dataset to be.
        old: the document before a PATCH as the API showed it (hosted files with their
            ``url``); None for a create.
        dataset_id: the dataset's id.
        now: the timestamp of a create.
        reject_immutable: report an edit of an immutable field instead of ignoring it.

    Returns:
        The document to store and the issues found (store nothing if there are any).
    """
    check = Checker()
    if not isinstance(data, dict):
        return {}, [invalid_type([], "object", data)]
    reject = reject_immutable and old is not None
    description = check.string(data, "description", [], default="")
    out: dict[str, Any] = {
        "id": dataset_id,
        "title": check.string(data, "title", [], nonempty=True),
        "description": description,
        "descriptionText": strip_html(description) if isinstance(description, str) else "",
        "descriptionIframe": check.string(data, "descriptionIframe", [], default=None,
                                          nullable=True),
        "masthead": check.choice(data, "masthead", [], list(store.mastheads)),
        "tags": check.strings(data, "tags", []),
        "topics": check.strings(data, "topics", [], store.topics),
        "nextReviewDate": check.moment(data, "nextReviewDate", [], kind="date", default=None,
                                       nullable=True),
        "licence": _licence(check, data),
        "contact": check.obj(data, "contact", [], nullable=True, default=None),
        "team": check.string(data, "team", [], nonempty=True),
        "sharing": check.choice(data, "sharing", [], list(SHARING), default="public"),
        "custom": check.obj(data, "custom", [], default={}) or {},
        # Files come through the upload API once the dataset has an id, never at create.
        "resources": _items(check, store, data, "resources", old["resources"], _resource,
                            reject) if old is not None else {},
        "links": _items(check, store, data, "links", old["links"] if old else {}, _link,
                        reject),
    }
    if isinstance(out["team"], str) and out["team"] and out["team"] not in store.teams:
        check.issues.append(custom(["team"], f"Team does not exist: '{out['team']}'"))
    if old is None:
        out.update(createdAt=now, updatedAt=now)
        return out, check.issues
    for key in IMMUTABLE:
        kept = check.immutable(data, old, key, [], reject)
        if key != "descriptionText":  # derived from the description, whatever was sent
            out[key] = kept
    # Not bumped for the client, as documented: it patches /updatedAt itself, or not.
    out["updatedAt"] = check.moment(data, "updatedAt", [], kind="datetime")
    return out, check.issues


def _licence(check: Checker, data: dict[str, Any]) -> Any:
    licence = check.obj(data, "licence", [], nullable=True, default=None)
    if licence is None:
        return None
    return {"url": check.string(licence, "url", ["licence"], default=None, nullable=True),
            "title": check.string(licence, "title", ["licence"])}
