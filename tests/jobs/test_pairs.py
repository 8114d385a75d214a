"""Every ordered pair of portals, migrated against the simulators; the final target state is
checked record by record: every dataset once, its title and description, its files by hash;
then every entry of the redirect map the migration leaves is followed on both sides."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from bulkport.cli import main
from bulkport.portals.ckan.mapping import MARK
from bulkport.portals.datapress.mapping import MARK as DP_MARK
from bulkport.portals.datapress.mapping import datapress_to_dataset
from bulkport.portals.ods.mapping import dataset_id_for
from bulkport.testing import (
    CkanStore,
    DataPressStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_datapress_app,
    create_ods_app,
    create_portaljs_app,
    seed_ckan,
    seed_datapress,
    seed_ods,
)
from bulkport.testing.core.files import Blob
from bulkport.testing.core.responses import drop_connection
from bulkport.testing.ods.explore import render

KEY = "pair-test-key-0042"
DATASETS = 12


@dataclass
class Expected:
    """What the target must hold for one source dataset."""

    source_id: str
    name: str
    title: str
    description: str
    files: list[str]  # SHA-256 of each hosted file, sorted
    # Old file URLs in the redirect map: one per file, unless the source serves several
    # files at one URL (an Opendatasoft dataset's export holds the records of all its CSVs).
    entries: int | None = None

    @property
    def file_entries(self) -> int:
        return len(self.files) if self.entries is None else self.entries


@dataclass
class Held:
    title: str
    description: str
    files: list[str] = field(default_factory=list)


@dataclass
class Endpoint:
    type: str
    url: str
    settings: str = ""  # extra lines of the job file's table


Reader = Callable[[Expected], Held | None]
Writes = Callable[[], int]
CKAN_WRITES = ("package_create", "package_update", "package_patch", "package_delete",
               "package_revise", "resource_create", "resource_update", "resource_patch",
               "resource_delete", "organization_create", "resource_upload",
               "resource_upload_finalize")


def _ckan_expected(store: CkanStore) -> list[Expected]:
    return [Expected(p["id"], p["name"], p["title"], p.get("notes") or "",
                     sorted(store.blobs.get(r["id"]).sha256 for r in p["resources"]
                            if r.get("url_type") == "upload"))
            for p in store.packages.values() if p["state"] == "active"]


def _ods_expected(store: OdsStore) -> list[Expected]:
    expected = []
    for uid, ds in store.datasets.items():
        files = [store.blobs.get(r["datasource"]["file"]["uid"]).sha256
                 for r in ds.resources.values() if r["datasource"]["type"] == "uploaded_file"]
        files += [store.blobs.get(a).sha256 for a in ds.attachments]
        ftp = any(r["datasource"]["type"] == "ftp" for r in ds.resources.values())
        if ftp:
            # Data only the explore export serves: it travels as a CSV file.
            body = b"".join(render(store.records[uid], delimiter=",", with_bom=False))
            files.append(hashlib.sha256(body).hexdigest())
        # Published, a visitor downloads the uploaded files as one export per format and
        # separator; unpublished, each file is where the Automation API serves it.
        uploaded = [r for r in ds.resources.values() if r["datasource"]["type"] == "uploaded_file"]
        tables = len({(r["type"], r["params"].get("separator")) for r in uploaded}
                     if ds.is_published else uploaded)
        default = ds.metadata["default"]
        expected.append(Expected(uid, ds.dataset_id, default["title"]["value"],
                                 (default.get("description") or {}).get("value") or "",
                                 sorted(files), tables + len(ds.attachments) + ftp))
    return expected


def _dp_files(store: DataPressStore, doc: dict[str, Any]) -> list[str]:
    return sorted(store.blobs.get(r["origin"]).sha256 for r in doc["resources"].values())


def _dp_expected(store: DataPressStore) -> list[Expected]:
    return [Expected(doc["id"], datapress_to_dataset(doc).name, doc["title"],
                     doc.get("description") or "", _dp_files(store, doc))
            for doc in store.datasets.values()]


def _dp_reader(store: DataPressStore) -> Reader:
    def read(expected: Expected) -> Held | None:
        found = [d for d in store.datasets.values()
                 if (d.get("custom") or {}).get(DP_MARK) == expected.source_id]
        assert len(found) <= 1, f"{expected.name}: {len(found)} copies"
        if not found:
            return None
        return Held(found[0]["title"], found[0].get("description") or "",
                    _dp_files(store, found[0]))
    return read


def _datapress(seed: int) -> DataPressStore:
    store = DataPressStore(seed=seed)
    store.add_user("Admin", "admin@example.org", admin=True, key=KEY)
    return store


def _ckan_reader(store: CkanStore) -> Reader:
    def read(expected: Expected) -> Held | None:
        found = [p for p in store.packages.values() if p["state"] == "active" and any(
            e["key"] == MARK and e["value"] == expected.source_id for e in p["extras"])]
        assert len(found) <= 1, f"{expected.name}: {len(found)} copies"
        if not found:
            return None
        pkg = found[0]
        return Held(pkg["title"], pkg.get("notes") or "",
                    sorted(store.blobs.get(r["id"]).sha256 for r in pkg["resources"]
                           if r.get("url_type") == "upload"))
    return read


def _ods_reader(store: OdsStore) -> Reader:
    def read(expected: Expected) -> Held | None:
        uid = store.dataset_ids.get(dataset_id_for(expected.name))
        if uid is None:
            return None
        ds = store.datasets[uid]
        default = ds.metadata["default"]
        files = [*(r["datasource"]["file"]["uid"] for r in ds.resources.values()),
                 *ds.attachments]
        return Held(default["title"]["value"], (default.get("description") or {}).get("value") or "",
                    sorted(store.blobs.get(uid_).sha256 for uid_ in files))
    return read


def _stored_files(store: CkanStore | OdsStore | DataPressStore) -> list[Blob]:
    """The file bodies the target's records hold (not an orphan a lost reply left)."""
    if isinstance(store, CkanStore):
        keys = [r["id"] for p in store.packages.values() if p["state"] == "active"
                for r in p["resources"] if r.get("url_type") == "upload"]
    elif isinstance(store, OdsStore):
        keys = [key for ds in store.datasets.values()
                for key in (*(r["datasource"]["file"]["uid"] for r in ds.resources.values()
                              if r["datasource"]["type"] == "uploaded_file"), *ds.attachments)]
    else:
        keys = [r["origin"] for doc in store.datasets.values()
                for r in doc["resources"].values()]
    blobs = [store.blobs.get(key) for key in keys]
    assert None not in blobs
    return [b for b in blobs if b is not None]


