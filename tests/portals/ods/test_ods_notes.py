"""The notes the Opendatasoft mapping leaves in a report say what is lost, and only that."""

from __future__ import annotations

from typing import Any

from bulkport.model import Dataset, Resource
from bulkport.portals.ods.mapping import OdsMapOptions, to_ods

FILES = [Resource("r1", "trees", url="https://src.test/trees.csv", format="CSV", hosted=True,
                  description="Every tree"),
         Resource("r2", "guide", url="https://src.test/guide.pdf", format="PDF", hosted=True)]
LINK = Resource("r3", "portal", url="https://elsewhere.test/page", format="HTML")


def dataset(resources: list[Resource], **fields: Any) -> Dataset:
    return Dataset("s1", "trees", "Trees", modified="2024-01-02T03:04:05Z",
                   resources=resources, **fields)


def test_files_sent_and_privacy_are_not_reported_as_lost() -> None:
    """The hosted files become resources and attachments, a private dataset a restricted
    one: neither is a field 'with no place', even without an extras template."""
    out = to_ods(dataset([FILES[1]], private=True), OdsMapOptions())
    assert [r.source_id for r in out.attachments] == ["r2"]
    assert out.notes == []


def test_what_a_dataset_loses_without_an_extras_template_is_named() -> None:
    out = to_ods(dataset([*FILES, LINK], author="Ana"), OdsMapOptions())
    assert not any("'resources'" in n for n in out.notes)
    assert sorted(out.notes) == [
        "descriptions and extras of the files have no place in the target (the files "
        "themselves are sent): set [target] extras_template",
        "field 'author' has no place in the target: set [target] extras_template",
        "links (resources without a hosted file) have no place in the target: set [target] "
        "extras_template",
    ]


def test_a_theme_or_licence_kept_in_the_extras_template_is_not_said_left_out() -> None:
    opts = OdsMapOptions(extras_template="bulkport")
    out = to_ods(dataset(FILES, themes=["nature"], license_id="cc-by"), opts)
    assert sorted(out.notes) == [
        "licence 'cc-by' has no entry in [target.licenses]: license_id left unset, kept in "
        "bulkport.source_extras only",
        "theme 'nature' has no entry in [target.themes]: kept in bulkport.source_extras only",
    ]
    alone = to_ods(dataset(FILES, themes=["nature"], license_id="cc-by"), OdsMapOptions())
    assert "theme 'nature' has no entry in [target.themes]: left out" in alone.notes
    assert "licence 'cc-by' has no entry in [target.licenses]: left unset" in alone.notes
