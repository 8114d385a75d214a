"""Contract tests: the same Action API scenario sent to a real CKAN 2.12 and to the simulators.

Every difference is either fixed in the simulator (the real server is right) or listed in
``ACCEPTED`` with the reason it does not matter. An entry that no longer matches anything
fails the test too, so the list stays true.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest
from compare import compare, explained
from real_ckan.tier import CkanInstance
from scenario import SCENARIO, Server, run

from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.server import serve
from bulkport.testing.portaljs.app import create_portaljs_app

pytestmark = pytest.mark.real_ckan

SIM_KEY = "contract-admin-key"

# (step label glob, path glob) -> why the difference is accepted. "*" paths cover the step.
_MEMBER_DETAILS = ("about", "activity_streams_email_notifications", "created", "email_hash",
                   "image_display_url", "image_url", "last_active", "number_created_packages")
_USER_DETAILS = ("activity_streams_email_notifications", "apikey", "email_hash", "fullname",
                 "image_display_url", "image_url", "last_active")
ACCEPTED: dict[tuple[str, str], str] = {
    **{("organization *", f"body.result.users[[]*[]].{key}"): "user details in a member list: "
       "bulkport reads only name and capacity" for key in _MEMBER_DETAILS},
    **{("second organization", f"body.result.users[[]*[]].{key}"): "as above" for key in _MEMBER_DETAILS},
    **{("user *", f"body.result*.{key}"): "user profile fields bulkport never reads"
       for key in _USER_DETAILS},
    ("*", "*datastore_active"): "present only where the datastore plugin runs; the simulator "
        "models a site with it, the tier runs without it",
    ("dataset update *", "body.changed_entities"): "CKAN 2.12 adds a summary of "
        "what changed to package_update replies; no client reads it",
    ("dataset create bad extras", "body.error.data.type"): "the echo of the invalid input in the "
        "error: the field name (extras) is what clients read, and it matches",
    ("dataset create bad tag", "body.error.tags[[]0[]]"): "CKAN words a tag error as a string, the "
        "simulator per tag field: both name the field 'tags', which is what bulkport reports",
    ("search rows not a number", "body.error.rows"): "CKAN gives two messages, the simulator one",
    ("user creates in a foreign organization", "*"): "the simulator lets every key holder edit "
        "every organization; per-organization permissions are not modelled (last step: no "
        "later step depends on it)",
}
# Only the PortalJS simulator.
ACCEPTED_PORTALJS: dict[tuple[str, str], str] = {
}


@pytest.fixture(scope="module")
def real_replies(ckan_tier: list[CkanInstance]) -> dict[str, Any]:
    """The real CKAN's replies, recorded once for both simulators."""
    ckan = ckan_tier[0]
    ckan.wipe()

    async def record() -> dict[str, Any]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            return await run(Server("real", ckan.url, ckan.token), session)

    return anyio.run(record)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        yield client


def _check(simulated: dict[str, Any], real: dict[str, Any], sim_site: str, real_site: str,
           accepted: dict[tuple[str, str], str]) -> None:
    found = compare(simulated, real, sim_site, real_site)
    unexplained = [d for d in found if explained(d[0], d[1], accepted) is None]
    used = {explained(d[0], d[1], accepted) for d in found}
    stale = [key for key in accepted if key not in used]
    lines = [f"  {label} :: {path}\n      simulator: {a!r}\n      real CKAN: {b!r}"
             for label, path, a, b in unexplained]
    assert not unexplained, f"{len(unexplained)} differences from the real CKAN:\n" + "\n".join(lines)
    assert not stale, f"accepted differences that no longer occur: {stale}"


def test_scenario_is_large() -> None:
    assert sum(1 for item in SCENARIO if not hasattr(item, "check")) >= 80


async def test_ckan_simulator_answers_like_real_ckan(real_replies: dict[str, Any],
                                                     ckan_tier: list[CkanInstance],
                                                     session: aiohttp.ClientSession) -> None:
    store = CkanStore()
    app = create_ckan_app(store, api_keys={SIM_KEY: "admin"}, sysadmins={"admin"})
    async with serve(app) as url:
        simulated = await run(Server("simulator", url, SIM_KEY), session)
    store.close()
    _check(simulated, real_replies, url, ckan_tier[0].url, ACCEPTED)


async def test_portaljs_simulator_answers_like_real_ckan(real_replies: dict[str, Any],
                                                         ckan_tier: list[CkanInstance],
                                                         session: aiohttp.ClientSession) -> None:
    store = CkanStore()
    app = create_portaljs_app(store, portal="contract", api_keys={SIM_KEY: "admin"},
                              sysadmins={"admin"})
    # The scenario starts from an empty portal: set the portal's own organization aside.
    store.organizations.pop(store.org_names.pop("contract"))
    async with serve(app) as url:
        simulated = await run(Server("portaljs", f"{url}/@contract", SIM_KEY), session)
    store.close()
    _check(simulated, real_replies, f"{url}/@contract", ckan_tier[0].url,
           {**ACCEPTED, **ACCEPTED_PORTALJS})
