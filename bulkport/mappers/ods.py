"""Pivot :class:`~bulkport.model.Dataset` → Opendatasoft Automation API v1.0 records."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from bulkport.model import Dataset, Resource

LANGUAGES = ("en", "fr", "nl", "pt", "it", "ar", "de", "es", "ca", "eu", "sv")
_LANGUAGE_ALIASES = {
    "eng": "en", "english": "en", "fra": "fr", "fre": "fr", "french": "fr", "français": "fr",
    "nld": "nl", "dut": "nl", "dutch": "nl", "por": "pt", "portuguese": "pt", "ita": "it",
    "italian": "it", "ara": "ar", "arabic": "ar", "deu": "de", "ger": "de", "german": "de",
    "spa": "es", "spanish": "es", "español": "es", "cat": "ca", "catalan": "ca", "eus": "eu",
    "baq": "eu", "basque": "eu", "swe": "sv", "swedish": "sv",
}
# Extractor types for files ODS can turn into records; any other file is an attachment.
EXTRACTORS = {"CSV": "csvfile", "TSV": "csvfile", "XLS": "xlsfile", "XLSX": "xlsfile",
              "JSON": "jsonfile", "GEOJSON": "geojsonfile", "KML": "kmlfile", "SHP": "shapefile"}
_EPOCH = "1970-01-01T00:00:00Z"
# Pivot fields placed in ODS `default`/`internal`; the rest travels in the extras field.
_PLACED = {"source_id", "name", "title", "description", "keywords", "license_id", "themes",
           "publisher", "landing_page", "language", "modified", "resources", "extras"}


@dataclass(frozen=True)
class OdsMapOptions:
    """What a job file says about the target domain."""

    licenses: Mapping[str, str] = field(default_factory=dict)  # pivot licence id → ODS license_id
    themes: Mapping[str, str] = field(default_factory=dict)  # pivot theme → ODS theme_id
    language: str = "en"  # when the source has none (or one ODS does not offer)
    extras_template: str | None = None  # custom template that holds the extras as JSON
    extras_field: str = "source_extras"
    fields: Mapping[str, str] = field(default_factory=dict)  # "template.field" → pivot field


@dataclass
class OdsDataset:
    """A dataset ready to write: its ``dataset_id``, metadata and files."""

    dataset_id: str
    metadata: dict[str, dict[str, dict[str, Any]]]
    resources: list[Resource]  # tabular hosted files → resources
    attachments: list[Resource]  # other hosted files → attachments
    notes: list[str]  # what could not be placed, for the report


def dataset_id_for(name: str) -> str:
    """A valid, stable ODS ``dataset_id`` from a source slug."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug[:100] or "dataset"


def iso_datetime(value: str | None) -> str | None:
    """An ISO 8601 date-time with a zone (CKAN's are naive UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.isoformat().replace("+00:00", "Z")


def language_code(value: str | None) -> str | None:
    if not value:
        return None
    code = value.strip().lower().replace("_", "-").split("-")[0]
    code = _LANGUAGE_ALIASES.get(code, code)
    return code if code in LANGUAGES else None


def _value(v: Any) -> dict[str, Any]:
    return {"value": v}


def to_ods(ds: Dataset, opts: OdsMapOptions) -> OdsDataset:
    """Map a pivot dataset to ODS metadata templates and the files to send."""
    notes: list[str] = []
    default: dict[str, Any] = {"title": _value(ds.title or ds.name)}
    if ds.description:
        default["description"] = _value(ds.description)
    keywords = [k for k in ds.keywords if k]
    if keywords:
        default["keyword"] = _value(keywords)
    modified = iso_datetime(ds.modified) or iso_datetime(ds.created)
    if modified is None:
        notes.append("no valid modified date: set to 1970-01-01")
    default["modified"] = _value(modified or _EPOCH)
    language = language_code(ds.language)
    if ds.language and language is None:
        notes.append(f"language {ds.language!r} not offered by Opendatasoft: used {opts.language!r}")
    default["language"] = _value(language or opts.language)
    if ds.publisher:
        default["publisher"] = _value(ds.publisher)
    if ds.landing_page:
        default["references"] = _value(ds.landing_page)

    internal: dict[str, Any] = {}
    if ds.license_id:
        if ds.license_id in opts.licenses:
            internal["license_id"] = _value(opts.licenses[ds.license_id])
        else:
            notes.append(f"licence {ds.license_id!r} has no entry in [target.licenses]: left unset")
    theme_ids = [opts.themes[t] for t in ds.themes if t in opts.themes]
    notes.extend(f"theme {t!r} has no entry in [target.themes]: left out"
                 for t in ds.themes if t not in opts.themes)
    if theme_ids:
        internal["theme_id"] = _value(theme_ids)
    metadata: dict[str, dict[str, Any]] = {"default": default}
    if internal:
        metadata["internal"] = internal

    pivot = ds.as_dict()
    for target_path, pivot_field in opts.fields.items():
        template, _, name = target_path.partition(".")
        value = pivot.get(pivot_field, ds.extras.get(pivot_field))
        if value not in (None, "", []):
            metadata.setdefault(template, {})[name] = _value(value)

    carried = {k: v for k, v in pivot.items() if k not in _PLACED and v not in (None, "", [], False)}
    carried.update(ds.extras)
    links = [r for r in ds.resources if not r.hosted]
    if links or any(r.description or r.extras for r in ds.resources):
        carried["resources"] = [
            {"id": r.source_id, "name": r.name, "description": r.description,
             "format": r.format, "url": r.url if not r.hosted else "", **r.extras}
            for r in ds.resources
        ]
    if carried:
        if opts.extras_template:
            metadata.setdefault(opts.extras_template, {})[opts.extras_field] = _value(
                orjson.dumps(carried, option=orjson.OPT_SORT_KEYS).decode()
            )
        else:
            notes.extend(f"field {k!r} has no place in the target: set [target] extras_template"
                         for k in sorted(carried))

    hosted = [r for r in ds.resources if r.hosted]
    return OdsDataset(
        dataset_id=dataset_id_for(ds.name),
        metadata=metadata,
        resources=[r for r in hosted if r.format.upper() in EXTRACTORS],
        attachments=[r for r in hosted if r.format.upper() not in EXTRACTORS],
        notes=notes,
    )


def resource_body(res: Resource, file_uid: str) -> dict[str, Any]:
    """The body of ``POST /datasets/{uid}/resources/`` for an uploaded file."""
    extractor = EXTRACTORS[res.format.upper()]
    params: dict[str, Any] = {}
    if extractor == "csvfile":
        params = {"headers_first_row": True, "encoding": "utf-8", "doublequote": True,
                  "separator": "\t" if res.format.upper() == "TSV" else ","}
    return {
        "type": extractor,
        "title": res.name or res.filename,
        "params": params,
        "datasource": {"type": "uploaded_file", "file": {"uid": file_uid}},
    }
