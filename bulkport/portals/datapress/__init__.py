"""DataPress: its API (``/api/v3`` or ``/api``), the streamed catalogue export, chunked uploads."""

from __future__ import annotations

from bulkport.portals.base import Limit, Portal
from bulkport.portals.datapress.settings import (
    NO_DELETE,
    DataPressSourceSettings,
    DataPressTargetSettings,
)
from bulkport.portals.datapress.source import DataPressSource
from bulkport.portals.datapress.target import DataPressTarget

PORTALS = (
    Portal(name="datapress", title="DataPress", source_settings=DataPressSourceSettings,
           target_settings=DataPressTargetSettings, source=DataPressSource,
           mirror_source=DataPressSource, target=DataPressTarget,
           mirror_target=DataPressTarget, limits={Limit.DELETE: NO_DELETE},
           held_connections=1),  # export.json streams for as long as the listing lasts
)
