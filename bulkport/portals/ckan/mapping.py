"""CKAN package dicts ⇄ pivot :class:`~bulkport.model.Dataset`."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import orjson

from bulkport.errors import MappingError
from bulkport.model import Dataset, Resource, lookup, text

# Where each pivot field comes from in a package; a job's [source.fields] overrides entries.
DEFAULT_FIELDS: dict[str, str] = {
    "title": "title",
    "description": "notes",
    "license_id": "license_id",
    "license_title": "license_title",
    "publisher": "organization.title",
    "organization": "organization.name",
    "author": "author",
    "author_email": "author_email",
    "maintainer": "maintainer",
    "maintainer_email": "maintainer_email",
    "version": "version",
    "landing_page": "url",
    "language": "extras.language",
    "created": "metadata_created",
    "modified": "metadata_modified",
}
# Read by the mapper itself, or derived by CKAN from other fields: never carried as extras.
_HANDLED = {"id", "name", "tags", "groups", "extras", "resources", "private", "organization",
            "owner_org", "state"}
_DERIVED = {"num_resources", "num_tags", "isopen", "license_url", "tracking_summary",
            "revision_id", "relationships_as_object", "relationships_as_subject"}
_RESOURCE_HANDLED = {"id", "name", "description", "format", "url", "url_type", "size",
                     "mimetype", "last_modified", "metadata_modified"}
_RESOURCE_DERIVED = {"package_id", "position", "state", "tracking_summary", "cache_url",
                     "cache_last_updated", "datastore_active", "revision_id", "created"}
EXTRA_PREFIX = "ckan:"  # marks a top-level package field kept in the pivot's extras
DECLARED_DATES = {"created": "issued", "modified": "modified"}  # pivot field → extra key
KEYWORDS = "bulkport_keywords"  # extra: every keyword, when some are not valid CKAN tags
THEMES = "themes"  # extra: the themes, as a JSON list, where CKAN groups do not hold them


def resource_to_pivot(res: Mapping[str, Any], dataset_id: str, index: int) -> Resource:
    if not isinstance(res, Mapping):
        raise MappingError(f"dataset {dataset_id}: resource #{index} is not an object")
    rid = text(res.get("id")) or f"{dataset_id}-{index}"
    size = res.get("size")
    extras = {k: v for k, v in res.items()
              if k not in _RESOURCE_HANDLED and k not in _RESOURCE_DERIVED and v not in (None, "")}
    return Resource(
        source_id=rid,
        name=text(res.get("name")) or "",
        url=text(res.get("url")) or "",
        format=(text(res.get("format")) or "").upper().lstrip("."),
        description=text(res.get("description")) or "",
        hosted=res.get("url_type") == "upload",
        size=size if isinstance(size, int) and size >= 0 else None,
        mimetype=text(res.get("mimetype")),
        modified=text(res.get("last_modified") or res.get("metadata_modified")),
        extras=extras,
    )


def _json_strings(value: Any) -> list[str]:
    """A JSON list of strings kept in an extra, or [] when it is not one."""
    try:
        items = orjson.loads(value) if isinstance(value, str) else None
    except orjson.JSONDecodeError:
        return []
    return items if isinstance(items, list) and all(isinstance(i, str) for i in items) else []


def _keywords(tags: list[str], kept: Any) -> list[str]:
    """The tags, or the full keyword list bulkport kept beside them when some of it could
    not be tags (unless the tags were edited since: then the tags plus the refused ones)."""
    stored = _json_strings(kept)
    if not stored:
        return tags
    refused = [k for k in stored if not _TAG_OK.match(k)]
    if {k for k in stored if _TAG_OK.match(k)} == set(tags):
        return stored
    return tags + refused


def package_to_dataset(pkg: Any, *, fields: Mapping[str, str] | None = None) -> Dataset:
    """Map a CKAN package dict (as ``package_search``/``package_show`` return it).

    Args:
        fields: overrides of :data:`DEFAULT_FIELDS` (pivot field → dotted source path).

    Raises:
        MappingError: the package lacks an id or a name, or its parts are malformed.
    """
    if not isinstance(pkg, Mapping):
        raise MappingError(f"package is not an object: {type(pkg).__name__}")
    pkg_id, name = text(pkg.get("id")), text(pkg.get("name"))
    if not pkg_id or not name:
        raise MappingError(f"package {pkg_id or name or '?'}: missing 'id' or 'name'")
    paths = {**DEFAULT_FIELDS, **(fields or {})}
    unknown = set(paths) - set(DEFAULT_FIELDS)
    if unknown:
        raise MappingError(f"unknown pivot field(s) in field map: {', '.join(sorted(unknown))}")
    values = {f: lookup(pkg, path) for f, path in paths.items()}
    # A dataset's own dates, kept in DCAT-style extras (as ckanext-dcat and bulkport write
    # them), win over CKAN's record dates, which only say when this copy was written.
    declared = {f: key for f, key in DECLARED_DATES.items() if f not in (fields or {})
                and lookup(pkg, f"extras.{key}") not in (None, "")}
    values.update({f: lookup(pkg, f"extras.{key}") for f, key in declared.items()})

    tags, groups, resources = pkg.get("tags") or [], pkg.get("groups") or [], pkg.get("resources") or []
    for label, value in (("tags", tags), ("groups", groups), ("resources", resources)):
        if not isinstance(value, list):
            raise MappingError(f"package {name}: '{label}' is not a list")
    extras_list = pkg.get("extras") or []
    if not isinstance(extras_list, list) or not all(
        isinstance(e, Mapping) and "key" in e for e in extras_list
    ):
        raise MappingError(f"package {name}: 'extras' is not a list of {{key, value}}")

    consumed_top = {path.split(".")[0] for path in paths.values() if not path.startswith("extras.")}
    consumed_extras = {path.split(".", 1)[1] for path in paths.values() if path.startswith("extras.")}
    consumed_extras |= {*declared.values(), KEYWORDS}
    if not groups and _json_strings(lookup(pkg, f"extras.{THEMES}")):
        consumed_extras.add(THEMES)
    extras: dict[str, Any] = {e["key"]: e.get("value") for e in extras_list
                              if e["key"] not in consumed_extras}
    for key, value in pkg.items():
        if key in _HANDLED or key in _DERIVED or key in consumed_top:
            continue
        if value not in (None, "", [], {}):
            extras[EXTRA_PREFIX + key] = value

    keywords = _keywords([t["name"] if isinstance(t, Mapping) else str(t) for t in tags],
                         lookup(pkg, f"extras.{KEYWORDS}"))
    themes = ([g["name"] if isinstance(g, Mapping) else str(g) for g in groups]
              or _json_strings(lookup(pkg, f"extras.{THEMES}")))
    return Dataset.from_fields(
        pkg_id, name, {**values, "keywords": keywords, "themes": themes},
        private=bool(pkg.get("private")),
        resources=[resource_to_pivot(r, pkg_id, i) for i, r in enumerate(resources)],
        extras=extras)


# ---- pivot → CKAN ---------------------------------------------------------------------

MARK = "bulkport_source_id"  # extra (package) or field (resource): the source record's id
VERSION = "bulkport_source_version"  # resource field: the source file's size and date
_NAME_MAX, _TAG_MAX = 100, 100
_TAG_OK = re.compile(r"^[\w \-.]{2,100}$")
_VALID_NAME = re.compile(r"^[a-z0-9_-]{2,100}$")
# Top-level CKAN fields carried as "ckan:" extras that must not be written back as they are.
_NOT_RESTORED = {"creator_user_id", "metadata_created", "metadata_modified", "type"}
_RESOURCE_NOT_RESTORED = {"hash", "url_type", "size", "mimetype_inner", "resource_type",
                          "datastore_contains_all_records_of_source_file"}


def slug(text: str) -> str:
    """A CKAN ``name``: 2–100 characters, lowercase ASCII letters, digits, ``-`` and ``_``.
    A name that is one already is kept as it is."""
    if _VALID_NAME.match(text):
        return text
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", ascii_text).strip("-_")[:_NAME_MAX].strip("-_")
    return name if len(name) >= 2 else f"dataset-{_digest(text)}"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def slug_variant(name: str, source_id: str) -> str:
    """A second, still deterministic name for when ``name`` belongs to another dataset."""
    suffix = "-" + _digest(source_id)
    return name[:_NAME_MAX - len(suffix)].rstrip("-_") + suffix


def _as_extra(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def dataset_to_package(ds: Dataset, *, name: str, owner_org: str | None = None,
                       licenses: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """The package dict to write for ``ds`` (resources aside), and notes for the report.

    CKAN fields the source carried as ``ckan:`` extras go back to the top level; every other
    extra becomes a CKAN extra (JSON when it is not text); the source id is marked in
    :data:`MARK` so that the target record is recognised as bulkport's on the next run.
    """
    notes: list[str] = []
    license_id = (licenses or {}).get(ds.license_id or "", ds.license_id)
    tags = [t for t in ds.keywords if _TAG_OK.match(t)]
    bad_tags = [t for t in ds.keywords if not _TAG_OK.match(t)]
    pkg: dict[str, Any] = {
        "name": name, "title": ds.title, "notes": ds.description, "private": ds.private,
        "license_id": license_id or "", "author": ds.author or "",
        "author_email": ds.author_email or "", "maintainer": ds.maintainer or "",
        "maintainer_email": ds.maintainer_email or "", "version": ds.version or "",
        "url": ds.landing_page or "", "tags": [{"name": t} for t in tags],
    }
    if owner_org:
        pkg["owner_org"] = owner_org
    extras: dict[str, str] = {}
    for key, value in ds.extras.items():
        field_name = key.removeprefix(EXTRA_PREFIX)
        if key.startswith(EXTRA_PREFIX) and field_name not in pkg:
            if field_name not in _NOT_RESTORED:
                pkg[field_name] = value
        elif value is not None:
            extras[key] = _as_extra(value)
    if bad_tags:
        extras[KEYWORDS] = _as_extra(ds.keywords)  # the whole list, in its order
        notes.append(f"keywords CKAN refuses as tags kept in extra {KEYWORDS}")
    if ds.language:
        extras.setdefault("language", ds.language)
    for field_name, key in DECLARED_DATES.items():  # CKAN sets its own record dates
        if getattr(ds, field_name):
            extras.setdefault(key, getattr(ds, field_name))
    if ds.themes:
        extras.setdefault(THEMES, _as_extra(ds.themes))
    if ds.publisher and not owner_org:
        extras.setdefault("publisher", ds.publisher)
    extras[MARK] = ds.source_id
    pkg["extras"] = [{"key": k, "value": v} for k, v in sorted(extras.items())]
    return pkg, notes


def resource_to_ckan(res: Resource) -> dict[str, Any]:
    """The resource fields to write (the file itself travels separately)."""
    out: dict[str, Any] = {"name": res.name, "description": res.description,
                           "format": res.format, MARK: res.source_id}
    if not res.hosted:
        out["url"] = res.url  # a link stays a link
    for key, value in res.extras.items():
        if key not in out and key not in _RESOURCE_NOT_RESTORED and value is not None:
            out[key] = value if isinstance(value, (str, int, float, bool)) else _as_extra(value)
    return out
