"""The ``[source]`` and ``[target]`` tables of an Opendatasoft domain."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Literal

from msgspec import Meta

from bulkport.portals.ods.mapping import OdsMapOptions
from bulkport.settings import (
    PortalSettings,
    SourceSettings,
    TargetSettings,
    setting,
)

Export = Literal["auto", "always", "never"]
ExportFormat = Literal["csv", "json", "jsonl", "geojson", "parquet", "xlsx", "shp", "kml", "gpx",
                       "fgb", "jsonld", "rdfxml", "turtle", "n3", "ov2"]


@dataclass(frozen=True, kw_only=True)
class OdsMaps(PortalSettings):
    """How pivot values map to the domain's, on both sides (a source reads them back)."""

    # The Automation API answers no anonymous caller.
    api_key: str = setting(doc="an API key of the domain (the Automation API needs one)")
    licenses: dict[str, str] = setting(factory=dict, doc="pivot licence id → ODS license_id")
    themes: dict[str, str] = setting(factory=dict, doc="pivot theme → ODS theme_id")
    language: str = setting("en", "the language of a dataset whose source states none")
    extras_template: str | None = setting(
        None, "a custom metadata template that holds the source's extras as JSON")
    extras_field: str = setting("source_extras", "the field of extras_template holding them")
    fields: dict[str, str] = setting(factory=dict, doc='"template.field" → pivot field')
    mark_field: str | None = setting(
        None, '"template.field" holding the source id: the ownership mark a mirror and '
              'verify need')

    def __post_init__(self) -> None:
        if self.mark_field is not None and not all(self.mark_field.partition(".")[::2]):
            raise ValueError(f'mark_field must be "template.field", got {self.mark_field!r}')

    def map_options(self) -> OdsMapOptions:
        return OdsMapOptions(licenses=self.licenses, themes=self.themes, language=self.language,
                             extras_template=self.extras_template,
                             extras_field=self.extras_field, fields=self.fields,
                             mark_field=self.mark_field)


@dataclass(frozen=True, kw_only=True)
class OdsSourceSettings(OdsMaps, SourceSettings):
    export: Export = setting("auto", "export records as a file: auto = when some data can be "
                                     "neither downloaded nor linked")
    export_format: ExportFormat = setting("csv", "the format of those exports")
    page_size: Annotated[int, Meta(ge=1, le=1000)] | None = setting(
        None, "datasets per listing page (default [options] page_size; the API serves at "
              "most 1000)")
    organization_from_publisher: bool = setting(True, "the publisher becomes the organization")
    detail_workers: Annotated[int, Meta(ge=0, le=1000)] = setting(
        0, "datasets whose details are read at once; 0 = [options] connections")


@dataclass(frozen=True, kw_only=True)
class OdsTargetSettings(OdsMaps, TargetSettings):
    def as_source(self) -> OdsSourceSettings:
        """The same domain, key and maps, read as a source (to list bulkport's copies)."""
        shared = {f.name: getattr(self, f.name) for f in fields(OdsMaps)}
        return OdsSourceSettings(**shared)
