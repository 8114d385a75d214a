"""DataPress dataset JSON ⇄ pivot :class:`~bulkport.model.Dataset`.

A DataPress dataset has native places for a title, an HTML description, tags, a licence
``{url, title}``, a contact, a team and a masthead, its sharing, topics, file resources
(an object keyed by 3-character id) and links. Every pivot field without such a place is
carried in ``custom`` under the name :data:`DEFAULT_FIELDS` gives it, and read back from
there, so a round trip through DataPress keeps every mapped field. Per-resource leftovers
(a link's format, a file's MIME type, extras) ride in ``custom[RESOURCES]``, the entry that
also records which target item holds which source resource.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from bulkport.errors import MappingError
from bulkport.model import Dataset, Resource, lookup, text
from bulkport.portals.ckan.mapping import slug

MARK = "bulkport_source_id"  # custom field: the source record's id (ownership mark)
RESOURCES = "bulkport_resources"  # custom field: source resource id → target item and leftovers
THEMES = "themes"  # custom field: the pivot themes (topics are site-specific ids)
EXTRA_PREFIX = "datapress:"  # marks a top-level DataPress field kept in the pivot's extras
COLLIDED = "extra:"  # an extra whose key a carried field already uses
# Top-level fields a pivot extra may set again (the others are the site's or derived).
RESTORABLE = ("nextReviewDate", "descriptionIframe")

# Where each pivot field lives in a DataPress dataset; a job's [source.fields] /
# [target.fields] overrides entries ("" = nowhere). ``custom.*`` entries are carried fields.
DEFAULT_FIELDS: dict[str, str] = {
    "name": "custom.name",
    "title": "title",
    "description": "description",
    "license_id": "custom.license_id",
    "license_title": "licence.title",
    "publisher": "custom.publisher",
    "organization": "custom.organization",
    "author": "custom.author",
    "author_email": "custom.author_email",
    "maintainer": "contact.name",
    "maintainer_email": "contact.email",
    "version": "custom.version",
    "landing_page": "custom.landing_page",
    "language": "custom.language",
    "created": "custom.created",
    "modified": "custom.modified",
}
# Native DataPress values read when a default ``custom.*`` path is empty (a dataset that
# was not written by bulkport).
_FALLBACKS = {"name": "id", "publisher": "team.title", "landing_page": "webpage",
              "created": "createdAt", "modified": "updatedAt"}
WRITABLE = frozenset({"title", "description", "contact.name", "contact.email"})
# Read by the mapper itself or derived by the site: never carried as extras.
_HANDLED = frozenset({"id", "title", "description", "descriptionText", "tags", "topics",
                      "licence", "contact", "team", "sharing", "custom", "resources", "links",
                      "createdAt", "updatedAt", "webpage"})
_RESOURCE_OWN = ("hash", "timeframe")  # resource extras DataPress holds natively
# A file's period: ``timeframe`` in the official client and its suite (what DataPress
# answers); the references disagree, so ``timeFrame`` is read too. The first one wins.
TIMEFRAME_KEYS = ("timeframe", "timeFrame")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_LINK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://bulkport.invalid/datapress/link")

# Pivot (CKAN) licence ids → DataPress licences; [target.licenses] adds or overrides.
LICENCES: dict[str, dict[str, str | None]] = {
    "cc-by": {"url": "https://creativecommons.org/licenses/by/4.0/", "title": "CC BY 4.0"},
    "cc-by-sa": {"url": "https://creativecommons.org/licenses/by-sa/4.0/",
                 "title": "CC BY-SA 4.0"},
    "cc-zero": {"url": "https://creativecommons.org/publicdomain/zero/1.0/",
                "title": "CC0 1.0"},
    "cc-nc": {"url": "https://creativecommons.org/licenses/by-nc/4.0/",
              "title": "CC BY-NC 4.0"},
    "odc-odbl": {"url": "https://opendatacommons.org/licenses/odbl/", "title": "ODC ODbL"},
    "odc-by": {"url": "https://opendatacommons.org/licenses/by/", "title": "ODC-By"},
    "odc-pddl": {"url": "https://opendatacommons.org/licenses/pddl/", "title": "ODC PDDL"},
    "uk-ogl": {"url": "https://www.nationalarchives.gov.uk/doc/open-government-licence/"
                      "version/3/", "title": "Open Government Licence v3.0"},
    "gfdl": {"url": "https://www.gnu.org/licenses/fdl-1.3.html", "title": "GNU FDL"},
    "other-open": {"url": None, "title": "Other (Open)"},
    "other-pd": {"url": None, "title": "Other (Public Domain)"},
    "other-at": {"url": None, "title": "Other (Attribution)"},
    "other-nc": {"url": None, "title": "Other (Non-Commercial)"},
    "other-closed": {"url": None, "title": "Other (Not Open)"},
}


def is_blank(value: Any) -> bool:
    """None, an empty string, list or object: a value not worth writing."""
    return value is None or value in ("", [], {})


def _norm_url(url: Any) -> str:
    return re.sub(r"^https?://(www\.)?", "", str(url or "")).rstrip("/").lower()


def licence_table(overrides: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """:data:`LICENCES` with a job's overrides.

    Args:
        overrides: licence id → a title, or ``{url, title}``.

    Returns:
        Licence id → ``{url, title}``.
    """
    table = {k: dict(v) for k, v in LICENCES.items()}
    for key, value in (overrides or {}).items():
        table[key] = ({"url": None, "title": value} if isinstance(value, str)
                      else {"url": value.get("url"), "title": value.get("title") or key})
    return table


def licence_id(licence: Any, table: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The pivot licence id of a DataPress licence: by URL, then by title, else verbatim."""
    if not isinstance(licence, Mapping):
        return None
    url, title = licence.get("url"), text(licence.get("title"))
    if url:
        found = next((k for k, v in table.items() if v.get("url")
                      and _norm_url(v["url"]) == _norm_url(url)), None)
        if found:
            return found
    if title:
        found = next((k for k, v in table.items()
                      if str(v.get("title", "")).casefold() == title.casefold()), None)
        return found or title
    return text(url)


