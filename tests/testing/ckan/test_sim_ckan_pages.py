"""The CKAN simulator's dataset pages, as CKAN 2.12's dataset.read view answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.server import serve

KEY = "pages-key"


@dataclass
class Site:
    url: str
    store: CkanStore

    async def get(self, path: str, *, key: str | None = None,
                  follow: bool = True) -> tuple[int, str, Any]:
        headers = {"Authorization": key} if key else {}
        async with aiohttp.ClientSession() as session, session.get(
                self.url + path, headers=headers, allow_redirects=follow) as reply:
            return reply.status, await reply.text(), reply.headers


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    store = CkanStore(seed=3)
    seed_ckan(store, datasets=8, resources=2, file_size=300, seed=3)
    async with serve(create_ckan_app(store, api_keys={KEY: "admin"})) as url:
        yield Site(url, store)
    store.close()


def _one(store: CkanStore, **wanted: Any) -> dict[str, Any]:
    return next(p for p in store.packages.values()
                if all(p[k] == v for k, v in wanted.items()))


async def test_a_public_dataset_has_an_html_page(site: Site) -> None:
    pkg = next(p for p in site.store.packages.values() if p["state"] == "active"
               and not p["private"] and any(r.get("url_type") == "upload"
                                            for r in p["resources"]))
    status, html, headers = await site.get(f"/dataset/{pkg['name']}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "<h1>" in html and f'{site.url}/dataset/{pkg["id"]}/resource/' in html  # its files
    assert site.store.stats["ckan:page"] == 1


async def test_by_id_the_page_redirects_to_its_name(site: Site) -> None:
    pkg = _one(site.store, state="active", private=False)
    status, _, headers = await site.get(f"/dataset/{pkg['id']}", follow=False)
    assert status == 302 and headers["Location"] == f"{site.url}/dataset/{pkg['name']}"


async def test_unknown_private_and_deleted_are_not_found_to_a_visitor(site: Site) -> None:
    assert (await site.get("/dataset/no-such-dataset"))[0] == 404
    pkg = _one(site.store, state="active", private=False)
    site.store.save_package({**pkg, "private": True})
    assert (await site.get(f"/dataset/{pkg['name']}"))[0] == 404
    assert (await site.get(f"/dataset/{pkg['name']}", key=KEY))[0] == 200
    site.store.save_package({**pkg, "private": False, "state": "deleted"})
    assert (await site.get(f"/dataset/{pkg['name']}"))[0] == 404
    assert (await site.get(f"/dataset/{pkg['name']}", key=KEY))[0] == 200  # a sysadmin's
