"""A dry run predicts exactly what the real run then does: for migrate and mirror, into each
target type, ``--dry-run`` then the real run, compared count by count — with a fresh state
directory, with a kept one after the source changed, and with the state directory lost
after a first real run (the target already holds everything)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mirror_sites import add, drop, edit, linkify, replace_file

from bulkport.cli import main
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
)

KEY = "dry-run-test-key-7d21"
TARGETS = ("ckan", "portaljs", "ods", "datapress")
# What a dry run counts, and what the real run counts for the same thing.
PREDICTED = {"create": "would_create", "update": "would_update", "unchanged": "datasets_unchanged",
             "done": "datasets_already_done", "delete": "would_delete", "hide": "would_hide",
             "failed": "failed"}
ACTUAL = {"create": "datasets_created", "update": "datasets_updated",
          "unchanged": "datasets_unchanged", "done": "datasets_already_done",
          "delete": "datasets_deleted", "hide": "datasets_hidden", "failed": "failed"}


@dataclass
class Target:
    type: str
    url: str
    settings: str
    writes: Callable[[], int]


class Sites:
    """A CKAN source and one target of each type asked for; all stopped at the end."""

    def __init__(self) -> None:
        self.servers: list[ThreadedServer] = []
        self.source = CkanStore(seed=31)
        seed_ckan(self.source, datasets=10, resources=2, file_size=700, seed=31)
        linkify(self.source, 3)  # one dataset in three keeps its files
        self.source_url = self._serve(lambda: create_ckan_app(self.source, api_keys={KEY: "admin"}))

    def _serve(self, factory: Callable[[], Any]) -> str:
        self.servers.append(ThreadedServer(factory).start())
        return self.servers[-1].url

    def target(self, kind: str) -> Target:
        if kind in ("ckan", "portaljs"):
            store = CkanStore(seed=32)
            counted = ("create", "update", "patch", "delete", "upload", "put")
            writes = lambda: sum(n for label, n in store.stats.items()  # noqa: E731
                                 if label.rsplit(":", 1)[-1].split("_")[-1] in counted)
            if kind == "ckan":
                return Target(kind, self._serve(lambda: create_ckan_app(
                    store, api_keys={KEY: "admin"})), 'organization = "copies"', writes)
            return Target(kind, self._serve(lambda: create_portaljs_app(
                store, portal="dst", api_keys={KEY: "admin"})) + "/@dst",
                'organization = "copies"', writes)
        if kind == "ods":
            ods = OdsStore(custom_templates={"custom": ["bulkport_source_id"]})
            return Target(kind, self._serve(lambda: create_ods_app(
                ods, api_keys={KEY}, processing_time=0.01)),
                'mark_field = "custom.bulkport_source_id"',
                lambda: sum(n for label, n in ods.stats.items()
                            if label.startswith(("POST", "PUT", "DELETE"))))
        dp = DataPressStore(seed=33)
        team = dp.add_team("Copies")["id"]
        dp.add_user("Admin", "admin@example.org", admin=True, key=KEY)
        return Target(kind, self._serve(lambda: create_datapress_app(dp, min_part_size=1024)),
                      f'team = "{team}"\nmasthead = "simulator"',
                      lambda: sum(dp.stats[f"datapress:{w}"]
                                  for w in ("create", "patch", "upload", "chunk", "complete")))

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def sites() -> Iterator[Sites]:
    made = Sites()
    yield made
    made.stop()


def _job(folder: Path, kind: str, sites: Sites, target: Target) -> Path:
    on_delete = 'on_delete = "private"' if kind == "mirror" and target.type == "datapress" else ""
    job = folder / "job.toml"
    job.write_text(f"""
kind = "{kind}"
name = "dry"
[source]
type = "ckan"
url = "{sites.source_url}"
api_key = "${{DRY_KEY}}"
include_private = true
[target]
type = "{target.type}"
url = "{target.url}"
api_key = "${{DRY_KEY}}"
{target.settings}
[options]
connections = 4
status_poll = 0.01
max_delete_fraction = 0.5
{on_delete}
""")
    return job


def _counts(report: Path, names: dict[str, str]) -> dict[str, int]:
    counts = json.loads(report.read_text())["counts"]
    return {what: counts.get(name, 0) for what, name in names.items()}


def dry_then_real(job: Path, state: Path, target: Target, folder: Path) -> dict[str, int]:
    """Run ``job`` dry, then for real, on ``state``; check the dry run wrote nothing and
    predicted the real run's counts; return them."""
    os.environ["DRY_KEY"] = KEY
    before = target.writes()
    common = ["run", str(job), "--state-dir", str(state), "--no-progress"]
    dry = main([*common, "--dry-run", "--report", str(folder / "dry.json")])
    assert target.writes() == before, "the dry run wrote"
    real = main([*common, "--report", str(folder / "real.json")])
    predicted = _counts(folder / "dry.json", PREDICTED)
    actual = _counts(folder / "real.json", ACTUAL)
    assert predicted == actual
    assert dry == real == 0
    return actual


@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("kind", ["migrate", "mirror"])
def test_the_dry_run_predicts_the_real_run(sites: Sites, tmp_path: Path, kind: str,
                                           target_kind: str) -> None:
    target = sites.target(target_kind)
    job = _job(tmp_path, kind, sites, target)
    state = tmp_path / "state"
    ids = sorted(p["id"] for p in sites.source.packages.values() if p["state"] == "active")

    first = dry_then_real(job, state, target, tmp_path)
    assert first["create"] == len(ids)

    # The source changes; the state is kept.
    edit(sites.source, ids[1], title="A new title")
    with_file = next(i for i in ids if i not in (ids[1], ids[4]) and any(
        r.get("url_type") == "upload" for r in sites.source.packages[i]["resources"]))
    replace_file(sites.source, with_file)
    add(sites.source, ids[2], 1)
    if kind == "mirror":
        drop(sites.source, ids[4])
    second = dry_then_real(job, state, target, tmp_path)
    assert (second["create"], second["update"]) == (1, 2)
    if kind == "mirror":
        assert second["delete"] + second["hide"] == 1

    # The state directory is lost: every dataset is looked at again, and none needs a write.
    shutil.rmtree(state)
    third = dry_then_real(job, state, target, tmp_path)
    assert third["create"] == third["update"] == 0
    assert third["unchanged"] == len(ids) + 1 - (kind == "mirror")
