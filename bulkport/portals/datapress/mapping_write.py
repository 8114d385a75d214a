"""Pivot :class:`~bulkport.model.Dataset` → the DataPress fields bulkport owns.

The result is the part of a DataPress dataset that bulkport writes: native fields, the
carried ``custom`` fields (see :mod:`bulkport.portals.datapress.mapping`), its links (under
deterministic UUID keys) and the metadata of the files already on the target.
:func:`minimal_patch` diffs it against the current document into a minimal JSON Patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from bulkport.model import Dataset, Resource, object_at
from bulkport.portals.datapress.mapping import (
    COLLIDED,
    DEFAULT_FIELDS,
    EXTRA_PREFIX,
    MARK,
    RESOURCES,
    RESTORABLE,
    THEMES,
    WRITABLE,
    file_format,
    is_blank,
    licence_id,
    licence_table,
    link_id,
    timeframe,
    timeframe_key,
)


@dataclass(frozen=True)
class DataPressMapOptions:
    """What a job file says about the target site."""

    team: str  # team id of new datasets
    masthead: str  # masthead id of new datasets
    teams: Mapping[str, str] = field(default_factory=dict)  # pivot organization → team id
    mastheads: Mapping[str, str] = field(default_factory=dict)  # organization → masthead id
    licences: Mapping[str, Any] = field(default_factory=dict)  # licence id → title / {url, title}
    topics: Mapping[str, str] | None = None  # pivot theme → topic id; None: leave topics alone
    fields: Mapping[str, str] = field(default_factory=dict)  # pivot field → DataPress path


def _carried_entry(res: Resource, native_format: str, native_title: str) -> dict[str, Any]:
    """What DataPress has no place for in a resource, kept in ``custom[RESOURCES]``: a
    file's own ``hash`` and a valid ``timeframe`` are held by DataPress, nothing of a link."""
    native = set()
    if res.hosted:
        native = {"hash"} | ({"timeframe"} if timeframe(res) is not None else set())
    entry: dict[str, Any] = {}
    if res.format != native_format.upper():
        entry["format"] = res.format
    if res.name != native_title:
        entry["name"] = res.name
    if res.mimetype is not None:
        entry["mimetype"] = res.mimetype
    if res.modified is not None:
        entry["modified"] = res.modified
    extras = {k: v for k, v in res.extras.items() if k not in native and v is not None}
    if extras:
        entry["extras"] = extras
    return entry


def _licence(ds: Dataset, table: Mapping[str, Mapping[str, Any]],
             custom: dict[str, Any], carry_key: str | None) -> dict[str, Any] | None:
    """The DataPress licence; the pivot id is carried when the licence alone would not
    give it back (unknown to the table, or ambiguous)."""
    if not ds.license_id and not ds.license_title:
        return None
    known = table.get(ds.license_id or "")
    licence = ({"url": known.get("url"), "title": known.get("title")} if known else
               {"url": None, "title": ds.license_title or ds.license_id})
    if ds.license_id and licence_id(licence, table) != ds.license_id and carry_key:
        custom[carry_key] = ds.license_id
    return licence


