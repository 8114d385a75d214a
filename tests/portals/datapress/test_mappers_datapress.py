"""DataPress mappers and patch building: pure functions, no I/O."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkport.errors import MappingError
from bulkport.http import Response
from bulkport.model import Dataset
from bulkport.portals.ckan.mapping import MARK as CKAN_MARK
from bulkport.portals.ckan.mapping import dataset_to_package, package_to_dataset, resource_to_ckan
from bulkport.portals.datapress.mapping import (
    LICENCES,
    MARK,
    RESOURCES,
    datapress_to_dataset,
    file_format,
    link_id,
)
from bulkport.portals.datapress.mapping_write import (
    DataPressMapOptions,
    dataset_to_datapress,
    minimal_patch,
    upload_name,
)
from bulkport.portals.datapress.source import parse_error

OPTIONS = DataPressMapOptions(team="team1", masthead="simulator")
DOC: dict[str, Any] = {
    "id": "ab12x", "title": "Qualité de l'air", "description": "<p>Mesures</p>",
    "descriptionText": "Mesures", "descriptionIframe": None, "masthead": "city",
    "tags": ["air", "santé"], "topics": ["environment"], "nextReviewDate": "2027-01-15",
    "licence": {"url": "https://creativecommons.org/licenses/by/4.0", "title": "CC BY"},
    "contact": {"name": "Zoë", "email": "zoe@example.org", "phone": "+33 1"},
    "team": "t0001", "sharing": "private", "custom": {"frequency": "monthly"},
    "resources": {
        "b2c": {"title": "Annexe", "description": "", "timeframe": None, "order": 1,
                "format": "pdf", "hash": "0" * 32, "size": 10,
                "url": "https://dp.test/download/ab12x/b2c/annexe.pdf"},
        "x9z": {"title": "Mesures 2024", "description": "CSV", "order": 0, "format": "csv",
                "timeframe": {"from": "2024-01", "to": "2024-12"}, "hash": "1" * 32,
                "size": 20, "url": "https://dp.test/download/ab12x/x9z/Donn%C3%A9es%202024.csv"},
    },
    "links": {"q7r": {"url": "https://example.org/api", "title": "API", "order": 0,
                      "description": "", "qa": {"hash": None}}},
    "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-02-01T00:00:00.000Z",
}


def test_datapress_to_pivot_places_every_field() -> None:
    ds = datapress_to_dataset(DOC)
    assert (ds.source_id, ds.name, ds.title) == ("ab12x", "ab12x", "Qualité de l'air")
    assert ds.keywords == ["air", "santé"] and ds.themes == ["environment"]
    assert (ds.license_id, ds.license_title) == ("cc-by", "CC BY")  # matched by URL
    assert (ds.maintainer, ds.maintainer_email) == ("Zoë", "zoe@example.org")
    assert ds.private and ds.organization == "t0001"
    assert (ds.created, ds.modified) == (DOC["createdAt"], DOC["updatedAt"])
    assert ds.extras == {"frequency": "monthly", "datapress:masthead": "city",
                         "datapress:nextReviewDate": "2027-01-15",
                         "datapress:contact": {"phone": "+33 1"}}
    files, link = ds.resources[:2], ds.resources[2]
    assert [r.source_id for r in files] == ["x9z", "b2c"]  # page order
    assert files[0].hosted and files[0].format == "CSV" and files[0].size == 20
    assert files[0].filename == "Données 2024.csv"
    assert files[0].extras == {"hash": "1" * 32, "timeframe": {"from": "2024-01", "to": "2024-12"}}
    assert not link.hosted and (link.url, link.name) == ("https://example.org/api", "API")


@pytest.mark.parametrize("spelling", ["timeframe", "timeFrame"])
def test_a_file_period_is_read_under_either_spelling(spelling: str) -> None:
    # The official client and DataPress answer ``timeframe``; older documents say
    # ``timeFrame``: a site of either kind gives the same pivot resource.
    frame = {"from": "2024-01", "to": "2024-12"}
    resources = {"x9z": {"title": "Mesures", "order": 0, "format": "csv", "size": 20,
                         "url": "https://dp.test/download/ab12x/x9z/m.csv", spelling: frame}}
    for shape in (resources, [{"id": k, **v} for k, v in resources.items()]):  # GET, export
        (res,) = datapress_to_dataset({**DOC, "resources": shape, "links": {}}).resources
        assert res.extras == {"timeframe": frame}
    both = {**resources["x9z"], "timeframe": frame, "timeFrame": {"from": "1999", "to": "2000"}}
    (res,) = datapress_to_dataset({**DOC, "resources": {"x9z": both}, "links": {}}).resources
    assert res.extras["timeframe"] == frame  # the official spelling wins


def test_export_shape_gives_the_same_dataset_plus_team_and_page() -> None:
    exported = {**DOC, "webpage": "https://dp.test/dataset/ab12x",
                "team": {"id": "t0001", "title": "Ville de Lyon"},
                "masthead": {"id": "city", "title": "City"},
                "topics": [{"id": "environment", "title": "Environment"}],
                "resources": [{"id": k, **v} for k, v in DOC["resources"].items()],
                "links": [{"id": k, **v} for k, v in DOC["links"].items()]}
    ds, got = datapress_to_dataset(DOC), datapress_to_dataset(exported)
    assert (got.publisher, got.organization) == ("Ville de Lyon", "ville-de-lyon")
    assert got.landing_page == "https://dp.test/dataset/ab12x"
    assert got.resources == ds.resources and got.extras == ds.extras


def test_field_map_overrides_move_a_field() -> None:
    doc = {**DOC, "custom": {"lang": "fr", "frequency": "monthly"}}
    ds = datapress_to_dataset(doc, fields={"language": "custom.lang"})
    assert ds.language == "fr" and "lang" not in ds.extras
    written, _ = dataset_to_datapress(ds, DataPressMapOptions(
        team="t", masthead="m", fields={"language": "custom.lang"}))
    assert written["custom"]["lang"] == "fr" and "language" not in written["custom"]
    with pytest.raises(MappingError):
        datapress_to_dataset(DOC, fields={"nope": "title"})


@pytest.mark.parametrize("bad", ["text", {"title": "no id"}, {**DOC, "custom": ["a"]},
                                 {**DOC, "resources": "x"}, {**DOC, "tags": "a,b"}])
def test_unmappable_datasets(bad: Any) -> None:
    with pytest.raises(MappingError):
        datapress_to_dataset(bad)


def test_licences_go_through_the_table_and_the_unknown_stays_verbatim() -> None:
    def licence(license_id: str | None, title: str | None = None) -> tuple[Any, Any]:
        doc, _ = dataset_to_datapress(Dataset("s", "n", "T", license_id=license_id,
                                              license_title=title), OPTIONS)
        return doc["licence"], doc["custom"].get("license_id")

    assert licence("cc-by") == (LICENCES["cc-by"], None)
    assert licence("cc-by-4.0") == ({"url": None, "title": "cc-by-4.0"}, None)
    # The title alone would read back as another id: the id is carried.
    assert licence("notspecified", "License not specified") == (
        {"url": None, "title": "License not specified"}, "notspecified")
    assert licence(None) == (None, None)
    custom = DataPressMapOptions(team="t", masthead="m", licences={"x": "Licence X"})
    doc, _ = dataset_to_datapress(Dataset("s", "n", "T", license_id="x"), custom)
    assert doc["licence"] == {"url": None, "title": "Licence X"}


def test_pivot_to_datapress_carries_what_has_no_place() -> None:
    ds = package_to_dataset({
        "id": "p1", "name": "trees", "title": "Trees", "notes": "All trees.",
        "author": "Ana", "version": "2", "url": "https://city.test/trees", "private": False,
        "groups": [{"name": "nature"}], "extras": [{"key": "author", "value": "extra!"},
                                                   {"key": "extra:x", "value": "y"}],
        "resources": [{"id": "r1", "name": "", "url": "https://x.test/a", "format": "HTML"}]})
    doc, notes = dataset_to_datapress(ds, OPTIONS)
    assert notes == []
    assert doc["custom"] == {
        "name": "trees", "author": "Ana", "version": "2", "landing_page": "https://city.test/trees",
        "themes": ["nature"], "extra:author": "extra!", "extra:extra:x": "y", MARK: "p1",
        RESOURCES: {"r1": {"id": link_id("p1", "r1"), "format": "HTML", "name": ""}}}
    assert doc["links"] == {link_id("p1", "r1"): {"url": "https://x.test/a",
                                                   "title": "https://x.test/a",
                                                   "description": ""}}
    assert "contact" not in doc and "topics" not in doc  # nothing to say: left alone
    back = datapress_to_dataset({**doc, "id": "dp001"})
    assert back.extras == ds.extras and back.author == "Ana" and back.themes == ["nature"]
    assert back.resources[0].name == "" and back.resources[0].format == "HTML"


def test_parse_error_reports_each_field() -> None:
    body = (b'{"url": "/api/dataset/20abc", "statusCode": 400, "statusMessage": "There are '
            b'validation errors.", "message": "There are validation errors.\\n* title: This '
            b'field is required", "data": [{"code": "too_small", "message": "This field is '
            b'required", "path": ["title"]}, {"message": "Unknown", "path": ["resources", '
            b'"b2c", "format"]}]}')
    message, fields, _ = parse_error(Response(400, "u", {}, body))
    assert fields == {"title": "This field is required", "resources.b2c.format": "Unknown"}
    assert message == ("There are validation errors.: title: This field is required; "
                       "resources.b2c.format: Unknown")
    forbidden = b'{"statusCode": 403, "statusMessage": "Forbidden", "message": "No editor."}'
    assert parse_error(Response(403, "u", {}, forbidden)) == ("Forbidden: No editor.", {},
                                                              "Forbidden")
    assert parse_error(Response(502, "u", {}, b"<html>bad gateway</html>"))[0].startswith("<html>")


def test_minimal_patch_touches_only_what_changed_and_what_bulkport_owns() -> None:
    ds = datapress_to_dataset(DOC)
    wanted, _ = dataset_to_datapress(ds, OPTIONS, files={"x9z": {"id": "x9z", "version": "v"}})
    current = {**DOC, **{k: v for k, v in wanted.items() if k not in ("custom", "links")}}
    current["custom"] = {**wanted["custom"], "by_hand": "kept"}
    current["links"] = {**DOC["links"], **{k: {**v, "order": 1, "qa": {}}
                                           for k, v in wanted["links"].items()}}
    current["resources"] = {k: {**DOC["resources"][k], **v}
                            for k, v in wanted["resources"].items()} | {
        "b2c": DOC["resources"]["b2c"]}
    assert minimal_patch(current, wanted) == []
    assert minimal_patch(current, {**wanted, "title": "New"}) == [
        {"op": "replace", "path": "/title", "value": "New"}]
    # The source lost its link and a file: bulkport's own items go, the others stay.
    ds.resources = [r for r in ds.resources if r.hosted and r.source_id == "x9z"]
    fewer, _ = dataset_to_datapress(ds, OPTIONS, files={"x9z": {"id": "x9z", "version": "v"}})
    ops = minimal_patch(current, fewer)
    gone = link_id("ab12x", "q7r")
    assert {"op": "remove", "path": f"/links/{gone}"} in ops
    assert {"op": "remove", "path": f"/custom/{RESOURCES}/q7r"} in ops
    assert not any(op["path"].startswith(("/links/q7r", "/resources/b2c", "/custom/by_hand"))
                   for op in ops)


# ---- CKAN → DataPress → CKAN, for any package ------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_WORD = st.text("abcdefghijklmnopqrstuvwxyzé -_.", min_size=2, max_size=10).filter(str.strip)
_OPTIONAL = st.one_of(st.none(), _TEXT)


@st.composite
def packages(draw: st.DrawFn) -> dict[str, Any]:
    resources = []
    for n in range(draw(st.integers(0, 4))):
        hosted = draw(st.booleans())
        resources.append({
            "id": f"r{n}", "name": draw(_TEXT), "description": draw(_TEXT),
            "format": draw(st.sampled_from(["CSV", "PDF", "", "XLSX", "html", "JPEG"])),
            # (DataPress shows a .jpg as format "image", not its extension)
            "url": (f"https://ckan.test/d/r{n}/download/{draw(_WORD)}."
                    f"{draw(st.sampled_from(['csv', 'pdf', 'jpg']))}"
                    if hosted else f"https://example.org/{n}?q={draw(_WORD)}"),
            "url_type": "upload" if hosted else "", "size": draw(st.none() | st.integers(0, 99)),
            "last_modified": draw(st.none() | st.just("2024-05-01T00:00:00")),
            "mimetype": draw(st.none() | st.just("text/csv")),
            **draw(st.dictionaries(st.sampled_from(["timeframe", "rows", "note"]), _WORD)),
        })
    return {
        "id": "p-" + draw(_WORD), "name": draw(_WORD), "title": draw(_TEXT),
        "notes": draw(_OPTIONAL), "private": draw(st.booleans()),
        "license_id": draw(st.sampled_from([*LICENCES, "notspecified", "cc-by-4.0", None])),
        "author": draw(_OPTIONAL), "author_email": draw(_OPTIONAL), "maintainer": draw(_OPTIONAL),
        "maintainer_email": draw(_OPTIONAL), "version": draw(_OPTIONAL), "url": draw(_OPTIONAL),
        "organization": draw(st.none() | st.just({"name": "org", "title": "Org"})),
        "metadata_created": "2024-01-01T00:00:00", "metadata_modified": draw(_OPTIONAL),
        "tags": [{"name": t} for t in draw(st.lists(_WORD, max_size=4, unique=True))],
        "groups": [{"name": g} for g in draw(st.lists(_WORD, max_size=2, unique=True))],
        "extras": [{"key": k, "value": v} for k, v in draw(st.dictionaries(
            st.one_of(_WORD, st.sampled_from(["name", "author", "extra:x", "language",
                                              "themes", MARK, RESOURCES])), _TEXT)).items()],
        "resources": resources,
        **draw(st.dictionaries(st.sampled_from(["state_note", "spatial_x"]), _TEXT)),
    }


def stored(doc: dict[str, Any], ds: Dataset, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The dataset as DataPress would show it once created, uploaded to and patched."""
    shown = {**doc, "id": "dp001", "createdAt": "2026-01-01T00:00:00.000Z",
             "updatedAt": "2026-01-01T00:00:00.000Z", "descriptionIframe": None, "topics": []}
    by_id = {r.source_id: r for r in ds.resources}
    shown["resources"] = {
        rid: {**meta, "order": n, "format": file_format(upload_name(by_id[src])),
              "size": by_id[src].size or 0, "hash": hashlib.md5(rid.encode()).hexdigest(),
              "url": f"https://dp.test/download/dp001/{rid}/{upload_name(by_id[src])}"}
        for n, (src, rid, meta) in enumerate(
            (src, known["id"], doc["resources"][known["id"]]) for src, known in files.items())}
    shown["links"] = {k: {**v, "order": n, "qa": {}} for n, (k, v) in enumerate(doc["links"].items())}
    return shown


