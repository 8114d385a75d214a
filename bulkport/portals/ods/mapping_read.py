"""Opendatasoft Automation API v1.0 records → pivot :class:`~bulkport.model.Dataset`.

The reverse of :func:`bulkport.portals.ods.mapping.to_ods`, with the same :class:`OdsMapOptions`:
licence and theme ids go back through the job file's maps reversed (an id no map knows is
kept verbatim, and also as an ``ods:internal.*`` extra so that a trip back to Opendatasoft
restores it), fields no pivot field takes become ``ods:<template>.<field>`` extras, and the
JSON bulkport wrote into the extras template is unpacked, so that CKAN → Opendatasoft → CKAN
gives back what CKAN had. Uploaded files and attachments become hosted resources, remote
(HTTP) resources links; data that is neither comes from the explore API's export.

A domain that is itself a bulkport mirror target holds an ownership mark (``mark_field``,
or any field named ``bulkport_source_id``): it says where a copy came from, not what the
dataset is, so it is dropped rather than carried on to the next portal.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import orjson

from bulkport.errors import MappingError
from bulkport.model import VALUE_FIELDS, Dataset, Resource, object_at, text
from bulkport.portals.ckan.mapping import MARK
from bulkport.portals.ods.mapping import ODS_PREFIX, OdsMapOptions, language_code

# Extractor type → the format of the file it reads (when the file name has no extension).
FORMATS = {"csvfile": "CSV", "xlsfile": "XLSX", "jsonfile": "JSON", "geojsonfile": "GEOJSON",
           "kmlfile": "KML", "shapefile": "SHP", "gpxfile": "GPX", "xmlfile": "XML",
           "mapinfofile": "MIF"}
EXPORTS = ("auto", "always", "never")
_READ = {"default": {"title", "description", "keyword", "modified", "language", "publisher",
                     "references"},
         "internal": {"license_id", "theme_id"}}
_SCALARS = VALUE_FIELDS
_RESOURCE_KEYS = ("id", "name", "description", "format", "url", "file")
_MISSING = object()


@dataclass(frozen=True)
class OdsReadOptions:
    """Where a domain's files are read from, and when to export records."""

    api: str  # https://{domain}/api/automation/v1.0
    explore: str  # https://{domain}/api/explore/v2.1
    export: str = "auto"  # auto: when some data can be neither downloaded nor linked
    export_format: str = "csv"
    organization_from_publisher: bool = True


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _reverse(mapping: Mapping[str, str]) -> dict[str, str]:
    """ODS id → pivot value; when two pivot values share an id, the first one wins."""
    reverse: dict[str, str] = {}
    for pivot_value, ods_id in mapping.items():
        reverse.setdefault(ods_id, pivot_value)
    return reverse


def organization_slug(publisher: str) -> str:
    """A portal-neutral organization name (lowercase ASCII, digits, dashes) for a publisher."""
    ascii_text = unicodedata.normalize("NFKD", publisher).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:90].strip("-")
    return name if len(name) >= 2 else "org-" + hashlib.sha1(publisher.encode()).hexdigest()[:8]


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].upper() if "." in name.strip(".") else ""


def remote_url(source: Mapping[str, Any]) -> str | None:
    """The URL of an HTTP datasource: the connection's server plus the relative part."""
    connection = source.get("connection")
    base = connection.get("url") if isinstance(connection, Mapping) else None
    if not isinstance(base, str) or not base:
        return None  # a reusable connection not expanded: its URL is not in the record
    relative = source.get("relative_url") or ""
    if not isinstance(relative, str) or not relative:
        return base
    return base.rstrip("/") + ("" if relative[0] in "?#" else "/") + relative.lstrip("/")


def resource_file_url(read: OdsReadOptions, uid: str, file_uid: str) -> str:
    """Where the Automation API serves the file of an uploaded resource (what is read)."""
    return f"{read.api}/datasets/{uid}/resources/files/{quote(file_uid)}/download/"


def attachment_file_url(read: OdsReadOptions, uid: str, attachment_uid: str) -> str:
    """Where the Automation API serves an attachment (what is read)."""
    return f"{read.api}/datasets/{uid}/attachments/{quote(attachment_uid)}/download/"


