"""Fault injection and request accounting, seen from a real aiohttp client."""

from __future__ import annotations

import time
from collections import Counter

import aiohttp
import pytest

from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.faults import FAULT_KINDS, Faults
from bulkport.testing.core.server import serve
from bulkport.testing.ods.app import create_ods_app
from bulkport.testing.ods.store import OdsStore

API = "/api/automation/v1.0"
KEY = {"Authorization": "apikey k"}
TIMEOUT = aiohttp.ClientTimeout(total=5)
METADATA = {"default": {"title": {"value": "T"}, "modified": {"value": "2024-01-01T00:00:00Z"},
                        "language": {"value": "en"}}}


async def test_every_fault_kind_shows_up_and_is_counted() -> None:
    app = create_ods_app(api_keys={"k"}, faults=Faults(error_rate=1.0, retry_after=2, seed=1))
    seen: Counter[str] = Counter()
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        for _ in range(40):
            try:
                async with session.get(url + API + "/datasets/", headers=KEY) as response:
                    body = await response.json()
                    seen[str(response.status)] += 1
                    assert "error_code" in body and "message" in body
                    if response.status == 429:
                        assert response.headers["Retry-After"] == "2"
            except aiohttp.ClientError:  # a drop must surface as an error, never a hang
                seen["dropped"] += 1
    assert seen["500"] and seen["503"] and seen["429"] and seen["dropped"]
    stats = app["stats"]
    # aiohttp silently retries an idempotent request once when a reused connection drops,
    # so the server may count more requests than the client made.
    assert stats.requests == stats["GET /datasets/"] == stats["faults"] >= 40
    assert all(stats["faults:" + kind] > 0 for kind in FAULT_KINDS)
    assert stats["faults:drop_before"] + stats["faults:drop_after"] >= seen["dropped"]


@pytest.mark.parametrize(("kind", "created"), [("drop_after", 1), ("drop_before", 0)])
async def test_a_drop_after_the_handler_keeps_the_side_effect(kind: str, created: int) -> None:
    store = OdsStore()
    app = create_ods_app(store, api_keys={"k"}, faults=Faults(error_rate=1.0, kinds=(kind,)))
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.post(url + API + "/datasets/", headers=KEY,
                                    json={"dataset_id": "x", "metadata": METADATA}) as response:
                await response.read()
    assert len(store.datasets) == created


async def test_a_dropped_download_is_a_truncated_payload() -> None:
    store = CkanStore()
    seed_ckan(store, datasets=1, resources=1, file_size=300_000)
    pkg = next(iter(store.packages.values()))
    res = pkg["resources"][0]
    app = create_ckan_app(store, faults=Faults(error_rate=1.0, kinds=("drop_after",)))
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        path = f"/dataset/{pkg['id']}/resource/{res['id']}/download/x.csv"
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.get(url + path, headers={"Authorization": "simulator-key"}) as r:
                await r.read()
    store.close()


async def test_latency_decimal_retry_after_and_the_portal_error_format() -> None:
    faults = Faults(latency=0.15, error_rate=1.0, retry_after=0.5, kinds=("429", "500"), seed=3)
    app = create_ckan_app(faults=faults)
    async with serve(app) as url, aiohttp.ClientSession(timeout=TIMEOUT) as session:
        statuses = set()
        for _ in range(6):
            started = time.perf_counter()
            async with session.get(url + "/api/3/action/status_show") as response:
                body = await response.json()
            assert time.perf_counter() - started >= 0.15
            assert body["success"] is False and body["error"]["__type"] in (
                "Too Many Requests", "Internal Server Error")
            if response.status == 429:
                assert response.headers["Retry-After"] == "0.5"
            statuses.add(response.status)
    assert statuses == {429, 500}


def test_unknown_fault_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="fault kinds"):
        create_ods_app(faults=Faults(error_rate=1.0, kinds=("teapot",)))