def _comparable(pkg: dict[str, Any], resources: list[dict[str, Any]]) -> dict[str, Any]:
    extras = [e for e in pkg["extras"] if e["key"] != CKAN_MARK]
    return {**pkg, "extras": extras, "resources": [
        {k: v for k, v in r.items() if k != CKAN_MARK} for r in resources]}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packages())
def test_ckan_to_datapress_to_ckan_keeps_every_mapped_field(pkg: dict[str, Any]) -> None:
    original = package_to_dataset(pkg)
    files = {r.source_id: {"id": f"f{n:02d}", "version": "v"}
             for n, r in enumerate(original.resources) if r.hosted}
    doc, _ = dataset_to_datapress(original, OPTIONS, files=files)
    back = datapress_to_dataset(stored(doc, original, files))
    assert back.name == original.name
    before, _ = dataset_to_package(original, name=original.name)
    after, _ = dataset_to_package(back, name=back.name)
    assert _comparable(after, [resource_to_ckan(r) for r in back.resources]) == _comparable(
        before, [resource_to_ckan(r) for r in original.resources])
    assert [r.hosted for r in back.resources] == [r.hosted for r in original.resources]
    for mine, theirs in zip(back.resources, original.resources, strict=True):
        assert (mine.mimetype, mine.modified) == (theirs.mimetype, theirs.modified)
        if not mine.hosted:
            assert mine.url == theirs.url


