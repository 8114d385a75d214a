"""``bulkport.testing.simulate``: a seeded portal in a background thread, stopped after."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

import bulkport.testing
from bulkport.testing import SimulatedPortal, simulate

DATASETS = 7
# Per simulator: one read a job would make, its Authorization scheme, and the count it gives.
READS: dict[str, tuple[str, str, Callable[[Any], int]]] = {
    "ckan": ("/api/3/action/package_search?rows=0&include_private=true", "",
             lambda body: body["result"]["count"]),
    "portaljs": ("/api/3/action/package_search?rows=0&include_private=true", "",
                 lambda body: body["result"]["count"]),
    "ods": ("/api/automation/v1.0/datasets/?limit=0", "apikey ",
            lambda body: body["total_count"]),
    "datapress": ("/api/v3/datasets/export.json", "", len),
}


def _get(url: str, authorization: str) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _refuses(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("kind", sorted(READS))
def test_serves_the_seeded_catalog_then_stops(kind: str) -> None:
    path, scheme, count = READS[kind]
    with simulate(kind, datasets=DATASETS) as portal:
        assert isinstance(portal, SimulatedPortal) and str(portal) == portal.url
        assert not _refuses(portal.url)
        # Private datasets count too: the key has an administrator's rights.
        assert count(_get(portal.url + path, scheme + portal.api_key)) == DATASETS
    assert _refuses(portal.url)


def test_the_url_is_what_a_job_file_names() -> None:
    with simulate("portaljs", datasets=1, portal_name="city") as portal:
        assert urlsplit(portal.url).path == "/@city"
        body = _get(portal.url + "/api/3/action/status_show", portal.api_key)
        assert body["success"] is True


def test_options_of_bulkport_simulate_pass_through() -> None:
    with simulate("datapress", datasets=2, api_key="my-key", prefix="/api") as portal:
        assert portal.api_key == "my-key"
        assert _get(portal.url + "/api/whoami", "my-key")["admin"] is True
        assert len(_get(portal.url + "/api/datasets/export.json", "my-key")) == 2
    with simulate("ckan", datasets=0, tokens=3) as portal:
        assert len(portal.banner) == 2 and "3 more API tokens" in portal.banner[1]
        assert "my-key" not in repr(portal) and portal.api_key not in repr(portal)


def test_stops_when_the_block_fails() -> None:
    with pytest.raises(KeyError), simulate("ods", datasets=0) as portal:
        raise KeyError("boom")
    assert _refuses(portal.url)


@pytest.mark.parametrize(("kind", "options", "error", "message"), [
    ("nowhere", {}, LookupError, "no simulator 'nowhere'"),
    ("ckan", {"prefix": "/api"}, TypeError, "takes no option 'prefix'"),
    ("ckan", {"datasets": -1}, ValueError, "--datasets -1: must be 0 or more"),
    ("ods", {"port": 70000}, ValueError, "--port 70000"),
])
def test_bad_arguments_are_refused_before_serving(kind: str, options: dict[str, Any],
                                                  error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message), simulate(kind, **options):
        pass


def test_exported_from_the_package() -> None:
    assert {"simulate", "SimulatedPortal"} <= set(bulkport.testing.__all__)
