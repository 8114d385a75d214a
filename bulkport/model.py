"""The pivot records every mapper translates to and from.

A source record becomes a :class:`Dataset` holding :class:`Resource` items; anything the
mapper did not consume is kept in ``extras`` so that nothing is dropped silently. A
:class:`Token` is an API token as the revocation job sees it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote

import orjson

TABULAR_FORMATS = frozenset(
    {"CSV", "TSV", "XLS", "XLSX", "ODS", "JSON", "GEOJSON", "KML", "SHP", "PARQUET", "XML"}
)


# The pivot's optional text fields: each mapper reads every one from some place in a record.
TEXT_FIELDS = ("license_id", "license_title", "publisher", "organization", "author",
               "author_email", "maintainer", "maintainer_email", "version", "landing_page",
               "language", "created", "modified")
VALUE_FIELDS = frozenset({"title", "description", "keywords", "themes", *TEXT_FIELDS})

_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def text(value: Any) -> str | None:
    """A source value as text; None when blank (absent, null, "", an empty list or object)."""
    if value is None or value in ("", [], {}):
        return None
    return value if isinstance(value, str) else str(value)


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass
class Resource:
    """One file or link of a dataset."""

    source_id: str
    name: str
    url: str = ""
    format: str = ""  # upper-case short format ("CSV"), empty when unknown
    description: str = ""
    hosted: bool = False  # True when the source portal hosts the bytes (to transfer)
    size: int | None = None
    mimetype: str | None = None
    modified: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    file_name: str | None = None  # the stored file's name, when the URL does not end with it

    @property
    def filename(self) -> str:
        """A file name for the upload: the stored one, else from the URL or the name."""
        if self.file_name:
            return self.file_name
        # Download URLs quote the name ("Donn%C3%A9es.csv"); the upload wants it as it is.
        tail = unquote(self.url.rsplit("/", 1)[-1].split("?", 1)[0]) if self.url else ""
        if tail and "." in tail:
            return tail
        ext = f".{self.format.lower()}" if self.format else ""
        return f"{self.name or self.source_id}{ext}"

    @property
    def is_tabular(self) -> bool:
        return self.format.upper() in TABULAR_FORMATS

    @property
    def content_version(self) -> str | None:
        """What the source says about the file's content (size, date and checksum where it
        states them), or None when it says nothing. A target sends the file again when this
        changes: a file replaced by one of the same size still gets a new date or checksum.
        """
        checksum = self.extras.get("hash")
        checksum = checksum if isinstance(checksum, str) else ""
        if self.size is None and not self.modified and not checksum:
            return None
        version = f"{self.size}|{self.modified or ''}"
        return f"{version}|{checksum}" if checksum else version


@dataclass
class Dataset:
    """A dataset in portal-neutral form (DCAT-like)."""

    source_id: str
    name: str  # slug, stable across runs
    title: str
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    license_id: str | None = None
    license_title: str | None = None
    themes: list[str] = field(default_factory=list)
    publisher: str | None = None  # organization title
    organization: str | None = None  # organization name (slug)
    author: str | None = None
    author_email: str | None = None
    maintainer: str | None = None
    maintainer_email: str | None = None
    version: str | None = None
    landing_page: str | None = None
    language: str | None = None
    created: str | None = None
    modified: str | None = None
    private: bool = False
    resources: list[Resource] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, source_id: str, name: str, values: Mapping[str, Any], *,
                    private: bool, resources: list[Resource],
                    extras: dict[str, Any]) -> Dataset:
        """The one way a mapper builds a pivot dataset.

        Args:
            values: pivot field (of :data:`VALUE_FIELDS`) → what the source holds; each text
                field is taken as text (None when blank), the title falls back to the name.

        Raises:
            ValueError: ``values`` names a field the pivot does not have (a mapper's bug).
        """
        unknown = set(values) - VALUE_FIELDS
        if unknown:
            raise ValueError(f"not pivot fields: {', '.join(sorted(unknown))}")
        return cls(source_id=source_id, name=name, title=text(values.get("title")) or name,
                   description=text(values.get("description")) or "",
                   keywords=[str(k) for k in values.get("keywords") or []],
                   themes=[str(t) for t in values.get("themes") or []],
                   private=private, resources=resources, extras=extras,
                   **{f: text(values.get(f)) for f in TEXT_FIELDS})

    def as_dict(self) -> dict[str, Any]:
        """The record as plain data, as ``dataclasses.asdict`` gives it but without its deep
        copies (a tenth of the cost): the values are shared, do not mutate them."""
        record = {name: getattr(self, name) for name in _field_names(type(self))}
        record["resources"] = [{name: getattr(r, name) for name in _field_names(type(r))}
                               for r in self.resources]
        return record

    def fingerprint(self) -> str:
        """A hash of the whole record: equal fingerprints mean nothing to write."""
        blob = orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class Token:
    """An API token (CKAN) or API key (Opendatasoft): its id and facts, never its value."""

    id: str  # CKAN: the jti; Opendatasoft: the key's uid
    name: str  # CKAN: the token name; Opendatasoft: the key's label
    user: str
    created_at: str | None = None  # ISO 8601 as the portal gives it
    last_access: str | None = None

    def row(self) -> dict[str, Any]:
        """The token as the report and the journal show it."""
        return {"id": self.id, "user": self.user, "name": self.name,
                "created_at": self.created_at, "last_access": self.last_access}

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


def object_at(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``record[key]`` when it is a JSON object, else an empty one: a portal's record is
    read defensively, a field of the wrong shape is as good as absent."""
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}
