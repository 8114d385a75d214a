"""CKAN's Action API, and PortalJS Cloud's flavour of it (files through presigned URLs)."""

from __future__ import annotations

from bulkport.portals.base import Portal
from bulkport.portals.ckan.settings import (
    CkanSourceSettings,
    CkanTargetSettings,
    PortalJsTargetSettings,
)
from bulkport.portals.ckan.source import CkanSource
from bulkport.portals.ckan.target import CkanTarget
from bulkport.portals.ckan.tokens import CkanTokens

PORTALS = (
    Portal(name="ckan", title="CKAN", source_settings=CkanSourceSettings,
           target_settings=CkanTargetSettings, source=CkanSource, mirror_source=CkanSource,
           target=CkanTarget, mirror_target=CkanTarget, tokens=CkanTokens),
    Portal(name="portaljs", title="PortalJS Cloud", source_settings=CkanSourceSettings,
           target_settings=PortalJsTargetSettings, source=CkanSource,
           mirror_source=CkanSource, target=CkanTarget, mirror_target=CkanTarget,
           tokens=CkanTokens),
)
