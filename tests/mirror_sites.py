"""Two simulated CKAN sites for mirror tests, and the changes a source goes through.

Most resources are turned into links (a mirror test is about which writes happen, and a
thousand uploads would only make it slow); one dataset in ``files_every`` keeps its files.
Changes are made the way CKAN makes them: a new ``metadata_modified``, a deleted dataset kept
with ``state: deleted``, a replaced file with a new size and ``last_modified``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bulkport.cli import main
from bulkport.portals.ckan.mapping import MARK
from bulkport.store import DATABASE
from bulkport.testing import CkanStore, Faults, ThreadedServer, create_ckan_app, seed_ckan
from bulkport.testing.ckan.model import now_iso
from bulkport.testing.core.files import SyntheticFile

SOURCE_KEY, TARGET_KEY = "mirror-source-key-5e1f", "mirror-target-key-8c2a"
WRITES = ("package_create", "package_update", "package_patch", "package_delete",
          "dataset_purge", "package_revise", "resource_create", "resource_update",
          "resource_patch", "resource_delete", "organization_create")


@dataclass
class Sites:
    source: CkanStore
    target: CkanStore
    source_url: str = ""
    target_url: str = ""
    target_faults: Faults = field(default_factory=Faults)  # latency can change between runs
    failing_listing: set[int] = field(default_factory=set)  # ``start`` offsets of ``fl`` pages

    def writes(self) -> dict[str, int]:
        """Writes the target received, by action (only those that happened)."""
        return {a: self.target.stats[f"ckan:{a}"] for a in WRITES if self.target.stats[f"ckan:{a}"]}

    def reset_stats(self) -> None:
        self.source.stats.clear()
        self.source.stats.requests = 0
        self.target.stats.clear()
        self.target.stats.requests = 0

    def active_ids(self) -> list[str]:
        return sorted(p["id"] for p in self.source.packages.values() if p["state"] == "active")

    def with_files(self) -> list[str]:
        return [i for i in self.active_ids()
                if any(r.get("url_type") == "upload" for r in self.source.packages[i]["resources"])]


def linkify(store: CkanStore, files_every: int) -> None:
    """Turn the resources of all but one dataset in ``files_every`` into links."""
    for n, pkg in enumerate(list(store.packages.values())):
        if n % files_every == 0:
            continue
        for res in pkg["resources"]:
            store.blobs.delete(res["id"])
        store.save_package({**pkg, "resources": [
            {**r, "url_type": "", "size": None, "url": f"https://files.example.org/{r['id']}.csv"}
            for r in pkg["resources"]]})


def edit(store: CkanStore, pkg_id: str, when: str | None = None, **fields: Any) -> None:
    store.save_package({**store.packages[pkg_id], **fields,
                        "metadata_modified": when or now_iso()})


def replace_file(store: CkanStore, pkg_id: str, when: str | None = None) -> str:
    """A new version of the dataset's first hosted file; return the resource id."""
    when = when or now_iso()
    pkg = store.packages[pkg_id]
    res = next(r for r in pkg["resources"] if r.get("url_type") == "upload")
    new = SyntheticFile(int(res["size"]) + 17, seed=4242)
    store.blobs.put_synthetic(res["id"], new)
    store.save_package({**pkg, "metadata_modified": when, "resources": [
        {**r, "size": new.size, "last_modified": when} if r is res else r
        for r in pkg["resources"]]})
    return str(res["id"])


def drop(store: CkanStore, pkg_id: str, when: str | None = None) -> None:
    """What ``package_delete`` does: the dataset stays, with ``state: deleted``."""
    edit(store, pkg_id, when, state="deleted")


def add(store: CkanStore, template_id: str, n: int, when: str | None = None) -> str:
    """A new dataset like ``template_id``, with links only; return its id."""
    template = store.packages[template_id]
    new_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"added-{n}"))
    store.save_package({
        **template, "id": new_id, "name": f"added-dataset-{n}", "title": f"Added dataset {n}",
        "metadata_created": when or now_iso(), "metadata_modified": when or now_iso(),
        "resources": [{**r, "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"added-{n}-{i}")),
                       "package_id": new_id, "url_type": "", "size": None,
                       "url": f"https://files.example.org/added-{n}-{i}.csv"}
                      for i, r in enumerate(template["resources"])]})
    return new_id


def call(url: str, key: str, action: str, data: dict[str, str],
         upload: tuple[str, bytes] | None = None) -> Any:
    """An Action API call through HTTP, as a site's users make them: JSON, or a multipart
    form with ``upload`` as ``(file name, bytes)``; returns the ``result``."""
    headers = {"Authorization": key}
    if upload is None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    else:
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                 f"{v}\r\n".encode() for k, v in data.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; '
                     f'filename="{upload[0]}"\r\n\r\n'.encode() + upload[1]
                     + f"\r\n--{boundary}--\r\n".encode())
        body = b"".join(parts)
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(f"{url}/api/3/action/{action}", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())["result"]


