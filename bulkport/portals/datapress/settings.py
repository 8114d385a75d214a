"""The ``[source]`` and ``[target]`` tables of a DataPress site."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from bulkport.portals.datapress.api import DEFAULT_PREFIX
from bulkport.portals.datapress.mapping import DEFAULT_FIELDS
from bulkport.portals.datapress.upload import PART_SIZE
from bulkport.settings import (
    NonNegative,
    PortalSettings,
    Positive,
    SourceSettings,
    TargetSettings,
    setting,
)

NO_DELETE = ('cannot delete datasets (the DataPress API has no delete): set [options] '
             'on_delete = "private" (hide the copies the source drops) or "keep"')


class Licence(TypedDict, total=False):
    url: str
    title: str


@dataclass(frozen=True, kw_only=True)
class DataPressSettings(PortalSettings):
    """What both sides of a DataPress site hold."""

    prefix: str = setting(DEFAULT_PREFIX, "the API prefix: '/api/v3' (newer docs, official "
                                          "client) or '/api' (v4.0 docs)")
    fields: dict[str, str] = setting(factory=dict, doc="pivot field → DataPress path")
    licenses: dict[str, str | Licence] = setting(
        factory=dict, doc="licence id → a title, or { url = ..., title = ... }")

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/"):
            raise ValueError(f"prefix must be a path such as '/api/v3' or '/api', got "
                             f"{self.prefix!r}")
        unknown = sorted(set(self.fields) - set(DEFAULT_FIELDS))
        if unknown:
            raise ValueError(f"fields: unknown pivot field(s) {', '.join(unknown)} (known: "
                             f"{', '.join(DEFAULT_FIELDS)})")
        for key, value in self.licenses.items():
            if not isinstance(value, str) and not value.get("title"):
                raise ValueError(f"licenses.{key}: expected a title or "
                                 "{ url = ..., title = ... }")

    @property
    def api(self) -> str:
        """The site's URL with its API prefix."""
        return self.url + "/" + self.prefix.strip("/")


@dataclass(frozen=True, kw_only=True)
class DataPressSourceSettings(DataPressSettings, SourceSettings):
    pass


@dataclass(frozen=True, kw_only=True)
class DataPressTargetSettings(DataPressSettings, TargetSettings):
    api_key: str = setting(doc="an API key of a user who may write into the teams")
    team: str = setting(doc="the team id new datasets get")
    masthead: str = setting(doc="the masthead id new datasets get")
    teams: dict[str, str] = setting(factory=dict, doc="pivot organization → team id")
    mastheads: dict[str, str] = setting(factory=dict, doc="pivot organization → masthead id")
    topics: dict[str, str] = setting(factory=dict, doc="pivot theme → topic id (empty: topics "
                                                       "set by hand stay)")
    max_file_size: NonNegative | None = setting(None, "bytes: a larger file stays a link")
    touch_updated_at: bool = setting(False, "set updatedAt on every write")
    part_size: Positive = setting(PART_SIZE, "bytes per upload part")