class LoseFirstUpload:
    """Drops the connection after the site kept the first upload (a multipart POST or a
    presigned PUT): its reply is lost, so the client must try again."""

    def __init__(self) -> None:
        self.lost = 0

    def __call__(self, app: web.Application) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            upload = request.content_type == "multipart/form-data" or (
                request.method == "PUT" and request.content_type != "application/json")
            if not upload or self.lost:
                return await handler(request)
            self.lost += 1
            response = await handler(request)
            drop_connection(request)
            return response

        app.middlewares.insert(0, middleware)
        return app


class Portals:
    """Starts simulators; every one is stopped at the end of the test."""

    def __init__(self) -> None:
        self.servers: list[ThreadedServer] = []
        self.target_store: CkanStore | OdsStore | DataPressStore | None = None
        self.losing = LoseFirstUpload()  # on a target made with lose_first_upload

    def _serve(self, factory: Callable[[], Any]) -> str:
        self.servers.append(ThreadedServer(factory).start())
        return self.servers[-1].url

    def source(self, kind: str) -> tuple[Endpoint, list[Expected]]:
        if kind in ("ckan", "portaljs"):
            store = CkanStore(seed=21)
            seed_ckan(store, datasets=DATASETS, resources=2, file_size=1500, seed=21)
            if kind == "ckan":
                url = self._serve(lambda: create_ckan_app(store, api_keys={KEY: "admin"}))
            else:
                url = self._serve(lambda: create_portaljs_app(
                    store, portal="src", api_keys={KEY: "admin"})) + "/@src"
            return Endpoint(kind, url, "include_private = true"), _ckan_expected(store)
        if kind == "ods":
            ods = OdsStore(seed=23)
            seed_ods(ods, datasets=DATASETS, resources=2, file_size=1500, seed=23,
                     large_export_rows=50)
            url = self._serve(lambda: create_ods_app(ods, api_keys={KEY}))
            return Endpoint(kind, url), _ods_expected(ods)
        if kind == "datapress":
            dp = _datapress(24)
            seed_datapress(dp, datasets=DATASETS, resources=2, file_size=1500, seed=24)
            url = self._serve(lambda: create_datapress_app(dp))
            return Endpoint(kind, url), _dp_expected(dp)
        raise AssertionError(kind)

    def stored(self) -> list[Blob]:
        """The files the target's records hold now."""
        assert self.target_store is not None
        return _stored_files(self.target_store)

    def target(self, kind: str, *, lose_first_upload: bool = False
               ) -> tuple[Endpoint, Reader, Writes]:
        wrap: Callable[[web.Application], web.Application] = (
            self.losing if lose_first_upload else lambda app: app)
        if kind in ("ckan", "portaljs"):
            store = self.target_store = CkanStore(seed=22)
            if kind == "ckan":
                url = self._serve(lambda: wrap(create_ckan_app(store, api_keys={KEY: "admin"})))
            else:
                url = self._serve(lambda: wrap(create_portaljs_app(
                    store, portal="dst", api_keys={KEY: "admin"}))) + "/@dst"
            return (Endpoint(kind, url), _ckan_reader(store),
                    lambda: sum(n for label, n in store.stats.items()
                                if label.split(":")[-1] in (*CKAN_WRITES, "put")))
        if kind == "ods":
            ods = self.target_store = OdsStore(custom_templates={"bulkport": ["source_extras"]})
            url = self._serve(lambda: wrap(create_ods_app(ods, api_keys={KEY},
                                                          processing_time=0.01)))
            return (Endpoint(kind, url, 'extras_template = "bulkport"'), _ods_reader(ods),
                    lambda: sum(n for label, n in ods.stats.items()
                                if label.startswith(("POST", "PUT", "DELETE"))))
        if kind == "datapress":
            dp = self.target_store = _datapress(25)
            team = dp.add_team("Migrated")["id"]
            url = self._serve(lambda: wrap(create_datapress_app(dp, min_part_size=1024)))
            return (Endpoint(kind, url, f'team = "{team}"\nmasthead = "simulator"'),
                    _dp_reader(dp),
                    lambda: sum(dp.stats[f"datapress:{w}"] for w in
                                ("create", "patch", "upload", "chunk", "complete")))
        raise AssertionError(kind)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def portals() -> Iterator[Portals]:
    made = Portals()
    yield made
    made.stop()


