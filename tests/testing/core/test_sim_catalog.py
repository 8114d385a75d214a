"""The synthetic catalog: deterministic, valid and awkward."""

from __future__ import annotations

import re

from bulkport.testing.core.catalog import LICENSE_IDS, UNKNOWN_LICENSE, generate_packages


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
