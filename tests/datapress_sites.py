"""CKAN and DataPress simulators side by side, and checks of a migration's final state.

Shared by the DataPress migration tests (``sites`` fixtures build a :class:`SiteFactory`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from bulkport.cli import main
from bulkport.mappers.ckan import MARK as CKAN_MARK
from bulkport.mappers.ckan import slug
from bulkport.mappers.datapress import LICENCES, MARK, RESOURCES, licence_id
from bulkport.testing import (
    CkanStore,
    DataPressStore,
    Faults,
    ThreadedServer,
    create_ckan_app,
    create_datapress_app,
    seed_ckan,
    seed_datapress,
)

CKAN_KEY, DP_KEY = "ckan-key-5d1e90", "datapress-key-c47a21"
PART = 1024  # the part size of these tests (the simulator's minimum is lowered to match)
DP_WRITES = ("create", "patch", "upload", "chunk", "complete")
CKAN_WRITES = ("package_create", "package_patch", "package_update", "resource_create",
               "resource_update", "resource_patch", "resource_delete", "organization_create")


@dataclass
class Sites:
    ckan: CkanStore
    ckan_url: str
    dp: DataPressStore
    dp_url: str
    team: str
    patches: list[Any]  # the body of every PATCH the DataPress site received


class SiteFactory:
    """Starts a CKAN and a DataPress simulator per call; :meth:`close` stops them all."""

    def __init__(self) -> None:
        self.servers: list[ThreadedServer] = []
        self.stores: list[Any] = []

    def __call__(self, datasets: int = 20, *, source: str = "ckan", faults: Faults | None = None,
                 latency: float = 0.0, prefix: str = "/api/v3", middleware: Any = None) -> Sites:
        """A CKAN and a DataPress site, the ``source`` one seeded with ``datasets``."""
        ckan, dp = CkanStore(seed=5), DataPressStore(seed=6)
        self.stores.extend([ckan, dp])
        if source == "ckan":
            seed_ckan(ckan, datasets=datasets, resources=3, file_size=2500, seed=5)
        else:
            seed_datapress(dp, datasets=datasets, resources=3, file_size=2500, seed=5)
        team = dp.add_team("Migrated datasets")["id"]
        dp.add_user("Migration Admin", "admin@example.org", admin=True, key=DP_KEY)
        if latency:
            faults = Faults(latency=latency)
        self.servers.append(ThreadedServer(lambda: create_ckan_app(
            ckan, api_keys={CKAN_KEY: "admin"}, faults=faults)).start())
        patches: list[Any] = []

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "PATCH":
                patches.append(json.loads(await request.read()))  # read() keeps the body
            return await handler(request)

        def datapress() -> web.Application:
            app = create_datapress_app(dp, faults=faults, min_part_size=PART, prefix=prefix)
            app.middlewares.insert(0, record)
            if middleware is not None:
                app.middlewares.insert(1, middleware)
            return app

        self.servers.append(ThreadedServer(datapress).start())
        return Sites(ckan, self.servers[-2].url, dp, self.servers[-1].url, team, patches)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for store in self.stores:
            store.close()


def dp_writes(store: DataPressStore) -> int:
    return sum(store.stats[f"datapress:{label}"] for label in DP_WRITES)


def ckan_writes(store: CkanStore) -> int:
    return sum(store.stats[f"ckan:{action}"] for action in CKAN_WRITES)


def write_job(tmp_path: Path, sites: Sites, *, source: str = "ckan", dp_key: str = "${T_DP_KEY}",
              prefix: str = "/api/v3", extra: str = "") -> Path:
    ckan = f'type = "ckan"\nurl = "{sites.ckan_url}"\napi_key = "${{T_CKAN_KEY}}"\n'
    dp = f'type = "datapress"\nurl = "{sites.dp_url}"\napi_key = "{dp_key}"\nprefix = "{prefix}"\n'
    if source == "ckan":
        tables = (f"[source]\n{ckan}include_private = true\n"
                  f'[target]\n{dp}team = "{sites.team}"\nmasthead = "simulator"\n'
                  f"part_size = {PART}\n")
    else:
        tables = f"[source]\n{dp}[target]\n{ckan}"
    job = tmp_path / "job.toml"
    job.write_text(f'kind = "migrate"\nname = "dp"\n{tables}{extra}\n'
                   "[options]\nconnections = 8\nretries = 8\n")
    return job


def run(job: Path, state: Path, *args: str) -> int:
    os.environ.update(T_CKAN_KEY=CKAN_KEY, T_DP_KEY=DP_KEY)
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def assert_no_key(capsys: Any, state: Path) -> None:
    output = capsys.readouterr()
    for text in (output.out, output.err, *(p.read_text() for p in state.iterdir() if p.is_file())):
        assert CKAN_KEY not in text and DP_KEY not in text


def by_mark(store: DataPressStore) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for doc in store.datasets.values():
        mark = doc["custom"].get(MARK)
        assert mark not in found, f"duplicate of {mark}"
        found[mark] = doc
    return found


def check_ckan_in_datapress(sites: Sites) -> None:
    """Every CKAN package once in DataPress: fields mapped, files byte-identical, links."""
    copies = by_mark(sites.dp)
    packages = [p for p in sites.ckan.packages.values() if p["state"] == "active"]
    assert set(copies) == {p["id"] for p in packages}
    for pkg in packages:
        doc = copies[pkg["id"]]
        assert doc["title"] == pkg["title"] and doc["description"] == (pkg.get("notes") or "")
        assert doc["tags"] == [t["name"] for t in pkg["tags"]]
        assert doc["sharing"] == ("private" if pkg["private"] else "public")
        assert doc["team"] == sites.team and doc["masthead"] == "simulator"
        assert doc["custom"]["name"] == pkg["name"]
        if pkg["license_id"] in LICENCES:
            assert doc["licence"] == LICENCES[pkg["license_id"]]
        else:  # unknown licences kept verbatim
            assert (doc["custom"].get("license_id") or doc["licence"]["title"]) == pkg["license_id"]
        extras = {e["key"]: e["value"] for e in pkg["extras"] if e["key"] != "language"}
        assert extras.items() <= doc["custom"].items()
        entries = doc["custom"].get(RESOURCES, {})
        uploads = [r for r in pkg["resources"] if r.get("url_type") == "upload"]
        links = [r for r in pkg["resources"] if r.get("url_type") != "upload"]
        assert len(doc["resources"]) == len(uploads) and len(doc["links"]) == len(links)
        for res in uploads:
            held = doc["resources"][entries[res["id"]]["id"]]
            assert sites.dp.blobs.get(held["origin"]).sha256 == sites.ckan.blobs.get(
                res["id"]).sha256
            assert (held["title"], held["description"]) == (res["name"], res["description"])
        for res in links:  # links stay links
            link = doc["links"][entries[res["id"]]["id"]]
            assert (link["url"], link["title"]) == (res["url"], res["name"])


def check_datapress_in_ckan(s: Sites) -> None:
    """Every DataPress dataset once in CKAN: fields mapped, files byte-identical, links."""
    copies: dict[str, dict[str, Any]] = {}
    for pkg in s.ckan.packages.values():
        mark = next(e["value"] for e in pkg["extras"] if e["key"] == CKAN_MARK)
        assert mark not in copies
        copies[mark] = pkg
    assert set(copies) == set(s.dp.datasets)
    for doc in s.dp.datasets.values():
        pkg = copies[doc["id"]]
        assert pkg["title"] == doc["title"] and pkg["notes"] == doc["description"]
        assert sorted(t["name"] for t in pkg["tags"]) == sorted(doc["tags"])
        assert pkg["private"] == (doc["sharing"] == "private")
        team = s.dp.teams[doc["team"]]["title"]
        assert s.ckan.org_name(pkg["owner_org"]) == slug(team)
        assert pkg["license_id"] == (licence_id(doc["licence"], LICENCES) or "")
        assert pkg["maintainer"] == ((doc["contact"] or {}).get("name") or "")
        extras = {e["key"]: e["value"] for e in pkg["extras"]}
        assert {k: v for k, v in doc["custom"].items() if k != "language"}.items() <= extras.items()
        files = sorted(doc["resources"].values(), key=lambda r: r["order"])
        uploads = [r for r in pkg["resources"] if r.get("url_type") == "upload"]
        assert [r["name"] for r in uploads] == [r["title"] for r in files]
        for mine, theirs in zip(uploads, files, strict=True):
            assert s.ckan.blobs.get(mine["id"]).sha256 == s.dp.blobs.get(theirs["origin"]).sha256
        links = [r for r in pkg["resources"] if r.get("url_type") != "upload"]
        assert sorted((r["url"], r["name"]) for r in links) == sorted(
            (link["url"], link["title"]) for link in doc["links"].values())


def files_of(store: DataPressStore, doc: dict[str, Any]) -> list[Any]:
    return sorted((r["title"], r["order"], r["format"], r["timeFrame"] or {},
                   store.blobs.get(r["origin"]).sha256) for r in doc["resources"].values())


def final_state(store: DataPressStore) -> dict[str, Any]:
    """What a user sees: each dataset's fields, links, and files by content."""
    state: dict[str, Any] = {}
    for doc in store.datasets.values():
        files = files_of(store, doc)
        links = sorted((link["url"], link["title"]) for link in doc["links"].values())
        fields = {k: v for k, v in doc.items()
                  if k not in ("id", "resources", "links", "createdAt", "updatedAt", "custom")}
        custom = {k: v for k, v in doc["custom"].items() if k != RESOURCES}
        state[doc["custom"][MARK]] = (fields, custom, files, links)
    return state
