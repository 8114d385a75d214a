"""Shared fixtures."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
from real_ckan.tier import CkanInstance, MakeUser, Tier, TierUnavailable


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


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium, for the tests marked ``browser`` (Debian: apt-get install chromium)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("BULKPORT_BROWSER") == "require":
            pytest.fail(f"browser required but unavailable: {reason}")
        pytest.skip(reason)
    return found


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


@pytest.fixture
def make_user() -> Iterator[MakeUser]:
    """Makes a non-sysadmin user with an API token on a real CKAN: (name, token); deleted
    afterwards, so that the other real-CKAN tests (the contract lists users) find the site as
    it was."""
    made: list[tuple[CkanInstance, str]] = []

    def make(ckan: CkanInstance) -> tuple[str, str]:
        name = f"user-{uuid.uuid4().hex[:8]}"
        ckan.result("user_create", {"name": name, "email": f"{name}@example.org",
                                    "password": "User-pass-12345"})
        made.append((ckan, name))
        return name, ckan.result("api_token_create", {"user": name, "name": "tests"})["token"]

    yield make
    for ckan, name in made:
        ckan.result("user_delete", {"id": name})


# ---- Opendatasoft simulator replies checked against Opendatasoft's OpenAPI document ----
# (bulkport/testing/ods/openapi.py). Without the document the check is skipped, saying so;
# a $BULKPORT_ODS_OPENAPI that names no readable document is an error.
_ods_oracle_reason = ""


def pytest_configure(config: pytest.Config) -> None:
    global _ods_oracle_reason
    from bulkport.testing.ods import openapi as ods_openapi

    oracle, _ods_oracle_reason = ods_openapi.load()
    if oracle is None and os.environ.get(ods_openapi.ENV_VAR):
        raise pytest.UsageError(f"Opendatasoft OpenAPI oracle required: {_ods_oracle_reason}")
    ods_openapi.activate(oracle)


def pytest_report_header(config: pytest.Config) -> str:
    from bulkport.testing.ods import openapi as ods_openapi

    state = "on" if ods_openapi.active() else "SKIPPED"
    return f"Opendatasoft simulator replies vs its OpenAPI document: {state} — {_ods_oracle_reason}"


@pytest.fixture(autouse=True)
def _ods_replies_match_openapi(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test during which an Opendatasoft simulator broke its OpenAPI document."""
    from bulkport.testing.ods import openapi as ods_openapi

    oracle = ods_openapi.active()
    start = oracle.mark() if oracle else 0
    yield
    found = oracle.since(start) if oracle else []
    if found:
        for violation in found:
            violation.where = request.node.nodeid
        lines = "\n".join(ods_openapi.iter_report(found))
        pytest.fail(f"{len(found)} Opendatasoft simulator replies break the OpenAPI "
                    f"document:\n{lines}", pytrace=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from bulkport.testing.ods import openapi as ods_openapi

    oracle = ods_openapi.active()
    line = oracle.summary() if oracle else f"skipped: {_ods_oracle_reason}"
    terminalreporter.write_line(f"Opendatasoft OpenAPI oracle: {line}")