SOURCES = TARGETS = ("ckan", "portaljs", "ods", "datapress")
PAIRS = [(s, t) for s in SOURCES for t in TARGETS if s != t or s == "ckan"]


def _job(path: Path, source: Endpoint, target: Endpoint, kind: str = "migrate",
         options: str = "") -> Path:
    path.write_text(f"""
kind = "{kind}"
name = "pair"
[source]
type = "{source.type}"
url = "{source.url}"
api_key = "${{PAIR_KEY}}"
{source.settings}
[target]
type = "{target.type}"
url = "{target.url}"
api_key = "${{PAIR_KEY}}"
{target.settings}
[options]
connections = 8
status_poll = 0.01
{options}
""")
    return path


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_every_pair_migrates_every_dataset_and_file(portals: Portals, tmp_path: Path,
                                                    source_kind: str, target_kind: str) -> None:
    source, expected = portals.source(source_kind)
    target, read, writes = portals.target(target_kind)
    os.environ["PAIR_KEY"] = KEY
    job = _job(tmp_path / "job.toml", source, target)
    assert main(["run", str(job), "--state-dir", str(tmp_path / "state"), "--no-progress"]) == 0
    written = writes()
    assert written > 0
    assert len(expected) == DATASETS
    for record in expected:
        held = read(record)
        assert held is not None, f"{record.name} missing on the target"
        assert held.title == record.title
        assert held.description.strip() == record.description.strip()
        assert held.files == record.files, record.name

    # The redirect map the migration leaves: every old URL and every new one resolves, and a
    # file's new URL serves the data of its old one.
    csv_map = tmp_path / "redirects.csv"
    assert main(["export", str(job), "--state-dir", str(tmp_path / "state"),
                 "--redirects", str(csv_map)]) == 0
    rows = list(csv.DictReader(csv_map.open()))
    assert sum(row["type"] == "dataset" for row in rows) == DATASETS
    assert sum(row["type"] == "file" for row in rows) == sum(r.file_entries for r in expected)
    for row in rows:
        old, new = _fetch(row["old_url"], source), _fetch(row["new_url"], target)
        if row["type"] == "file":
            _check_same_data(row, old, new, source, target)
    nginx_map = tmp_path / "redirects.map"
    assert main(["export", str(job), "--state-dir", str(tmp_path / "state"),
                 "--redirects", str(nginx_map)]) == 0
    entries = [line for line in nginx_map.read_text().splitlines() if not line.startswith("#")]
    assert len(entries) == len(rows)
    assert all(line.startswith('"/') and line.endswith('";') for line in entries)

    # A second run, even with a fresh state directory, writes nothing.
    assert main(["run", str(job), "--state-dir", str(tmp_path / "fresh"), "--no-progress"]) == 0
    assert writes() == written


def _counts(state: Path) -> Counter[str]:
    """The counts of the report a run left in its state directory."""
    return Counter(json.loads((state / "report.json").read_text())["counts"])


