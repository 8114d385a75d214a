"""Opendatasoft → pivot, and round trips through Opendatasoft: pure functions, no I/O."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_mappers import PACKAGE

from bulkport.errors import MappingError
from bulkport.portals.ckan.mapping import package_to_dataset
from bulkport.portals.ods.mapping import EXTRACTORS, LANGUAGES, OdsDataset, OdsMapOptions, to_ods
from bulkport.portals.ods.mapping_read import OdsReadOptions, from_ods, organization_slug, remote_url

API = "https://x.test/api/automation/v1.0"
READ = OdsReadOptions(api=API, explore="https://x.test/api/explore/v2.1")
MAPS = OdsMapOptions(licenses={"cc-by": "38js5ao", "odc-odbl": "odbl01"},
                     themes={"environment": "env01"}, extras_template="bulkport")


def v(value: Any) -> dict[str, Any]:
    return {"value": value}


def record(metadata: dict[str, Any], resources: list[Any] = (), attachments: list[Any] = (),
           **dataset: Any) -> dict[str, Any]:
    return {"dataset": {"uid": "da_abc123", "dataset_id": "air-quality", "is_published": True,
                        "is_restricted": False, "created_at": "2024-01-01T00:00:00Z",
                        "updated_at": "2024-03-01T00:00:00Z", "metadata": metadata, **dataset},
            "resources": list(resources), "attachments": list(attachments)}


DEFAULT = {"title": v("Qualité de l'air 🌍"), "description": v("<p>Mesures</p>"),
           "keyword": v(["air", "santé"]), "modified": v("2024-02-03T04:05:06Z"),
           "language": v("fr"), "publisher": v("Ville de Paris"),
           "references": v("https://paris.example/air"), "timezone": v("Europe/Paris"),
           "attributions": v(["OSM"])}
UPLOADED = {"uid": "re_1", "type": "csvfile", "title": "Mesures 2024", "display_name": "mesures.csv",
            "updated_at": "2024-03-02T00:00:00Z",
            "datasource": {"type": "uploaded_file", "file": {"uid": "fi_9"}}}
REMOTE = {"uid": "re_2", "type": "csvfile", "title": "Flux", "datasource": {
    "type": "http", "connection": {"type": "http", "url": "https://feed.example/", "auth": None},
    "relative_url": "/air.csv?x=1"}}
FTP = {"uid": "re_3", "type": "csvfile", "title": "FTP",
       "datasource": {"type": "ftp", "connection": {"uid": "co_1"}}}
PDF = {"uid": "at_7", "filename": "notice (v2).pdf", "mimetype": "application/pdf",
       "created_at": "2024-01-05T00:00:00Z"}


def test_every_template_is_read() -> None:
    ds = from_ods(record({
        "default": DEFAULT,
        "internal": {"license_id": v("38js5ao"), "theme_id": v(["env01", "zz9"]), "draft": v(False)},
        "dcat": {"creator": v("Zoë"), "conforms_to": v(["ISO 19115"])},
        "city": {"update_notes": v("  padded  ")},
    }, is_published=False), MAPS, READ)
    assert (ds.source_id, ds.name, ds.title) == ("da_abc123", "air-quality", "Qualité de l'air 🌍")
    assert ds.description == "<p>Mesures</p>" and ds.keywords == ["air", "santé"]
    assert (ds.language, ds.publisher, ds.landing_page) == ("fr", "Ville de Paris",
                                                              "https://paris.example/air")
    assert ds.modified == "2024-02-03T04:05:06Z" and ds.created == "2024-01-01T00:00:00Z"
    assert ds.license_id == "cc-by"  # through the map, reversed
    assert ds.themes == ["environment", "zz9"]  # an unknown id is kept verbatim...
    assert ds.extras == {  # ...and where it came from, as every field no pivot field takes
        "ods:internal.theme_id": ["env01", "zz9"], "ods:internal.draft": False,
        "ods:default.timezone": "Europe/Paris", "ods:default.attributions": ["OSM"],
        "ods:dcat.creator": "Zoë", "ods:dcat.conforms_to": ["ISO 19115"],
        "ods:city.update_notes": "  padded  "}
    assert ds.organization == "ville-de-paris" and not ds.private and ds.resources == []


def test_files_links_attachments_and_exports() -> None:
    ds = from_ods(record({"default": DEFAULT}, [UPLOADED, REMOTE, FTP], [PDF]), MAPS, READ)
    uploaded, remote, pdf, export = ds.resources
    assert uploaded.hosted and uploaded.filename == "mesures.csv" and uploaded.format == "CSV"
    assert uploaded.url == f"{API}/datasets/da_abc123/resources/files/fi_9/download/"
    assert uploaded.modified == "2024-03-02T00:00:00Z" and uploaded.name == "Mesures 2024"
    assert not remote.hosted and remote.url == "https://feed.example/air.csv?x=1"
    assert pdf.hosted and pdf.filename == "notice (v2).pdf" and pdf.format == "PDF"
    assert pdf.url == f"{API}/datasets/da_abc123/attachments/at_7/download/"
    # The FTP data has no file on the platform: the explore export brings every record.
    assert export.hosted and export.filename == "air-quality.csv" and export.format == "CSV"
    assert export.url == ("https://x.test/api/explore/v2.1/catalog/datasets/air-quality/exports/"
                          "csv?delimiter=%2C&with_bom=false")
    assert export.modified == "2024-03-01T00:00:00Z"
    unpublished = from_ods(record({"default": DEFAULT}, [FTP], is_published=False), MAPS, READ)
    assert unpublished.resources == []  # nothing to export before processing
    pushed = from_ods(record({"default": DEFAULT}), MAPS, READ)  # records from the push API
    assert [r.filename for r in pushed.resources] == ["air-quality.csv"]
    reachable = from_ods(record({"default": DEFAULT}, [UPLOADED, REMOTE]), MAPS, READ)
    assert [r.name for r in reachable.resources] == ["Mesures 2024", "Flux"]
    always = OdsReadOptions(api=API, explore=READ.explore, export="always", export_format="jsonl")
    assert from_ods(record({"default": DEFAULT}, [UPLOADED]), MAPS, always).resources[-1].filename == (
        "air-quality.jsonl")


def test_remote_urls() -> None:
    assert remote_url({"connection": {"url": "https://a.test"}, "relative_url": "b.csv"}) == (
        "https://a.test/b.csv")
    assert remote_url({"connection": {"url": "https://a.test/x/"}}) == "https://a.test/x/"
    assert remote_url({"connection": {"url": "https://a.test/f"}, "relative_url": "?q=1"}) == (
        "https://a.test/f?q=1")
    assert remote_url({"connection": {"uid": "co_1"}}) is None
    unexpanded = {**REMOTE, "datasource": {"type": "http", "connection": {"uid": "co_1"}}}
    link, export = from_ods(record({"default": DEFAULT}, [unexpanded]), MAPS, READ).resources
    assert link.url == "" and link.extras == {"ods:connection": "co_1"}
    assert export.hosted  # the link leads nowhere usable: the records come from the export


@pytest.mark.parametrize("bad", [None, {"dataset": {"uid": "da_1"}},
                                 record({"default": "not a template"})])
def test_unmappable_records(bad: Any) -> None:
    with pytest.raises(MappingError):
        from_ods(bad, MAPS, READ)


def as_held(mapped: OdsDataset, **dataset: Any) -> dict[str, Any]:
    """What Opendatasoft holds once bulkport wrote ``mapped`` (as the target adapter does)."""
    resources = [{"uid": f"re_{n}", "type": EXTRACTORS[r.format.upper()],
                  "title": r.name or r.filename, "display_name": r.filename,
                  "updated_at": "2024-05-01T00:00:00Z",
                  "datasource": {"type": "uploaded_file", "file": {"uid": f"fi_{n}"}}}
                 for n, r in enumerate(mapped.resources)]
    attachments = [{"uid": f"at_{n}", "filename": r.filename, "mimetype": None,
                    "created_at": "2024-05-01T00:00:00Z"} for n, r in enumerate(mapped.attachments)]
    metadata = {t: dict(values) for t, values in mapped.metadata.items()}
    return record(metadata, resources, attachments, dataset_id=mapped.dataset_id, **dataset)


def test_ckan_to_ods_and_back_keeps_the_mapped_fields() -> None:
    original = package_to_dataset({**PACKAGE, "license_id": "other-open",
                                   "extras": [{"key": "language", "value": "ja"},
                                              {"key": "spatial", "value": "{}"}]})
    back = from_ods(as_held(to_ods(original, MAPS)), MAPS, READ)
    for name in ("title", "description", "keywords", "license_id", "license_title", "themes",
                 "publisher", "organization", "author", "author_email", "maintainer_email",
                 "version", "landing_page", "language", "created", "extras"):
        assert getattr(back, name) == getattr(original, name), name
    assert [(r.source_id, r.name, r.description, r.format, r.hosted) for r in back.resources] == [
        (r.source_id, r.name, r.description, r.format, r.hosted) for r in original.resources]
    assert back.resources[2].url == "https://elsewhere.test/page"  # the link, from the JSON
    assert [r.filename for r in back.resources[:2]] == ["trees.csv", "guide.pdf"]


def test_a_value_changed_on_ods_wins_over_the_carried_original() -> None:
    original = package_to_dataset({**PACKAGE, "license_id": "other-open"})
    held = as_held(to_ods(original, MAPS))
    held["dataset"]["metadata"]["internal"] = {"license_id": v("odbl01")}
    held["dataset"]["metadata"]["default"]["language"] = v("de")
    back = from_ods(held, MAPS, READ)
    assert (back.license_id, back.language) == ("odc-odbl", "de")


def test_fields_kept_from_ods_go_back_where_they_came_from() -> None:
    metadata = {"default": {**DEFAULT, "modified": v("2024-02-03T04:05:06Z")},
                "internal": {"license_id": v("zz-unknown"), "theme_id": v(["env01"])},
                "dcat": {"creator": v("Zoë"), "conforms_to": v(["a", "b"])}}
    ds = from_ods(record(metadata), MAPS, READ)
    out = to_ods(ds, MAPS)
    assert {t: out.metadata[t] for t in metadata} == metadata
    # Through a portal that keeps text only (CKAN extras), a list comes back as JSON text.
    ds.extras["ods:dcat.conforms_to"] = orjson.dumps(["a", "b"]).decode()
    schema = {"dcat": {"creator": "text", "conforms_to": "list"}, "default": {"timezone": "text"},
              "internal": {"license_id": "text"}}
    out = to_ods(ds, OdsMapOptions(**{**MAPS.__dict__, "schema": schema}))
    assert out.metadata["dcat"]["conforms_to"] == v(["a", "b"])
    assert out.metadata["default"]["timezone"] == v("Europe/Paris")
    # A field the target domain lacks travels with the extras instead.
    out = to_ods(ds, OdsMapOptions(**{**MAPS.__dict__, "schema": {"default": {}}}))
    assert "dcat" not in out.metadata
    carried = orjson.loads(out.metadata["bulkport"]["source_extras"]["value"])
    assert carried["ods:dcat.creator"] == "Zoë"


def test_the_ownership_mark_is_written_and_never_carried_on() -> None:
    marked = OdsMapOptions(**{**MAPS.__dict__, "mark_field": "custom.copy_of"})
    original = package_to_dataset(PACKAGE)
    out = to_ods(original, marked)
    assert out.metadata["custom"] == {"copy_of": v(original.source_id)}
    held = as_held(out)
    held["dataset"]["metadata"]["other"] = {"bulkport_source_id": v("from another mirror")}
    ds = from_ods(held, marked, READ)  # named, or by bulkport's own field name: dropped
    assert not any(k.startswith(("ods:custom.", "ods:other.")) for k in ds.extras)
    ds = from_ods(held, MAPS, READ)  # unnamed, a field of any other name is content
    assert "ods:other.bulkport_source_id" not in ds.extras
    assert ds.extras["ods:custom.copy_of"] == original.source_id
    # A copy of a copy carries its own source's id, whatever came along.
    ds.extras["ods:custom.copy_of"] = "stale"
    assert to_ods(ds, marked).metadata["custom"]["copy_of"] == v(ds.source_id)


def test_organization_slugs() -> None:
    assert organization_slug("Région Skåne") == "region-skane"
    assert organization_slug("東京都").startswith("org-")


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: s.strip() != "")
_words = st.lists(_text, max_size=4)
_datetimes = st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)).map(
    lambda d: d.isoformat(timespec="seconds").replace("+00:00", "Z"))


@st.composite
def ods_metadata(draw: st.DrawFn) -> dict[str, Any]:
    default = {"title": v(draw(_text)), "modified": v(draw(_datetimes)),
               "language": v(draw(st.sampled_from(LANGUAGES)))}
    for name, strategy in (("description", _text), ("keyword", _words.filter(bool)),
                           ("publisher", _text), ("references", _text), ("timezone", _text),
                           ("attributions", _words.filter(bool))):
        if draw(st.booleans()):
            default[name] = v(draw(strategy))
    internal = {}
    if draw(st.booleans()):
        internal["license_id"] = v(draw(st.sampled_from(["38js5ao", "odbl01", "x9unk01"])))
    themes = draw(st.lists(st.sampled_from(["env01", "trn02"]), unique=True))
    if themes:
        internal["theme_id"] = v(themes)
    metadata = {"default": default, **({"internal": internal} if internal else {})}
    dcat = draw(st.dictionaries(st.sampled_from(["creator", "spatial", "relation"]),
                                st.one_of(_text, _words.filter(bool)).map(v)))
    if dcat:
        metadata["dcat"] = dcat
    return metadata


@settings(max_examples=150, deadline=None)
@given(ods_metadata(), st.booleans())
def test_ods_to_pivot_to_ods_keeps_every_template(metadata: dict[str, Any], restricted: bool) -> None:
    ds = from_ods(record(metadata, is_restricted=restricted), MAPS, READ)
    out = to_ods(ds, MAPS)
    assert {t: values for t, values in out.metadata.items() if t != "bulkport"} == metadata
    assert out.dataset_id == "air-quality" and ds.private is restricted
