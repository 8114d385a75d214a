"""Opendatasoft's Automation API v1.0 (and the Explore API v2.1 for exports)."""

from __future__ import annotations

from bulkport.portals.base import Limit, Portal
from bulkport.portals.ods.settings import OdsSourceSettings, OdsTargetSettings
from bulkport.portals.ods.source import OdsSource
from bulkport.portals.ods.target import OdsTarget
from bulkport.portals.ods.tokens import OdsTokens

PORTALS = (
    Portal(name="ods", title="Opendatasoft", source_settings=OdsSourceSettings,
           target_settings=OdsTargetSettings, source=OdsSource, mirror_source=OdsSource,
           target=OdsTarget, mirror_target=OdsTarget, tokens=OdsTokens,
           limits={Limit.TOKEN_LAST_ACCESS: "Opendatasoft API keys carry no last-access date"}),
)
