"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from real_ckan.tier import CkanInstance, Tier, TierUnavailable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def ckan_tier() -> Iterator[list[CkanInstance]]:
    """Two real CKAN 2.12 servers (see tests/real_ckan/), started once for the session."""
    try:
        Tier.check()
    except TierUnavailable as error:
        if os.environ.get("BULKPORT_REAL_CKAN") == "require":
            pytest.fail(f"real-CKAN tier required but unavailable: {error}")
        pytest.skip(str(error))
    tier = Tier(2)
    try:
        yield tier.start()
    finally:
        tier.stop()


@pytest.fixture
def real_ckan(ckan_tier: list[CkanInstance]) -> CkanInstance:
    """The first real CKAN, emptied of datasets and organizations."""
    ckan_tier[0].wipe()
    return ckan_tier[0]


@pytest.fixture
def real_ckan_target(ckan_tier: list[CkanInstance]) -> CkanInstance:
    """The second real CKAN, emptied: the target of CKAN → CKAN tests."""
    ckan_tier[1].wipe()
    return ckan_tier[1]
