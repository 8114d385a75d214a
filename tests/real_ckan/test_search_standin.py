"""The real CKAN's ``package_search`` through the Solr stand-in: what bulkport relies on."""

from __future__ import annotations

import pytest
from real_ckan.tier import CkanInstance

pytestmark = pytest.mark.real_ckan


def _seed(ckan: CkanInstance) -> list[str]:
    ckan.result("organization_create", {"name": "org-a"})
    ids = []
    for n in range(5):
        pkg = ckan.result("package_create", {
            "name": f"set-{n}", "title": f"River {'water' if n % 2 else 'air'} {n}",
            "owner_org": "org-a", "private": n == 4, "tags": [{"name": f"tag{n}"}],
            "resources": [{"url": f"http://example.org/{n}.csv"}] * (n % 3)})
        ids.append(pkg["id"])
    return ids


def _names(reply: dict) -> list[str]:
    return [row["name"] if isinstance(row, dict) else row for row in reply["result"]["results"]]


def test_filters_paging_and_fields(real_ckan: CkanInstance) -> None:
    ids = _seed(real_ckan)
    search = real_ckan.action
    assert _names(search("package_search", {"sort": "name asc", "rows": 2, "start": 1})) == ["set-1", "set-2"]
    assert search("package_search", {"rows": 0})["result"]["count"] == 4  # the private one is hidden
    everything = search("package_search", {"include_private": True, "rows": 0})
    assert everything["result"]["count"] == 5
    anonymous = search("package_search", {"include_private": True, "rows": 0}, token=None)
    assert anonymous["result"]["count"] == 4
    wanted = f'id:("{ids[0]}" OR "{ids[3]}")'
    assert sorted(_names(search("package_search", {"fq": wanted, "fl": "name"}))) == ["set-0", "set-3"]
    assert _names(search("package_search", {"q": "water", "sort": "name asc"})) == ["set-1", "set-3"]
    assert _names(search("package_search", {"fq": "+name:set-2 +capacity:public"})) == ["set-2"]
    recent = search("package_search", {"fq": "metadata_modified:[NOW-1DAY TO NOW]", "rows": 0})
    assert recent["result"]["count"] == 4
    future = search("package_search", {"fq": "metadata_modified:[2999-01-01T00:00:00Z TO *]", "rows": 0})
    assert future["result"]["count"] == 0
    rows = search("package_search", {"fl": "id,metadata_modified", "sort": "id asc"})["result"]["results"]
    assert [set(r) for r in rows] == [{"id", "metadata_modified"}] * 4
    assert all(r["metadata_modified"].endswith("Z") and len(r["metadata_modified"]) <= 24 for r in rows)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    spaced = search("package_search", {"fl": "id name", "rows": 1})["result"]["results"]
    assert set(spaced[0]) == {"id", "name"}


def test_bad_queries_are_search_errors(real_ckan: CkanInstance) -> None:
    reply = real_ckan.action("package_search", {"fq": "metadata_modified:[yesterday TO *]"})
    assert reply["success"] is False and reply["error"]["__type"] == "Search Error"
    reply = real_ckan.action("package_search", {"sort": "name sideways"})
    assert reply["success"] is False and reply["error"]["__type"] == "Search Query Error"