def dataset_to_datapress(ds: Dataset, options: DataPressMapOptions, *,
                         files: Mapping[str, Mapping[str, Any]] | None = None,
                         ) -> tuple[dict[str, Any], list[str]]:
    """The DataPress fields bulkport owns for ``ds``, and notes for the report.

    Args:
        options: the target's team, masthead, maps and field overrides.
        files: source resource id → ``{"id": target resource id, "version": ...}`` for the
            hosted files already on the target; the others are left out until uploaded.

    Returns:
        ``(document, notes)``: ``document`` holds ``title``, ``description``, ``tags``,
        ``licence``, ``sharing``, ``team``, ``masthead``, ``custom`` (carried fields,
        extras, the ownership mark and the resource map), ``links``, ``resources`` (file
        metadata), and ``contact`` / ``topics`` / restorable fields when there are any.
    """
    paths = {**DEFAULT_FIELDS, **options.fields}
    notes: list[str] = []
    custom: dict[str, Any] = {}
    contact: dict[str, Any] = {}
    doc: dict[str, Any] = {"title": ds.title, "description": ds.description}
    for name, path in paths.items():
        if name in ("license_id", "license_title"):
            continue  # through the licence table below
        value = getattr(ds, name)
        if name in ("title", "description") and path == name:
            continue
        if is_blank(value):
            continue
        if path.startswith("custom."):
            custom[path.removeprefix("custom.")] = value
        elif path in WRITABLE and path.startswith("contact."):
            contact[path.removeprefix("contact.")] = value
        elif path in WRITABLE:
            doc[path] = value
        else:  # mapped to nowhere, or to a field the site computes: keep it anyway
            custom[name] = value
            notes.append(f"field {name} kept in custom.{name} (DataPress path {path!r} "
                         "is not writable)")
    carry = paths["license_id"].removeprefix("custom.") if paths["license_id"].startswith(
        "custom.") else None
    doc["licence"] = _licence(ds, licence_table(options.licences), custom, carry)
    doc["tags"] = list(ds.keywords)
    doc["sharing"] = "private" if ds.private else "public"
    organization = ds.organization or ""
    doc["team"] = options.teams.get(organization, options.team)
    doc["masthead"] = options.mastheads.get(organization, options.masthead)
    if contact:
        # Only when the source has one: a contact typed on the site is not wiped out.
        doc["contact"] = {"name": contact.get("name"), "email": contact.get("email")}
    if ds.themes:
        custom[THEMES] = list(ds.themes)
    if options.topics is not None:
        topics = [options.topics[t] for t in ds.themes if t in options.topics]
        doc["topics"] = list(dict.fromkeys(topics))
        unmapped = [t for t in ds.themes if t not in options.topics]
        if unmapped:
            notes.append(f"themes with no topic in [target.topics] kept in custom.{THEMES}")
    # Keys a carried field may use, whether or not this dataset fills them: an extra of
    # the same name goes elsewhere, the same way every time.
    reserved = {p.removeprefix("custom.") for p in paths.values() if p.startswith("custom.")}
    reserved |= {MARK, RESOURCES, THEMES, *custom}
    for key, value in ds.extras.items():
        if value is None:
            continue
        top = key.removeprefix(EXTRA_PREFIX)
        if key.startswith(EXTRA_PREFIX) and top in RESTORABLE:
            doc[top] = value
        else:
            # Prefixed when taken (or already prefixed, so that reading strips one level).
            clash = key in reserved or key.startswith(COLLIDED)
            custom[COLLIDED + key if clash else key] = value
    custom[MARK] = ds.source_id
    entries, links, resources = _resources(ds, files or {}, notes)
    if entries:
        custom[RESOURCES] = entries
    doc["custom"] = custom
    doc["links"] = links
    doc["resources"] = resources
    return doc, notes


