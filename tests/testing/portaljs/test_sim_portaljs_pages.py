"""The PortalJS Cloud simulator's pages: CKAN's own under /@portal, and the portal site's
/@{organization}/{name}."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.server import serve
from bulkport.testing.portaljs.app import create_portaljs_app

KEY = "pjs-pages-key"


@dataclass
class Portal:
    url: str
    store: CkanStore

    async def get(self, path: str, *, key: str | None = None) -> int:
        headers = {"Authorization": key} if key else {}
        async with aiohttp.ClientSession() as session, session.get(
                self.url + path, headers=headers, allow_redirects=False) as reply:
            return reply.status

    def public(self) -> tuple[dict[str, Any], str]:
        pkg = next(p for p in self.store.packages.values()
                   if p["state"] == "active" and not p["private"] and p.get("owner_org"))
        return pkg, str(self.store.org_name(pkg["owner_org"]))


@pytest.fixture
async def portal() -> AsyncIterator[Portal]:
    store = CkanStore(seed=4)
    seed_ckan(store, datasets=6, resources=1, file_size=300, seed=4)
    async with serve(create_portaljs_app(store, portal="demo", api_keys={KEY: "admin"})) as url:
        yield Portal(url, store)
    store.close()


async def test_ckan_pages_under_the_portal(portal: Portal) -> None:
    pkg, _ = portal.public()
    assert await portal.get(f"/@demo/dataset/{pkg['name']}") == 200
    assert await portal.get(f"/@demo/dataset/{pkg['id']}") == 302
    assert await portal.get("/@demo/dataset/no-such-dataset") == 404
    assert portal.store.stats["portaljs:page"] == 3


async def test_frontend_pages_show_public_datasets_of_their_organization(portal: Portal) -> None:
    pkg, org = portal.public()
    assert await portal.get(f"/@{org}/{pkg['name']}") == 200
    assert await portal.get(f"/@another-org/{pkg['name']}") == 404
    assert await portal.get(f"/@{org}/no-such-dataset") == 404
    portal.store.save_package({**pkg, "private": True})
    # The frontend reads the API without a key: a private dataset is never shown.
    assert await portal.get(f"/@{org}/{pkg['name']}", key=KEY) == 404
    assert portal.store.stats["portaljs:frontend"] == 4