@pytest.mark.parametrize("kind", ["migrate", "mirror"])
@pytest.mark.parametrize("target_kind", TARGETS)
def test_every_target_counts_the_files_and_bytes_it_was_sent(portals: Portals, tmp_path: Path,
                                                             target_kind: str,
                                                             kind: str) -> None:
    source, expected = portals.source("ckan")
    target, _, _ = portals.target(target_kind, lose_first_upload=True)
    os.environ["PAIR_KEY"] = KEY
    # A mirror keeps what the source drops: DataPress has no delete.
    job = _job(tmp_path / "job.toml", source, target, kind, 'on_delete = "keep"')

    def run(state: str, *args: str) -> Counter[str]:
        assert main(["run", str(job), "--state-dir", str(tmp_path / state), "--no-progress",
                     *args]) == 0
        return _counts(tmp_path / state)

    planned = run("dry", "--dry-run")
    assert not planned["files_transferred"] and not planned["bytes_transferred"]
    assert not portals.stored()

    counts = run("state")
    stored = portals.stored()
    assert len(stored) == sum(len(r.files) for r in expected) > 0
    assert portals.losing.lost == 1  # one upload was sent twice: it still counts once
    assert counts["files_transferred"] == len(stored)
    assert counts["bytes_transferred"] == sum(b.size for b in stored) > 0
    assert not counts["files_unchanged"]

    # Nothing changed: a run with a fresh state compares every file and sends none.
    again = run("fresh")
    assert not again["files_transferred"] and not again["bytes_transferred"]
    assert again["files_unchanged"] == len(stored)


def test_an_ods_target_without_extras_template_never_calls_its_files_lost(
        portals: Portals, tmp_path: Path) -> None:
    """Files sent are not a field with no place: the notes name what is really lost."""
    source, expected = portals.source("ckan")
    target, _, _ = portals.target("ods")
    os.environ["PAIR_KEY"] = KEY
    job = _job(tmp_path / "job.toml", source, Endpoint(target.type, target.url))
    assert main(["run", str(job), "--state-dir", str(tmp_path / "state"), "--no-progress"]) == 0
    report = json.loads((tmp_path / "state" / "report.json").read_text())
    assert report["counts"]["files_transferred"] == sum(len(r.files) for r in expected) > 0
    notes = list(report["notes"])
    assert not [n for n in notes if "'resources'" in n or "'private'" in n], notes
    assert any(n.startswith("links (resources without a hosted file) have no place") for n in notes)


def _export_format(url: str, portal: Endpoint) -> str | None:
    """The format of an Opendatasoft Explore API export (the dataset's records written
    anew, not a file's bytes); None for any other URL."""
    if portal.type != "ods":
        return None
    head, found, fmt = urlsplit(url).path.rpartition("/exports/")
    return fmt if found and "/api/explore/v2.1/catalog/datasets/" in head else None


def _check_same_data(row: dict[str, str], old: bytes, new: bytes, source: Endpoint,
                     target: Endpoint) -> None:
    """The new URL serves the data of the old one: the same bytes when both are the file
    itself; when one is an export, the file's rows among the export's records (a CSV), or
    an export that is not empty (any other format)."""
    old_format = _export_format(row["old_url"], source)
    new_format = _export_format(row["new_url"], target)
    if old_format is None and new_format is None:
        assert hashlib.sha256(new).hexdigest() == hashlib.sha256(old).hexdigest(), row
        return
    assert old_format is None or new_format is None, row  # no pair is Opendatasoft to itself
    file, export, url, fmt = ((new, old, row["old_url"], old_format) if old_format
                              else (old, new, row["new_url"], new_format))
    if fmt != "csv":
        assert export.strip(), row
        return
    # The export is asked for in the file's separator (and says so).
    delimiter = parse_qs(urlsplit(url).query).get("delimiter", [";"])[0]
    header, *records = _csv_rows(file, delimiter)
    exported_header, *exported = _csv_rows(export, delimiter)
    assert header and set(header) <= set(exported_header), row
    at = [exported_header.index(name) for name in header]

    def cells(values: list[str], width: int) -> list[str]:  # a short row is padded
        return values + [""] * (width - len(values))

    wanted = Counter(tuple(cells(r, len(header))[:len(header)]) for r in records)
    served = Counter(tuple(cells(r, len(exported_header))[i] for i in at) for r in exported)
    assert not wanted - served, row  # every row of the file is a record of the export


def _csv_rows(data: bytes, delimiter: str) -> list[list[str]]:
    """The rows of a CSV, blank ones left out (they are no records), without a BOM."""
    return [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter)
            if any(cell.strip() for cell in r)]


def _fetch(url: str, portal: Endpoint) -> bytes:
    """GET ``url`` as a user of ``portal`` who may see its private datasets; it must answer
    200 (an anonymous visitor gets 403/404 for those, as on the real portals)."""
    key = f"apikey {KEY}" if portal.type == "ods" else KEY
    request = urllib.request.Request(url, headers={"Authorization": key})
    with urllib.request.build_opener(_KeyStaysHome).open(request, timeout=10) as reply:
        assert reply.status == 200, url
        return bytes(reply.read())


class _KeyStaysHome(urllib.request.HTTPRedirectHandler):
    """A redirect (to a presigned download) is followed without the key, as a browser
    would: the storage refuses a second credential."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
        return new