def _resources(ds: Dataset, files: Mapping[str, Mapping[str, Any]], notes: list[str]
               ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The resource map (in source order), the links and the known files' metadata."""
    entries: dict[str, Any] = {}
    links: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    for res in ds.resources:
        if not res.hosted:
            if not res.url:
                notes.append("links without a URL are not written (DataPress requires one)")
                continue
            item = link_id(ds.source_id, res.source_id)
            title = res.name or res.url  # DataPress refuses a link without a title
            links[item] = {"url": res.url, "title": title, "description": res.description}
            entries[res.source_id] = {"id": item, **_carried_entry(res, "", title)}
            continue
        known = files.get(res.source_id)
        if known is None:
            continue
        resources[known["id"]] = {"title": res.name, "description": res.description,
                                  "timeframe": timeframe(res)}
        entry = {"id": known["id"], **_carried_entry(res, file_format(upload_name(res)), res.name)}
        if known.get("version") is not None:
            entry["version"] = known["version"]
        entries[res.source_id] = entry
    return entries, links, resources


def upload_name(res: Resource) -> str:
    """The file name to upload: DataPress derives the format from its extension, so a
    name that is only an extension (".csv", what CKAN makes of "人口統計.csv") gets a stem."""
    name = res.filename
    return f"{res.name or res.source_id}{name}" if name.startswith(".") else name


def upload_fields(res: Resource) -> dict[str, Any]:
    """The metadata sent with a file's chunked upload."""
    fields: dict[str, Any] = {"title": res.name, "description": res.description}
    frame = timeframe(res)
    if frame is not None:
        fields["timeframe"] = frame
    return fields


# ---- the diff that becomes a PATCH ----------------------------------------------------

_MERGED = ("custom", "contact")  # objects shared with people: only bulkport's keys compared
_ITEMS = ("links", "resources")  # objects of items: only bulkport's items compared


def owned_view(current: Mapping[str, Any], wanted: Mapping[str, Any],
               stale: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The part of ``current`` that ``wanted`` speaks about, for a minimal diff.

    Args:
        stale: ids of links and files bulkport wrote before and the source no longer has:
            kept in the view so that the diff removes them.
    """
    view: dict[str, Any] = {}
    for key, want in wanted.items():
        if key not in current:
            if want is None:  # a site that leaves out empty fields: nothing to write
                view[key] = None
            continue
        have = current[key]
        if key in _MERGED and isinstance(have, dict) and isinstance(want, dict):
            have = _project(have, want)
        elif key in _ITEMS and isinstance(have, dict) and isinstance(want, dict):
            have = {item_id: (_project(item, want[item_id])
                              if item_id in want and isinstance(item, dict)
                              and isinstance(want[item_id], dict) else item)
                    for item_id, item in have.items() if item_id in want or item_id in stale}
        view[key] = have
    return view


def _project(have: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """``have`` on the keys of ``want``; a key left out stands for null where null is wanted."""
    return {k: have.get(k) for k in want if k in have or want[k] is None}


def minimal_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The RFC 6902 operations that turn ``current`` into ``wanted`` on bulkport's fields.

    Returns:
        The operations (empty when the site already holds ``wanted``); links and files
        bulkport recorded in ``custom`` that ``wanted`` no longer lists are removed.
    """
    wanted = dict(wanted)
    custom = dict(wanted.get("custom") or {})
    previous = object_at(object_at(current, "custom"), RESOURCES)
    if previous and RESOURCES not in custom:
        custom[RESOURCES] = {}  # the source has no resource left: forget the old ones
    wanted["custom"] = custom
    if isinstance(wanted.get("resources"), dict) and isinstance(current.get("resources"), dict):
        wanted["resources"] = _site_spelling(current["resources"], wanted["resources"])
    keep = {e.get("id") for e in (custom.get(RESOURCES) or {}).values()}
    stale = frozenset(e["id"] for e in previous.values()
                      if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"] not in keep)
    return list(jsonpatch.make_patch(owned_view(current, wanted, stale), wanted))


def _site_spelling(have: Mapping[str, Any], want: Mapping[str, Any]) -> dict[str, Any]:
    """``want``'s files with ``timeframe`` spelt as the site spells it in each file: a
    field the site does not know would be stripped and patched again at every run."""
    out: dict[str, Any] = {}
    for item_id, item in want.items():
        key = timeframe_key(have.get(item_id))
        if isinstance(item, Mapping) and key != "timeframe" and "timeframe" in item:
            item = {(key if k == "timeframe" else k): v for k, v in item.items()}
        out[item_id] = item
    return out


def as_document(record: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset as ``GET dataset/{id}`` shows it, from either that or an ``export.json``
    record (resources and links as lists with their ids inside, team, masthead and topics
    as ``{id, title}``)."""
    doc = dict(record)
    for key in ("resources", "links"):
        if isinstance(doc.get(key), list):
            doc[key] = {item["id"]: {k: v for k, v in item.items() if k != "id"}
                        for item in doc[key] if isinstance(item, Mapping) and "id" in item}
    for key in ("team", "masthead"):
        if isinstance(doc.get(key), Mapping):
            doc[key] = doc[key].get("id")
    if isinstance(doc.get("topics"), list):
        doc["topics"] = [t.get("id") if isinstance(t, Mapping) else t for t in doc["topics"]]
    return doc


def patch_label(operation: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """A JSON Patch operation as the difference a person reads: ``title``,
    ``custom.version``, ``resource 'Data 2020' missing``.

    Args:
        names: link or file id on the site → the resource's name.
    """
    pointer = str(operation.get("path", ""))
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    if not parts or not parts[0]:
        return "(dataset)"
    if parts[0] in ("links", "resources") and len(parts) > 1:
        what = ("fields" if len(parts) > 2 else
                {"add": "missing", "remove": "on the target only"}.get(operation["op"], "fields"))
        return f"resource {names.get(parts[1], parts[1])!r} {what}"
    if parts[0] == "custom" and len(parts) > 1:
        return "resources" if parts[1] == RESOURCES else f"custom.{parts[1]}"
    return parts[0]
