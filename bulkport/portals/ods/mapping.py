"""Pivot :class:`~bulkport.model.Dataset` ⇄ Opendatasoft Automation API v1.0 records.

Both directions share one :class:`OdsMapOptions` (the job file's maps), so a round trip
through Opendatasoft is lossless for the mapped fields: what a template cannot hold travels
as JSON in the extras template, and every field of every template read from Opendatasoft
that no pivot field takes is kept as an ``ods:<template>.<field>`` extra, which
:func:`to_ods` puts back where it came from.
"""

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
           "publisher", "landing_page", "language", "modified", "resources", "extras",
           "file_name"}
ODS_PREFIX = "ods:"  # pivot extras "ods:<template>.<field>": a field no pivot field takes
# Template field types whose values are not text: a copy that went through a portal that
# stores text only (CKAN extras) is JSON, decoded again before it is written back.
_JSON_TYPES = frozenset({"multitext", "list", "enumlist", "uri_enumlist", "boolean", "int",
                         "double"})


@dataclass(frozen=True)
class OdsMapOptions:
    """What a job file says about the target domain."""

    licenses: Mapping[str, str] = field(default_factory=dict)  # pivot licence id → ODS license_id
    themes: Mapping[str, str] = field(default_factory=dict)  # pivot theme → ODS theme_id
    language: str = "en"  # when the source has none (or one ODS does not offer)
    extras_template: str | None = None  # custom template that holds the extras as JSON
    extras_field: str = "source_extras"
    fields: Mapping[str, str] = field(default_factory=dict)  # "template.field" → pivot field
    # The target domain's templates (name → field → type), when known: "ods:" extras go
    # back only into fields that exist there; None restores them all.
    schema: Mapping[str, Mapping[str, str]] | None = None
    # "template.field" holding the source id: the ownership mark of bulkport's copies.
    mark_field: str | None = None

    @property
    def mark(self) -> tuple[str, str] | None:
        """``mark_field`` as (template, field), or None when there is no mark."""
        if not self.mark_field:
            return None
        template, _, name = self.mark_field.partition(".")
        return template, name


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
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,99}", name):
        return name  # already a valid id (which may end in "_" or "-"): kept as it is
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug[:100] or "dataset"


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def iso_datetime(value: str | None) -> str | None:
    """An RFC 3339 date-time, what Opendatasoft's datetime fields take (CKAN's are naive
    UTC). One that already is RFC 3339 is kept as written, so that a value read from
    Opendatasoft goes back unchanged; other ISO 8601 forms (no seconds, a "+0200" zone)
    are rewritten, since the API refuses them."""
    if not value:
        return None
    if _RFC3339.fullmatch(value):
        return value
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
    if ds.license_id is not None and ds.license_id in opts.licenses:
        internal["license_id"] = _value(opts.licenses[ds.license_id])
    # A theme no map knows stays when it is one of the source domain's own theme ids.
    verbatim = _json_list(ds.extras.get(f"{ODS_PREFIX}internal.theme_id"))
    theme_ids = [opts.themes.get(t, t) for t in ds.themes if t in opts.themes or t in verbatim]
    kept_in = (f"kept in {opts.extras_template}.{opts.extras_field} only"
               if opts.extras_template else None)  # where a value no field takes goes
    notes.extend(f"theme {t!r} has no entry in [target.themes]: {kept_in or 'left out'}"
                 for t in ds.themes if t not in opts.themes and t not in verbatim)
    if theme_ids:
        internal["theme_id"] = _value(theme_ids)
    metadata: dict[str, dict[str, Any]] = {"default": default, "internal": internal}

    pivot = ds.as_dict()
    for target_path, pivot_field in opts.fields.items():
        template, _, name = target_path.partition(".")
        value = pivot.get(pivot_field, ds.extras.get(pivot_field))
        if value not in (None, "", []):
            metadata.setdefault(template, {})[name] = _value(value)
    restored = _restore(ds.extras, metadata, opts.schema)
    unmapped_licence = bool(ds.license_id) and ds.license_id not in opts.licenses
    if unmapped_licence:
        kept = internal.get("license_id") == _value(ds.license_id)  # the source's own id
        unmapped_licence = not kept
        notes.append(f"licence {ds.license_id!r} has no entry in [target.licenses]: "
                     + ("kept as the source's Opendatasoft id" if kept
                        else f"license_id left unset, {kept_in}" if kept_in else "left unset"))

    carried = {k: v for k, v in pivot.items() if k not in _PLACED and v not in (None, "", [], False)}
    carried.update({k: v for k, v in ds.extras.items() if k not in restored})
    if opts.extras_template:
        # Originals a template could not hold as they are, so that a return trip restores them.
        if (language or opts.language) != ds.language:
            carried["language"] = ds.language
        if unmapped_licence:
            carried["license_id"] = ds.license_id
        if any(t not in opts.themes and t not in verbatim for t in ds.themes):
            carried["themes"] = ds.themes
    links = [r for r in ds.resources if not r.hosted]
    if links or (opts.extras_template and ds.resources) or any(
            r.description or r.extras for r in ds.resources):
        # With the file names, a return trip matches each file to its original resource.
        carried["resources"] = [
            {"id": r.source_id, "name": r.name, "description": r.description,
             "format": r.format, "url": r.url if not r.hosted else "",
             **({"file": r.filename} if r.hosted else {}), **r.extras}
            for r in ds.resources
        ]
    if carried:
        if opts.extras_template:
            metadata.setdefault(opts.extras_template, {})[opts.extras_field] = _value(
                orjson.dumps(carried, option=orjson.OPT_SORT_KEYS).decode()
            )
        else:
            notes.extend(_unplaced(carried, ds.resources))

    if opts.mark is not None:  # last: no other value may take the mark's place
        template, name = opts.mark
        metadata.setdefault(template, {})[name] = _value(ds.source_id)
    if not metadata["internal"]:
        del metadata["internal"]
    hosted = [r for r in ds.resources if r.hosted]
    return OdsDataset(
        dataset_id=dataset_id_for(ds.name),
        metadata=metadata,
        resources=[r for r in hosted if r.format.upper() in EXTRACTORS],
        attachments=[r for r in hosted if r.format.upper() not in EXTRACTORS],
        notes=notes,
    )


