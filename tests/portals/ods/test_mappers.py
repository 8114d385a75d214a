"""Mappers are pure functions: CKAN package → pivot → Opendatasoft."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import orjson
import pytest

from bulkport.errors import MappingError
from bulkport.portals.ckan.mapping import package_to_dataset
from bulkport.portals.ods.mapping import OdsMapOptions, dataset_id_for, resource_body, to_ods

PACKAGE = {
    "id": "0b1c", "name": "trees-2024", "title": "Arbres de la ville 🌳", "notes": "All *trees*.",
    "license_id": "cc-by", "license_title": "Creative Commons Attribution",
    "organization": {"name": "city", "title": "City of Lyon"}, "owner_org": "o1",
    "author": "Ana", "author_email": "ana@example.org", "maintainer": None, "version": "1.0",
    "url": "https://city.example.org/trees", "private": False, "state": "active",
    "metadata_created": "2024-01-02T03:04:05.123456", "metadata_modified": "2024-02-03T04:05:06",
    "tags": [{"name": "nature"}, {"name": "arbres urbains"}], "groups": [{"name": "environment"}],
    "extras": [{"key": "language", "value": "French"}, {"key": "spatial", "value": "{}"}],
    "num_resources": 3, "num_tags": 2, "custom_field": "kept",
    "resources": [
        {"id": "r1", "name": "trees.csv", "format": "CSV", "url_type": "upload",
         "url": "https://ckan.test/dataset/0b1c/resource/r1/download/trees.csv", "size": 10},
        {"id": "r2", "name": "Guide", "format": "pdf", "url_type": "upload", "description": "d",
         "url": "https://ckan.test/dataset/0b1c/resource/r2/download/guide.pdf"},
        {"id": "r3", "name": "Portal", "format": "HTML", "url_type": "",
         "url": "https://elsewhere.test/page"},
    ],
}


def test_package_to_pivot_keeps_everything() -> None:
    ds = package_to_dataset(PACKAGE)
    assert ds.title == "Arbres de la ville 🌳"
    assert ds.keywords == ["nature", "arbres urbains"]
    assert ds.publisher == "City of Lyon"
    assert ds.language == "French"
    assert ds.themes == ["environment"]
    assert ds.extras == {"spatial": "{}", "ckan:custom_field": "kept"}
    assert [r.hosted for r in ds.resources] == [True, True, False]
    assert ds.resources[1].format == "PDF"
    assert ds.resources[0].filename == "trees.csv"


def test_field_map_override() -> None:
    ds = package_to_dataset(PACKAGE, fields={"publisher": "author", "language": "extras.spatial"})
    assert ds.publisher == "Ana"
    assert ds.language == "{}"
    assert "spatial" not in ds.extras


@pytest.mark.parametrize("bad", [
    "not a dict",
    {"name": "no-id"},
    {**PACKAGE, "resources": "oops"},
    {**PACKAGE, "extras": {"a": 1}},
])
def test_unmappable_package(bad: object) -> None:
    with pytest.raises(MappingError):
        package_to_dataset(bad)


def test_fingerprint_is_stable_and_sensitive() -> None:
    assert package_to_dataset(PACKAGE).fingerprint() == package_to_dataset(PACKAGE).fingerprint()
    changed = {**PACKAGE, "notes": "Other"}
    assert package_to_dataset(changed).fingerprint() != package_to_dataset(PACKAGE).fingerprint()


def test_fingerprint_is_the_hash_of_the_whole_record() -> None:
    # Journals hold this hash: it must not change from one version to the next.
    ds = package_to_dataset(PACKAGE)
    assert ds.as_dict() == asdict(ds)
    blob = orjson.dumps(asdict(ds), option=orjson.OPT_SORT_KEYS)
    assert ds.fingerprint() == hashlib.sha256(blob).hexdigest()


def test_pivot_to_ods_metadata() -> None:
    ds = package_to_dataset(PACKAGE)
    out = to_ods(ds, OdsMapOptions(licenses={"cc-by": "38js5ao"}, extras_template="custom"))
    default = out.metadata["default"]
    assert out.dataset_id == "trees-2024"
    assert default["title"] == {"value": "Arbres de la ville 🌳"}
    assert default["modified"] == {"value": "2024-02-03T04:05:06Z"}
    assert default["language"] == {"value": "fr"}
    assert default["keyword"] == {"value": ["nature", "arbres urbains"]}
    assert default["publisher"] == {"value": "City of Lyon"}
    assert out.metadata["internal"] == {"license_id": {"value": "38js5ao"}}
    carried = orjson.loads(out.metadata["custom"]["source_extras"]["value"])
    assert carried["author"] == "Ana" and carried["version"] == "1.0"
    assert carried["ckan:custom_field"] == "kept"
    assert carried["resources"][2]["url"] == "https://elsewhere.test/page"  # the link is kept
    assert [r.source_id for r in out.resources] == ["r1"]
    assert [r.source_id for r in out.attachments] == ["r2"]
    assert any("theme 'environment'" in n for n in out.notes)


def test_unmapped_licence_is_reported_not_invented() -> None:
    out = to_ods(package_to_dataset(PACKAGE), OdsMapOptions())
    assert "internal" not in out.metadata
    assert any("licence 'cc-by'" in n for n in out.notes)
    assert any("'author'" in n for n in out.notes)  # no extras template: listed


def test_required_ods_fields_always_present() -> None:
    bare = package_to_dataset({"id": "x", "name": "Bare Name!", "title": ""})
    out = to_ods(bare, OdsMapOptions(language="de"))
    assert set(out.metadata["default"]) >= {"title", "modified", "language"}
    assert out.metadata["default"]["language"] == {"value": "de"}
    assert dataset_id_for("Bare Name!") == "bare-name"


def test_resource_body_points_at_upload() -> None:
    ds = package_to_dataset(PACKAGE)
    body = resource_body(ds.resources[0], "fi_123")
    assert body["type"] == "csvfile"
    assert body["datasource"] == {"type": "uploaded_file", "file": {"uid": "fi_123"}}