def link_id(dataset_id: str, resource_id: str) -> str:
    """A deterministic link id: DataPress keeps a UUID key, so a re-run finds its link."""
    return str(uuid.uuid5(_LINK_NAMESPACE, f"{dataset_id}/{resource_id}"))


# DataPress gives a JPEG the format "image" (the official client's suite says so), not
# its extension: a source format that differs is then carried, and read back as it was.
_FORMAT_OF = {"jpg": "image", "jpeg": "image"}


def file_format(filename: str) -> str:
    """The ``format`` DataPress derives from a file's name: the lower-case extension, or
    ``image`` for a JPEG."""
    stem, dot, extension = filename.rpartition(".")
    extension = extension.lower() if dot and stem else ""
    return _FORMAT_OF.get(extension, extension)


def md5_of(res: Resource) -> str | None:
    """The MD5 the source reports for a file (DataPress's ``hash``), if it reports one."""
    value = res.extras.get("hash")
    return value if isinstance(value, str) and _MD5.match(value) else None


def timeframe(res: Resource) -> dict[str, str] | None:
    """A resource's ``{from, to}`` (a CKAN source may hold it as JSON text)."""
    value = res.extras.get("timeframe")
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, Mapping) and isinstance(value.get("from"), str) and isinstance(
            value.get("to"), str):
        return {"from": value["from"], "to": value["to"]}
    return None


