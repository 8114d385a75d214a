"""The ``[source]`` and ``[target]`` tables of a CKAN (or PortalJS Cloud) portal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from msgspec import Meta

from bulkport.settings import NonNegative, SourceSettings, TargetSettings, setting

SiteUrl = Annotated[str, Meta(pattern=r"^https?://[^/?#]+")]
SITE_URL_DOC = ("the public site where people open dataset pages, when it is not url's: a "
                "CKAN behind another address, or a PortalJS Cloud portal's own domain "
                "(its pages are /@{organization}/{name} there); default: url's /dataset/{name}")


@dataclass(frozen=True, kw_only=True)
class CkanSourceSettings(SourceSettings):
    q: str = setting("*:*", "package_search q: which datasets to read")
    fq: str | None = setting(None, "package_search fq, joined to bulkport's own filters")
    include_private: bool = setting(False, "read private datasets too (needs a key that sees them)")
    include_drafts: bool = setting(False, "read draft datasets too")
    rows: Annotated[int, Meta(ge=1, le=1000)] | None = setting(
        None, "rows per package_search page (default [options] page_size; CKAN serves at "
              "most 1000)")
    search_by_post: bool = setting(False, "send package_search as a POST (long fq)")
    fields: dict[str, str] = setting(
        factory=dict, doc="pivot field → dotted path in the package (e.g. extras.language)")
    site_url: SiteUrl | None = setting(None, SITE_URL_DOC)


@dataclass(frozen=True, kw_only=True)
class CkanTargetSettings(TargetSettings):
    organization: str | None = setting(None, "the organization every dataset goes to, unless "
                                             "[target.organizations] maps its own")
    organizations: dict[str, str] = setting(
        factory=dict, doc="source organization name → target organization name")
    create_organizations: bool = setting(True, "create a missing organization (else fail the "
                                               "dataset)")
    licenses: dict[str, str] = setting(factory=dict, doc="source licence id → target licence id")
    max_resource_size: NonNegative | None = setting(
        None, "bytes: a larger file stays a link to the source")
    presigned_uploads: bool = setting(False, "send files through presigned URLs "
                                             "(resource_upload), not multipart")
    site_url: SiteUrl | None = setting(None, SITE_URL_DOC)


@dataclass(frozen=True, kw_only=True)
class PortalJsTargetSettings(CkanTargetSettings):
    # PortalJS Cloud takes files through presigned URLs, not multipart resource_create.
    presigned_uploads: bool = setting(True, "send files through presigned URLs "
                                            "(resource_upload), not multipart")