def _unplaced(carried: Mapping[str, Any], resources: list[Resource]) -> list[str]:
    """What is lost without an extras template, said as it is: the hosted files are sent
    (as resources and attachments) and privacy is the dataset's ``is_restricted``, so
    only the links and what the files' records say beyond a title go."""
    hint = "set [target] extras_template"
    notes = [f"field {k!r} has no place in the target: {hint}"
             for k in sorted(carried) if k not in ("resources", "private")]
    if any(not r.hosted for r in resources):
        notes.append(f"links (resources without a hosted file) have no place in the target: "
                     f"{hint}")
    if any(r.hosted and (r.description or r.extras) for r in resources):
        notes.append("descriptions and extras of the files have no place in the target (the "
                     f"files themselves are sent): {hint}")
    return notes


def _json_list(value: Any) -> list[Any]:
    """A list, also when it went through a portal that stored it as JSON text."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return []
    return value if isinstance(value, list) else []


def _restore(extras: Mapping[str, Any], metadata: dict[str, dict[str, Any]],
             schema: Mapping[str, Mapping[str, str]] | None) -> set[str]:
    """Put ``ods:<template>.<field>`` extras back into ``metadata`` (a mapped value wins);
    return the keys used. Without a ``schema`` every such extra goes back."""
    used: set[str] = set()
    for key, value in extras.items():
        template, _, name = key.removeprefix(ODS_PREFIX).partition(".")
        if not key.startswith(ODS_PREFIX) or not name or value is None:
            continue
        kind = (schema.get(template) or {}).get(name) if schema is not None else ""
        if kind is None:
            continue  # the target has no such field: the value travels with the extras
        if kind in _JSON_TYPES and isinstance(value, str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                continue
        metadata.setdefault(template, {}).setdefault(name, _value(value))
        used.add(key)
    return used


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
