"""The synthetic catalogue seeded into a DataPress simulator's store."""

from __future__ import annotations

import hashlib
import re

from bulkport.testing.datapress.schema import build_dataset
from bulkport.testing.datapress.seed import seed_datapress
from bulkport.testing.datapress.store import DataPressStore


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
