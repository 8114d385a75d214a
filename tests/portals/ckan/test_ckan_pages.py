"""Where a dataset's page is, on a CKAN site and on a PortalJS Cloud portal."""

from __future__ import annotations

import pytest

from bulkport.config import load_job
from bulkport.errors import ConfigError
from bulkport.portals.ckan.pages import dataset_page
from bulkport.portals.ckan.settings import CkanSourceSettings, PortalJsTargetSettings


def test_a_ckan_page_hangs_from_the_site_with_its_mount_path() -> None:
    mounted = CkanSourceSettings(type="ckan", url="https://example.org/data")
    assert dataset_page(mounted, "budget-2024", "city") == (
        "https://example.org/data/dataset/budget-2024")
    public = CkanSourceSettings(type="ckan", url="http://ckan.internal:5000",
                                site_url="https://data.example.org/portal/")
    assert dataset_page(public, "budget-2024", None) == (
        "https://data.example.org/portal/dataset/budget-2024")


def test_a_portaljs_page_is_on_the_portal_site_under_its_organization() -> None:
    api = "https://api.cloud.portaljs.com/@city"
    frontend = PortalJsTargetSettings(type="portaljs", url=api, site_url="https://data.city.org")
    assert dataset_page(frontend, "budget-2024", "finance") == (
        "https://data.city.org/@finance/budget-2024")
    # No organization (the frontend has no page for it), or no site: CKAN's page behind the API.
    assert dataset_page(frontend, "budget-2024", None) == f"{api}/dataset/budget-2024"
    bare = PortalJsTargetSettings(type="portaljs", url=api)
    assert dataset_page(bare, "budget-2024", "finance") == f"{api}/dataset/budget-2024"


@pytest.mark.parametrize("site_url", ["data.example.org", "ftp://data.example.org", "https://"])
def test_a_site_url_must_be_a_web_address(tmp_path, site_url: str) -> None:
    job = tmp_path / "job.toml"
    job.write_text(f"""
kind = "migrate"
[source]
type = "ckan"
url = "https://a.example.org"
site_url = "{site_url}"
[target]
type = "ckan"
url = "https://b.example.org"
""")
    with pytest.raises(ConfigError, match="site_url"):
        load_job(job)
