"""The synthetic catalog seeded into a CKAN simulator's store."""

from __future__ import annotations

from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore


def test_seed_ckan_fills_the_store_deterministically() -> None:
    one, two = CkanStore(), CkanStore()
    ids = seed_ckan(one, datasets=25, resources=2, file_size=300, seed=4)
    assert ids == seed_ckan(two, datasets=25, resources=2, file_size=300, seed=4)
    assert len(one.packages) == 25 and len(one.organizations) >= 5
    hosted = [res for pkg in one.packages.values() for res in pkg["resources"]
              if res["url_type"] == "upload"]
    assert len(one.blobs) == len(hosted)
    assert all(one.blobs.get(res["id"]).size == 300 for res in hosted)  # type: ignore[union-attr]
    modified = [pkg["metadata_modified"] for pkg in one.packages.values()]
    assert len(set(modified)) == len(modified)
    assert [p["metadata_modified"] for p in one.packages.values()] == [
        p["metadata_modified"] for p in two.packages.values()]