def extra(pkg: dict[str, Any], key: str) -> Any:
    return next((e["value"] for e in pkg.get("extras") or [] if e["key"] == key), None)


def by_mark(store: CkanStore, state: str | None = "active") -> dict[str, dict[str, Any]]:
    """The target's copies by source id (those in ``state``; None: all)."""
    found: dict[str, dict[str, Any]] = {}
    for pkg in store.packages.values():
        mark = extra(pkg, MARK)
        if mark and (state is None or pkg["state"] == state):
            assert mark not in found, f"two copies of {mark}"
            found[mark] = pkg
    return found


def site_factory() -> Iterator[Callable[..., Sites]]:
    """The body of a ``sites`` fixture: yields ``make(datasets, files_every, seed)``."""
    servers: list[ThreadedServer] = []

    def make(datasets: int = 40, files_every: int = 10, seed: int = 5) -> Sites:
        made = Sites(CkanStore(seed=seed), CkanStore(seed=seed + 1))
        seed_ckan(made.source, datasets=datasets, resources=2, file_size=300, seed=seed)
        linkify(made.source, files_every)

        @web.middleware
        async def fail_listing(request: web.Request, handler: Any) -> web.StreamResponse:
            if "fl" in request.query and int(request.query.get("start", 0)) in made.failing_listing:
                return web.json_response({"success": False, "error": {
                    "__type": "Internal Server Error", "message": "Solr went away"}}, status=500)
            return await handler(request)

        def source_app() -> web.Application:
            app = create_ckan_app(made.source, api_keys={SOURCE_KEY: "admin"})
            app.middlewares.insert(0, fail_listing)
            return app

        servers.append(ThreadedServer(source_app).start())
        made.source_url = servers[-1].url
        servers.append(ThreadedServer(lambda: create_ckan_app(
            made.target, api_keys={TARGET_KEY: "admin"}, faults=made.target_faults)).start())
        made.target_url = servers[-1].url
        return made

    yield make
    for server in servers:
        server.stop()


def write_job(folder: Path, sites: Sites, *, options: str = "", source: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "mirror.toml"
    job.write_text(f"""
kind = "mirror"
name = "nightly"
[source]
type = "ckan"
url = "{sites.source_url}"
api_key = "${{M_SOURCE_KEY}}"
include_private = true
{source}
[target]
type = "ckan"
url = "{sites.target_url}"
api_key = "${{M_TARGET_KEY}}"
[options]
connections = 8
retries = 2
{options}
""")
    return job


def environment() -> dict[str, str]:
    os.environ.update(M_SOURCE_KEY=SOURCE_KEY, M_TARGET_KEY=TARGET_KEY)
    return dict(os.environ)


def run(job: Path, state: Path, *args: str) -> int:
    environment()
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def verify(job: Path, *args: str) -> int:
    environment()
    return main(["verify", str(job), *args])


def state_of(folder: Path) -> dict[str, Any]:
    """The mirror state in the state store of ``folder``, in the shape ``mirror.json`` had:
    the portals, the watermark, and each record held as ``[target key, hash, modified]``."""
    path = folder / DATABASE
    assert path.exists(), f"no state database in {folder}"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        meta = dict(db.execute("SELECT name, value FROM meta WHERE name LIKE 'mirror %'"))
        datasets = {sid: [key, digest, modified] for sid, key, digest, modified in db.execute(
            "SELECT source_id, target_key, hash, modified FROM mirror ORDER BY source_id")}
    finally:
        db.close()
    return {name: meta.get(f"mirror {name}") for name in (
        "source", "target", "watermark", "committed_at")} | {"datasets": datasets}


def last_actions(folder: Path) -> list[dict[str, Any]]:
    """What the newest run in ``folder``'s history acted on, in order."""
    names = ("entity", "action", "source_id", "source_url", "target_id", "target_url", "reason")
    db = sqlite3.connect(f"file:{folder / DATABASE}?mode=ro", uri=True, timeout=10)
    try:
        return [dict(zip(names, row, strict=True)) for row in db.execute(
            f"SELECT {', '.join(names)} FROM actions WHERE run = (SELECT max(id) FROM runs) "
            "ORDER BY id")]
    finally:
        db.close()


def last_report(folder: Path) -> dict[str, Any]:
    """The newest run report in ``folder``."""
    newest = max((folder / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text())
