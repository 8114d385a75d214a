"""CKAN and DataPress simulators side by side, checks of a migration's final state, and
the changes a DataPress source goes through between two mirror runs.

Shared by the DataPress migration and mirror tests (``sites`` fixtures build a
:class:`SiteFactory`). Changes are made the way DataPress makes them: an edit that sets
``updatedAt`` (as a PATCH may), a new upload in place (which moves ``updatedAt`` itself), a
dataset gone from the store (the API has no deleted state).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import leaks
from aiohttp import web
from mirror_sites import WRITES, linkify

from bulkport.cli import main
from bulkport.portals.ckan.mapping import MARK as CKAN_MARK
from bulkport.portals.ckan.mapping import slug
from bulkport.portals.datapress.mapping import LICENCES, MARK, RESOURCES, licence_id
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
from bulkport.testing.core.files import SyntheticFile
from bulkport.testing.datapress.files import attach_file
from bulkport.testing.datapress.schema import EMPTY_QA, build_dataset
from bulkport.testing.datapress.store import iso

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

    def reset_stats(self) -> None:
        for store in (self.ckan, self.dp):
            store.stats.clear()
            store.stats.requests = 0


class SiteFactory:
    """Starts a CKAN and a DataPress simulator per call; :meth:`close` stops them all."""

    def __init__(self) -> None:
        self.servers: list[ThreadedServer] = []
        self.stores: list[Any] = []

    def __call__(self, datasets: int = 20, *, source: str = "ckan", faults: Faults | None = None,
                 latency: float = 0.0, prefix: str = "/api/v3", middleware: Any = None,
                 file_size: int = 2500, files_every: int = 1) -> Sites:
        """A CKAN and a DataPress site, the ``source`` one seeded with ``datasets``.

        Args:
            files_every: only one dataset in this many keeps its files, the others' become
                links (a mirror test is about which writes happen, not about uploads).
        """
        ckan, dp = CkanStore(seed=5), DataPressStore(seed=6)
        self.stores.extend([ckan, dp])
        if source == "ckan":
            seed_ckan(ckan, datasets=datasets, resources=3, file_size=file_size, seed=5)
            if files_every > 1:
                linkify(ckan, files_every)
        else:
            seed_datapress(dp, datasets=datasets, resources=3, file_size=file_size, seed=5)
            if files_every > 1:
                linkify_datapress(dp, files_every)
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


def ckan_write_counts(store: CkanStore) -> dict[str, int]:
    """Writes a CKAN site received, by action (only those that happened)."""
    return {action: n for action in WRITES if (n := store.stats[f"ckan:{action}"])}


def dp_write_counts(store: DataPressStore) -> dict[str, int]:
    """Writes a DataPress site received, by route (only those that happened)."""
    return {label: n for label in DP_WRITES if (n := store.stats[f"datapress:{label}"])}


def write_job(tmp_path: Path, sites: Sites, *, source: str = "ckan", dp_key: str = "${T_DP_KEY}",
              prefix: str = "/api/v3", extra: str = "", kind: str = "migrate",
              options: str = "retries = 8") -> Path:
    ckan = f'type = "ckan"\nurl = "{sites.ckan_url}"\napi_key = "${{T_CKAN_KEY}}"\n'
    dp = f'type = "datapress"\nurl = "{sites.dp_url}"\napi_key = "{dp_key}"\nprefix = "{prefix}"\n'
    if source == "ckan":
        tables = (f"[source]\n{ckan}include_private = true\n"
                  f'[target]\n{dp}team = "{sites.team}"\nmasthead = "simulator"\n'
                  f"part_size = {PART}\n")
    else:
        tables = f"[source]\n{dp}[target]\n{ckan}"
    job = tmp_path / "job.toml"
    job.write_text(f'kind = "{kind}"\nname = "dp"\n{tables}{extra}\n'
                   f"[options]\nconnections = 8\n{options}\n")
    return job


def run(job: Path, state: Path, *args: str) -> int:
    os.environ.update(T_CKAN_KEY=CKAN_KEY, T_DP_KEY=DP_KEY)
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def verify(job: Path, *args: str) -> int:
    os.environ.update(T_CKAN_KEY=CKAN_KEY, T_DP_KEY=DP_KEY)
    return main(["verify", str(job), *args])


def assert_no_key(capsys: Any, state: Path) -> None:
    leaks.assert_no_key(capsys, state, CKAN_KEY, DP_KEY)


def by_mark(store: DataPressStore) -> dict[str, dict[str, Any]]:
    """bulkport's datasets by source id (those made on the site carry no mark)."""
    found: dict[str, dict[str, Any]] = {}
    for doc in store.datasets.values():
        mark = doc["custom"].get(MARK)
        if mark is None:
            continue
        assert mark not in found, f"duplicate of {mark}"
        found[mark] = doc
    return found