def item_timeframe(item: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``{from, to}`` of a DataPress file resource, whichever spelling holds it."""
    for key in TIMEFRAME_KEYS:
        if isinstance(item.get(key), Mapping):
            return dict(item[key])
    return None


def timeframe_key(item: Any) -> str:
    """The spelling a site's file resource uses (``timeframe`` when it shows neither)."""
    if isinstance(item, Mapping) and TIMEFRAME_KEYS[0] not in item:
        return next((key for key in TIMEFRAME_KEYS if key in item), TIMEFRAME_KEYS[0])
    return TIMEFRAME_KEYS[0]


def _items(value: Any, label: str, dataset_id: str) -> list[dict[str, Any]]:
    """``resources``/``links`` as a list with ids (GET gives an object, export a list)."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = [{**item, "id": key} for key, item in value.items() if isinstance(item, Mapping)]
    if not isinstance(value, list) or not all(isinstance(i, Mapping) for i in value):
        raise MappingError(f"dataset {dataset_id}: '{label}' is neither an object nor a list")
    return sorted(value, key=lambda item: (item.get("order") is None, item.get("order") or 0))


def _ident(value: Any) -> str | None:
    """A team/masthead/topic: an id (GET) or ``{id, title}`` (export)."""
    return text(value.get("id")) if isinstance(value, Mapping) else text(value)


def _resource(item: Mapping[str, Any], entry: Mapping[str, Any], *, link: bool) -> Resource:
    native = text(item.get("format")) or ""
    extras = dict(entry.get("extras") or {})
    if not link:
        if text(item.get("hash")):
            extras["hash"] = item["hash"]
        frame = item_timeframe(item)
        if frame is not None:
            extras["timeframe"] = frame
    size = item.get("size")
    return Resource(
        source_id=str(item["id"]),
        name=entry.get("name", text(item.get("title")) or ""),
        url=text(item.get("url")) or "",
        format=entry.get("format", native.upper()),
        description=text(item.get("description")) or "",
        hosted=not link and (bool(item.get("origin")) or isinstance(size, int)),
        size=size if isinstance(size, int) and not link else None,
        mimetype=entry.get("mimetype"),
        modified=entry.get("modified"),
        extras=extras,
    )


def datapress_to_dataset(record: Any, *, fields: Mapping[str, str] | None = None,
                         licences: Mapping[str, Any] | None = None) -> Dataset:
    """Map a DataPress dataset (as ``GET /dataset/{id}`` or ``export.json`` give it).

    Args:
        fields: overrides of :data:`DEFAULT_FIELDS` (pivot field → dotted DataPress path).
        licences: overrides of the licence table (see :func:`licence_table`).

    Returns:
        The pivot dataset; DataPress fields it has no place for are ``datapress:`` extras.

    Raises:
        MappingError: the record has no id, or its parts are malformed.
    """
    if not isinstance(record, Mapping):
        raise MappingError(f"dataset is not an object: {type(record).__name__}")
    dataset_id = text(record.get("id"))
    if not dataset_id:
        raise MappingError("dataset without an 'id'")
    unknown = set(fields or {}) - set(DEFAULT_FIELDS)
    if unknown:
        raise MappingError(f"unknown pivot field(s) in field map: {', '.join(sorted(unknown))}")
    paths = {**DEFAULT_FIELDS, **(fields or {})}
    custom = record.get("custom") or {}
    if not isinstance(custom, Mapping):
        raise MappingError(f"dataset {dataset_id}: 'custom' is not an object")
    # A dataset bulkport wrote carries its fields: one it lacks was empty at the source,
    # and the site's own values (team, dates, page) describe the copy, not the record.
    native = not isinstance(custom.get(MARK), str)
    values: dict[str, Any] = {}
    for name, path in paths.items():
        value = lookup(record, path) if path else None
        if is_blank(value) and native and name in _FALLBACKS and name not in (fields or {}):
            value = lookup(record, _FALLBACKS[name])
        values[name] = value
    table = licence_table(licences)
    team = record.get("team")
    team_title = text(team.get("title")) if isinstance(team, Mapping) else None
    if is_blank(values["organization"]) and native and "organization" not in (fields or {}):
        values["organization"] = slug(team_title) if team_title else _ident(team)
    if is_blank(values["license_id"]):
        values["license_id"] = licence_id(record.get("licence"), table)

    consumed = {p.removeprefix("custom.") for p in paths.values() if p.startswith("custom.")}
    consumed |= {MARK, RESOURCES, THEMES}
    extras: dict[str, Any] = {}
    for key, value in custom.items():
        if key not in consumed:
            extras[key.removeprefix(COLLIDED)] = value
    tops = {p.split(".")[0] for p in paths.values() if p and not p.startswith("custom.")}
    for key, value in record.items():
        if key in _HANDLED or key in tops or is_blank(value) or (key == "masthead" and not native):
            continue  # (the masthead of a copy is where the job put it)
        extras[EXTRA_PREFIX + key] = _ident(value) if key == "masthead" else value
    contact = record.get("contact")
    if isinstance(contact, Mapping):
        rest = {k: v for k, v in contact.items() if k not in ("name", "email") and not is_blank(v)}
        if rest:
            extras[EXTRA_PREFIX + "contact"] = rest

    themes = custom.get(THEMES)
    if not isinstance(themes, list):
        themes = [t for t in map(_ident, record.get("topics") or []) if t]
    tags = record.get("tags") or []
    if not isinstance(tags, list):
        raise MappingError(f"dataset {dataset_id}: 'tags' is not a list")
    name = text(values.pop("name")) or dataset_id
    values["title"] = text(values["title"]) or dataset_id
    return Dataset.from_fields(
        dataset_id, name, {**values, "keywords": tags, "themes": themes},
        private=record.get("sharing") == "private",
        resources=_resources(record, custom, dataset_id), extras=extras)


def _resources(record: Mapping[str, Any], custom: Mapping[str, Any],
               dataset_id: str) -> list[Resource]:
    """Files then links in page order, or in the source's order when bulkport wrote them."""
    entries = custom.get(RESOURCES)
    by_item = ({e["id"]: e for e in entries.values() if isinstance(e, Mapping) and "id" in e}
               if isinstance(entries, Mapping) else {})
    files = _items(record.get("resources"), "resources", dataset_id)
    links = _items(record.get("links"), "links", dataset_id)
    out = [_resource(i, by_item.get(i["id"], {}), link=False) for i in files]
    out += [_resource(i, by_item.get(i["id"], {}), link=True) for i in links]
    position = {item_id: n for n, item_id in enumerate(by_item)}
    return sorted(out, key=lambda r: position.get(r.source_id, len(position)))
