"""Round trips through the pivot model are lossless for every mapped field (property tests)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_mappers_ods_read import MAPS as ODS_MAPS
from test_mappers_ods_read import READ as ODS_READ
from test_mappers_ods_read import ods_metadata
from test_mappers_ods_read import record as ods_record

from bulkport.portals.ckan.mapping import MARK, dataset_to_package, package_to_dataset, slug
from bulkport.portals.ods.mapping import OdsMapOptions, resource_body, to_ods
from bulkport.portals.ods.mapping_read import OdsReadOptions, from_ods
from bulkport.testing.ods.metadata import dcat_template, default_templates

text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
word = st.from_regex(r"[a-z][a-z0-9_-]{1,20}", fullmatch=True)
odd = st.one_of(st.none(), st.just(""), text, st.integers(-2**63, 2**63 - 1),  # as orjson reads
                st.lists(text, max_size=3),
                st.dictionaries(word, text, max_size=3))


@st.composite
def packages(draw: Any) -> dict[str, Any]:
    name = draw(word)
    resources = [{
        "id": f"r{i}", "name": draw(text), "description": draw(text),
        "format": draw(st.sampled_from(["CSV", "PDF", "", "XLSX"])),
        "url": draw(st.sampled_from(["https://elsewhere.example/x.csv", "file.csv"])),
        "url_type": draw(st.sampled_from(["upload", "", None])),
        "size": draw(st.one_of(st.none(), st.integers(0, 10**9))),
    } for i in range(draw(st.integers(0, 3)))]
    return {
        "id": f"id-{name}", "name": name, "title": draw(text), "notes": draw(text),
        "license_id": draw(st.one_of(st.none(), word)), "author": draw(text),
        "author_email": draw(text), "maintainer": draw(text), "maintainer_email": draw(text),
        "version": draw(text), "url": draw(text), "private": draw(st.booleans()),
        "tags": [{"name": t} for t in draw(st.lists(text.filter(str.strip), max_size=4,
                                                        unique=True))],
        "extras": [{"key": k, "value": v} for k, v in draw(
            st.dictionaries(word.filter(lambda k: k != MARK), text, max_size=4)).items()],
        "organization": {"name": "org", "title": "Org"}, "owner_org": "org-id",
        "custom_field": draw(odd),  # a field of a custom schema
        "resources": resources,
    }


def _as_ckan_shows_it(written: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """What the target CKAN would return for the package bulkport wrote."""
    shown = dict(written)
    shown.update(id="new-id", organization=source["organization"], resources=[
        {**r, "id": f"new-{i}"} for i, r in enumerate(source["resources"])])
    return shown


MAPPED = ("title", "description", "license_id", "author", "author_email", "maintainer",
          "maintainer_email", "version", "landing_page", "private", "organization",
          "publisher")


@settings(max_examples=100, deadline=None)
@given(packages())
def test_ckan_to_ckan_keeps_every_mapped_field(pkg: dict[str, Any]) -> None:
    first = package_to_dataset(pkg)
    written, _ = dataset_to_package(first, name=slug(first.name), owner_org="org-id")
    again = package_to_dataset(_as_ckan_shows_it(written, pkg))
    for name in MAPPED:
        assert getattr(again, name) == getattr(first, name), name
    # Keywords CKAN would refuse as tags are not lost: the whole list travels in an extra
    # (a note says so) and comes back in its order.
    assert again.keywords == first.keywords
    # Every extra and every unknown top-level field is carried.
    for key, value in first.extras.items():
        if value in (None, "", [], {}):
            continue
        kept = again.extras.get(key)
        assert kept == value or kept == orjson.dumps(value).decode(), key
    assert again.extras[MARK] == pkg["id"]
    assert [(r.name, r.description, r.format, r.hosted) for r in again.resources] == [
        (r.name, r.description, r.format, r.hosted) for r in first.resources]


@given(st.text(max_size=300))
def test_slugs_are_valid_ckan_names(text_value: str) -> None:
    name = slug(text_value)
    assert 2 <= len(name) <= 100
    assert all(c.islower() or c.isdigit() or c in "-_" for c in name)
    assert name == slug(text_value)  # deterministic


# ---- through Opendatasoft -------------------------------------------------------------

ODS_OPTIONS = OdsMapOptions(licenses={"cc-by": "lic1", "odc-odbl": "lic2"},
                            extras_template="bulkport")
READ = OdsReadOptions(api="https://ods.example/api/automation/v1.0",
                      explore="https://ods.example/api/explore/v2.1")


def _as_ods_lists_it(ds: Any) -> dict[str, Any]:
    """What the Automation API would list for the dataset bulkport wrote from ``ds``."""
    mapped = to_ods(ds, ODS_OPTIONS)
    resources = [{**resource_body(r, f"fi_{i}"), "uid": f"re_{i}",
                  "datasource": {"type": "uploaded_file",
                                 "file": {"uid": f"fi_{i}", "filename": r.filename}}}
                 for i, r in enumerate(mapped.resources)]
    attachments = [{"uid": f"at_{i}", "filename": r.filename, "mimetype": None}
                   for i, r in enumerate(mapped.attachments)]
    return {"dataset": {"uid": "da_1", "dataset_id": mapped.dataset_id,
                        "metadata": mapped.metadata, "is_restricted": ds.private,
                        "created_at": "2026-01-01T00:00:00Z"},
            "resources": resources, "attachments": attachments}


CARRIED = ("title", "description", "license_id", "author", "author_email", "maintainer",
           "maintainer_email", "version", "landing_page", "private")


@settings(max_examples=100, deadline=None)
@given(packages())
def test_ckan_to_ods_to_ckan_keeps_every_mapped_field(pkg: dict[str, Any]) -> None:
    first = package_to_dataset(pkg)
    back = from_ods(_as_ods_lists_it(first), ODS_OPTIONS, READ)
    written, _ = dataset_to_package(back, name=slug(back.name), owner_org="org-id")
    again = package_to_dataset(_as_ckan_shows_it(written, pkg))
    for name in CARRIED:
        assert (getattr(again, name) or None) == (getattr(first, name) or None), name
    assert again.name == first.name
    assert sorted(again.keywords) == sorted(first.keywords)
    hosted = [(r.name, r.format) for r in first.resources if r.hosted]
    assert sorted((r.name, r.format) for r in again.resources if r.hosted) == sorted(hosted)


# The target domain's field types, as OdsTarget.check() reads them: CKAN keeps a list as
# JSON text, and the type says to decode it on the way back.
SCHEMA = {t.name: {f.name: f.type for f in t.fields.values()}
          for t in (*default_templates().values(), dcat_template())}


def _fits_schema(metadata: dict[str, Any]) -> bool:
    """A list only where the field is a list (the generator also puts lists in text fields)."""
    return all(isinstance(v["value"], list) == (SCHEMA[t].get(f) == "list")
               for t, fields in metadata.items() for f, v in fields.items()
               if t != "internal" and f in SCHEMA.get(t, {}))


@settings(max_examples=100, deadline=None)
@given(ods_metadata(), st.booleans())
def test_ods_to_ckan_to_ods_keeps_every_template(metadata: dict[str, Any],
                                                 restricted: bool) -> None:
    assume(_fits_schema(metadata))
    first = from_ods(ods_record(metadata, is_restricted=restricted), ODS_MAPS, ODS_READ)
    written, _ = dataset_to_package(first, name=slug(first.name), owner_org="org-id")
    shown = {**written, "id": "ckan-id", "resources": [],
             "organization": {"name": first.organization, "title": first.publisher}}
    again = package_to_dataset(shown)
    out = to_ods(again, replace(ODS_MAPS, schema=SCHEMA))
    assert {t: values for t, values in out.metadata.items() if t != "bulkport"} == metadata
    assert out.dataset_id == "air-quality" and again.private is restricted