def hand_made(store: DataPressStore, title: str) -> str:
    """A dataset made on the site by its own team, without the mark; return its id."""
    team = store.add_team(f"Team of {title}")["id"]
    dataset_id = store.new_id()
    doc, issues = build_dataset(store, {"title": title, "team": team, "masthead": "simulator",
                                        "custom": {"owner": "site team"}}, None,
                                dataset_id=dataset_id, now="2024-01-01T00:00:00.000Z")
    assert not issues, issues
    store.datasets[dataset_id] = doc
    return dataset_id


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
    return sorted((r["title"], r["order"], r["format"], r["timeframe"] or {},
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


# ---- a DataPress source changing between mirror runs ---------------------------------


def linkify_datapress(store: DataPressStore, files_every: int) -> None:
    """Turn the files of all but one dataset in ``files_every`` into links."""
    for n, doc in enumerate(store.datasets.values()):
        if n % files_every == 0:
            continue
        for rid, res in sorted(doc["resources"].items(), key=lambda item: item[1]["order"]):
            store.drop_file(res["origin"])
            doc["links"][store.new_item_id(doc["links"])] = {
                "url": f"https://files.example.org/{doc['id']}-{rid}.csv", "title": res["title"],
                "order": len(doc["links"]), "description": res["description"],
                "qa": dict(EMPTY_QA)}
        doc["resources"] = {}


def with_files(store: DataPressStore) -> list[str]:
    return sorted(i for i, doc in store.datasets.items() if doc["resources"])


def dp_edit(store: DataPressStore, dataset_id: str, **fields: Any) -> None:
    """An edit whose PATCH also sets ``updatedAt`` (DataPress leaves it alone otherwise)."""
    store.datasets[dataset_id] = {**store.datasets[dataset_id], **fields, "updatedAt": iso()}


def dp_replace_file(store: DataPressStore, dataset_id: str) -> str:
    """A new upload, in place, of the dataset's first file (17 bytes longer); return the
    resource id. The simulator's upload moves ``updatedAt``, as DataPress does."""
    doc = store.datasets[dataset_id]
    rid, res = min(doc["resources"].items(), key=lambda item: item[1]["order"])
    old = store.blobs.get(res["origin"])
    assert old is not None
    filename = res["origin"].rsplit("/", 1)[-1]
    origin = f"{store.site}/dataset/{dataset_id}/{store.new_uuid()}/{filename}"
    store.blobs.put_synthetic(origin, SyntheticFile(old.size + 17, seed=4242))
    digest = store.file_md5(origin)
    assert digest is not None
    attach_file(store, doc, origin, filename, digest, {"resource_id": rid})
    return rid


def dp_drop(store: DataPressStore, dataset_id: str) -> None:
    """A dataset deleted on the site: gone from the export, 404 by id."""
    doc = store.datasets.pop(dataset_id)
    for res in doc["resources"].values():
        store.drop_file(res["origin"])


def dp_add(store: DataPressStore, template_id: str, n: int) -> str:
    """A new dataset like ``template_id``, with one link and no file; return its id."""
    template = store.datasets[template_id]
    new_id = store.new_id()
    now = iso()
    store.datasets[new_id] = {
        **json.loads(json.dumps(template)), "id": new_id, "title": f"Added dataset {n}",
        "createdAt": now, "updatedAt": now, "resources": {},
        "links": {"bcd": {"url": f"https://files.example.org/added-{n}.csv",
                          "title": f"Added link {n}", "order": 0, "description": "",
                          "qa": dict(EMPTY_QA)}}}
    return new_id