def test_a_field_the_site_leaves_out_is_not_written_as_null() -> None:
    wanted = {"title": "T", "licence": None, "resources": {"b2c": {"title": "A", "timeframe": None}},
              "custom": {MARK: "s"}}
    current = {"id": "ab12x", "title": "T", "resources": {"b2c": {"title": "A", "size": 3}},
               "custom": {MARK: "s", "other": 1}}
    assert minimal_patch(current, wanted) == []
    frame = {"from": "2024", "to": "2025"}
    assert minimal_patch(current, {**wanted, "resources": {"b2c": {"title": "A",
                                                                   "timeframe": frame}}}) == [
        {"op": "add", "path": "/resources/b2c/timeframe", "value": frame}]


def test_a_file_period_is_written_as_the_site_spells_it() -> None:
    frame, old = {"from": "2024", "to": "2025"}, {"from": "2020", "to": "2021"}
    wanted = {"title": "T", "resources": {"b2c": {"title": "A", "timeframe": frame}},
              "custom": {MARK: "s"}}
    for spelling in ("timeframe", "timeFrame"):
        current = {"id": "ab12x", "title": "T", "custom": {MARK: "s"},
                   "resources": {"b2c": {"title": "A", spelling: old}}}
        patch = minimal_patch(current, wanted)
        assert [(op["op"], op["path"], op["value"]) for op in patch] == [
            ("replace", f"/resources/b2c/{spelling}/from", "2024"),
            ("replace", f"/resources/b2c/{spelling}/to", "2025")]
        current["resources"]["b2c"][spelling] = frame
        assert minimal_patch(current, wanted) == []  # nothing left to send on a re-run