def _resource(res: Mapping[str, Any], uid: str, read: OdsReadOptions) -> Resource | None:
    """An uploaded file (hosted) or a remote file (a link); None for other datasources."""
    source = object_at(res, "datasource")
    title = text(res.get("title")) or ""
    kind = FORMATS.get(str(res.get("type")), "")
    common: dict[str, Any] = {"source_id": text(res.get("uid")) or title, "name": title,
              "modified": text(res.get("updated_at"))}
    if source.get("type") == "uploaded_file":
        file = object_at(source, "file")
        file_uid = text(file.get("uid"))
        if not file_uid:
            return None
        # The list gives the file's uid only; its display name is the uploaded file's name.
        display = text(file.get("filename")) or text(res.get("display_name")) or ""
        name = display if _extension(display) else f"{title or file_uid}.{kind.lower() or 'bin'}"
        return Resource(**common, hosted=True, file_name=name,
                        url=resource_file_url(read, uid, file_uid),
                        format=_extension(name) or kind, mimetype=text(file.get("mimetype")))
    if source.get("type") == "http":
        url = remote_url(source)
        connection = source.get("connection")
        extras: dict[str, Any] = {} if url else {
            "ods:connection": text(connection.get("uid"))
            if isinstance(connection, Mapping) else None}
        return Resource(**common, url=url or "", format=kind, extras=extras)
    return None


def _attachment(att: Mapping[str, Any], uid: str, read: OdsReadOptions) -> Resource:
    att_uid = text(att.get("uid")) or ""
    name = text(att.get("filename")) or att_uid
    return Resource(source_id=att_uid, name=name, file_name=name, format=_extension(name),
                    url=attachment_file_url(read, uid, att_uid),
                    hosted=True, mimetype=text(att.get("mimetype")),
                    modified=text(att.get("created_at")))


def _take(pool: list[Resource], attribute: str, value: str | None) -> Resource | None:
    """Remove and return the first resource of ``pool`` whose ``attribute`` is ``value``."""
    for n, candidate in enumerate(pool):
        if value is not None and getattr(candidate, attribute) == value:
            return pool.pop(n)
    return None


def _restore_resources(entries: list[Any], listed: list[Resource],
                       attachments: list[Resource]) -> list[Resource]:
    """The resources as the carried JSON lists them, matched to what Opendatasoft holds:
    files by name, links by URL (a link Opendatasoft never held comes back from the JSON).
    What was added on Opendatasoft since follows, in its order."""
    files = [r for r in listed if r.hosted]
    links = [r for r in listed if not r.hosted]
    out: list[Resource] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        name, url, file = text(entry.get("name")) or "", text(entry.get("url")), text(entry.get("file"))
        if url:
            found = _take(links, "url", url)
        else:  # a file: an attachment keeps its name, a resource is titled by its name
            found = (_take(attachments, "file_name", file) or _take(files, "name", name or file)
                     or (None if file else _take(attachments, "name", name)))
            if found is None:
                continue  # the file never reached Opendatasoft: nothing to read
        base = found or Resource(source_id="", name=name, url=url or "")
        out.append(replace(
            base, source_id=text(entry.get("id")) or base.source_id or (url or ""), name=name,
            description=text(entry.get("description")) or "",
            format=text(entry.get("format")) or base.format,
            extras={k: v for k, v in entry.items() if k not in _RESOURCE_KEYS}))
    return [*out, *[r for r in listed if r in files or r in links], *attachments]


def _export(ds: Mapping[str, Any], title: str, read: OdsReadOptions) -> Resource:
    fmt = read.export_format
    dataset_id = str(ds["dataset_id"])
    query = "?delimiter=%2C&with_bom=false" if fmt == "csv" else ""
    return Resource(
        source_id=f"{ds['uid']}/export.{fmt}", name=f"{title} ({fmt.upper()} export)",
        url=f"{read.explore}/catalog/datasets/{quote(dataset_id)}/exports/{fmt}{query}",
        format=fmt.upper(), hosted=True, file_name=f"{dataset_id}.{fmt}",
        description="Every record of the dataset, exported from Opendatasoft.",
        modified=text(ds.get("updated_at")))


