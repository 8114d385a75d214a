"""The synthetic catalog: deterministic, valid and awkward."""

from __future__ import annotations

import hashlib
import re

from bulkport.testing.catalog import (
    LICENSE_IDS,
    UNKNOWN_LICENSE,
    generate_packages,
    seed_ckan,
    seed_datapress,
)
from bulkport.testing.ckan import CkanStore
from bulkport.testing.datapress_schema import build_dataset
from bulkport.testing.datapress_store import DataPressStore


def _fingerprint(seed: int, n: int = 30) -> list[tuple[dict, list[str | None]]]:
    return [(pkg, [f.sha256() if f else None for f in files])
            for pkg, files in generate_packages(n, resources=3, file_size=500, seed=seed)]


def test_catalog_is_a_function_of_the_seed() -> None:
    assert _fingerprint(1) == _fingerprint(1)
    assert _fingerprint(1) != _fingerprint(2)
    # Dataset i does not depend on how many are generated.
    assert _fingerprint(1, 10) == _fingerprint(1, 30)[:10]


def test_catalog_is_valid_for_ckan_and_nasty() -> None:
    packages = list(generate_packages(300, resources=3, seed=0))
    names = [pkg["name"] for pkg, _ in packages]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z0-9_-]{2,100}", name) for name in names)
    titles = [pkg["title"] for pkg, _ in packages]
    assert any(not t.isascii() for t in titles)
    assert any(re.search(r"[\u3040-\u9fff]", t) for t in titles)  # CJK
    assert any(re.search(r"[\U0001F300-\U0001FAFF]", t) for t in titles)  # emoji
    assert any("notes" not in pkg or pkg["notes"] == "" for pkg, _ in packages)
    tags = {tag["name"] for pkg, _ in packages for tag in pkg["tags"]}
    assert any(" " in tag for tag in tags) and any(not tag.isascii() for tag in tags)
    licences = {pkg["license_id"] for pkg, _ in packages}
    assert UNKNOWN_LICENSE in licences and licences - {UNKNOWN_LICENSE} <= set(LICENSE_IDS)
    assert any(e["key"] == "language" for pkg, _ in packages for e in pkg["extras"])
    assert any(pkg["private"] for pkg, _ in packages)
    kinds = {(res["url_type"], res["format"], file.kind if file else None)
             for pkg, files in packages for res, file in zip(pkg["resources"], files,
                                                             strict=True)}
    assert {("upload", "CSV", "csv"), ("upload", "PDF", "pdf"), ("", "HTML", None)} <= kinds


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


def test_seed_datapress_fills_the_store_deterministically_and_validly() -> None:
    one, two = DataPressStore(), DataPressStore(seed=9)
    ids = seed_datapress(one, datasets=60, resources=3, file_size=700, seed=4)
    assert ids == seed_datapress(two, datasets=60, resources=3, file_size=700, seed=4)
    assert one.datasets == two.datasets and len(one.teams) >= 5
    assert all(re.fullmatch("[a-z0-9]{5}", i) for i in ids) and len(set(ids)) == 60
    documents = list(one.datasets.values())
    hosted = [res for doc in documents for res in doc["resources"].values()]
    assert len(one.blobs) == len(hosted) and all(res["size"] == 700 for res in hosted)
    assert {res["format"] for res in hosted} == {"csv", "pdf"}
    assert all(re.fullmatch("[bcdefghjklmnpqrstvwxyz0-9]{3}", key) for doc in documents
               for key in [*doc["resources"], *doc["links"]])
    assert any(doc["links"] for doc in documents)
    assert any(doc["sharing"] == "private" for doc in documents)
    assert any(doc["description"] == "" for doc in documents)
    assert any(not doc["title"].isascii() for doc in documents)
    assert any(doc["custom"] for doc in documents) and any(doc["licence"] is None
                                                            for doc in documents)
    for doc in documents:  # every seeded dataset is one a PATCH would keep as it is
        assert build_dataset(one, doc, doc, dataset_id=doc["id"], now="") == (doc, [])
    assert all(res["hash"] is None for res in hosted)  # computed when first shown
    origin = hosted[0]["origin"]
    assert one.file_md5(origin) == hashlib.md5(one.blobs.get(origin).read()).hexdigest()
    one.close()
    two.close()
