"""Where people open a dataset of a CKAN site or a PortalJS Cloud portal.

CKAN serves a dataset's page at ``{site}/dataset/{name}`` for every dataset type
(``ckan/views/dataset.py``: the ``dataset`` blueprint's ``/<id>`` rule; a page asked for
by id redirects to the name), ``{site}`` being the site's root with its mount path, which is
what the Action API hangs from too. A PortalJS Cloud portal is read through CKAN's API at
``api.cloud.portaljs.com/@{portal}``, but people browse its own site, whose dataset pages are
``/@{organization}/{name}`` (the ``pages/[org]/[dataset]`` route of PortalJS Cloud's
frontend template, which answers 404 when the organization is not the dataset's).
"""

from __future__ import annotations

from urllib.parse import quote

from bulkport.portals.ckan.settings import CkanSourceSettings, CkanTargetSettings

PORTALJS = "portaljs"  # the type whose site_url is a PortalJS Cloud frontend


def dataset_page(settings: CkanSourceSettings | CkanTargetSettings, name: str,
                 organization: str | None) -> str:
    """The public page of the dataset ``name`` (of ``organization``, by name)."""
    site = settings.site_url.rstrip("/") if settings.site_url else None
    if settings.type == PORTALJS:
        if site is not None and organization:
            return f"{site}/@{quote(organization, safe='')}/{quote(name, safe='')}"
        site = None  # the frontend has no page for it: CKAN's own, behind the API
    return f"{site or settings.url}/dataset/{quote(name, safe='')}"