def from_ods(record: Any, opts: OdsMapOptions, read: OdsReadOptions) -> Dataset:
    """Map an Opendatasoft dataset with its resources and attachments to the pivot.

    Args:
        record: ``{"dataset": {...}, "resources": [...], "attachments": [...]}`` as the
            Automation API lists them.

    Raises:
        MappingError: the dataset lacks its ``uid`` or ``dataset_id``, or is malformed.
    """
    ds = record.get("dataset") if isinstance(record, Mapping) else None
    if not isinstance(ds, Mapping) or not text(ds.get("uid")) or not text(ds.get("dataset_id")):
        raise MappingError("Opendatasoft dataset without 'uid' or 'dataset_id'")
    uid, dataset_id = str(ds["uid"]), str(ds["dataset_id"])
    metadata = ds.get("metadata") or {}
    if not isinstance(metadata, Mapping) or not all(isinstance(v, Mapping) for v in metadata.values()):
        raise MappingError(f"dataset {dataset_id}: 'metadata' is not an object of templates")
    values = {t: {k: v.get("value") for k, v in f.items() if isinstance(v, Mapping)}
              for t, f in metadata.items()}
    default, internal = values.get("default", {}), values.get("internal", {})

    consumed = {(t, f) for t, names in _READ.items() for f in names}
    consumed |= {(t, f) for t, _, f in (path.partition(".") for path in opts.fields)}
    consumed |= {(t, MARK) for t in values} | ({opts.mark} if opts.mark else set())
    carried: dict[str, Any] = {}
    raw = values.get(opts.extras_template or "", {}).get(opts.extras_field)
    if isinstance(raw, str):
        try:
            carried = orjson.loads(raw)
        except orjson.JSONDecodeError:
            carried = {}
        if isinstance(carried, dict):
            consumed.add((opts.extras_template or "", opts.extras_field))
        else:
            carried = {}
    extras = {f"{ODS_PREFIX}{t}.{k}": v for t, names in values.items() for k, v in names.items()
              if (t, k) not in consumed and v is not None}

    licenses, themes = _reverse(opts.licenses), _reverse(opts.themes)
    license_ods, theme_ods = text(internal.get("license_id")), _strings(internal.get("theme_id"))
    if license_ods and license_ods not in licenses:
        extras[f"{ODS_PREFIX}internal.license_id"] = license_ods
    if any(t not in themes for t in theme_ods):
        extras[f"{ODS_PREFIX}internal.theme_id"] = theme_ods
    scalars: dict[str, Any] = {
        "title": text(default.get("title")) or dataset_id,
        "description": text(default.get("description")) or "",
        "keywords": _strings(default.get("keyword")), "modified": text(default.get("modified")),
        "language": text(default.get("language")), "publisher": text(default.get("publisher")),
        "landing_page": text(default.get("references")), "created": text(ds.get("created_at")),
        "license_id": licenses.get(license_ods, license_ods) if license_ods else None,
        "themes": [themes.get(t, t) for t in theme_ods],
    }
    for path, pivot_field in opts.fields.items():
        template, _, name = path.partition(".")
        value = values.get(template, {}).get(name)
        if value is not None:
            (scalars if pivot_field in _SCALARS else extras)[pivot_field] = value

    # The originals bulkport carried, where Opendatasoft still holds what it made of them.
    language = carried.pop("language", _MISSING)
    if language is not _MISSING and (language_code(language) or opts.language) == scalars["language"]:
        scalars["language"] = language
    licence = carried.pop("license_id", _MISSING)
    if licence is not _MISSING and opts.licenses.get(licence) == license_ods:
        scalars["license_id"] = licence
        extras.pop(f"{ODS_PREFIX}internal.license_id", None)
    original_themes = carried.pop("themes", _MISSING)
    if isinstance(original_themes, list) and theme_ods == [
            opts.themes[t] for t in original_themes if t in opts.themes]:
        scalars["themes"] = original_themes
        extras.pop(f"{ODS_PREFIX}internal.theme_id", None)
    entries = carried.pop("resources", None)
    carried.pop("private", None)  # is_restricted says it
    for key, value in carried.items():
        if key in _SCALARS:
            scalars[key] = value
        else:
            extras[key] = value
    if not scalars.get("organization") and read.organization_from_publisher and scalars["publisher"]:
        scalars["organization"] = organization_slug(scalars["publisher"])

    listed_raw = [r for r in record.get("resources") or [] if isinstance(r, Mapping)]
    listed = [r for r in (_resource(r, uid, read) for r in listed_raw) if r is not None]
    attachments = [_attachment(a, uid, read) for a in record.get("attachments") or []
                   if isinstance(a, Mapping)]
    resources = (_restore_resources(entries, listed, attachments) if isinstance(entries, list)
                 else [*listed, *attachments])
    unreachable = len(listed) < len(listed_raw) or any(not r.hosted and not r.url for r in listed)
    if ds.get("is_published") and (read.export == "always" or (
            read.export == "auto" and (unreachable or not listed_raw))):
        resources.append(_export(ds, scalars["title"], read))
    return Dataset.from_fields(uid, dataset_id, scalars, private=bool(ds.get("is_restricted")),
                               resources=resources, extras=extras)
