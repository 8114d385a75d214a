"""``bulkport.run`` from Python: a path, TOML text or a dict, inside a running event loop (as
in a notebook cell) and outside one, gives the same report as the command line."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomllib

import bulkport
from bulkport.cli import main
from bulkport.testing import (
    CkanStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

PUBLIC = 0  # set by the fixture
SOURCE_KEY, TARGET_KEY = "api-source-key-0001", "api-target-key-0001"
DATASETS = 12  # of which some private or drafts: not read without include_private


def _public(store: CkanStore) -> int:
    return sum(p["state"] == "active" and not p.get("private") for p in store.packages.values())


@pytest.fixture
def job_text() -> Iterator[str]:
    source = CkanStore(seed=5)
    seed_ckan(source, datasets=DATASETS, resources=2, file_size=500, seed=5)
    global PUBLIC
    PUBLIC = _public(source)
    target = OdsStore(custom_templates={"custom": ["bulkport_source_id"]})
    with (ThreadedServer(lambda: create_ckan_app(source, api_keys={SOURCE_KEY: "admin"})) as ckan,
          ThreadedServer(lambda: create_ods_app(target, api_keys={TARGET_KEY})) as ods):
        yield f"""
kind = "migrate"
name = "from-python"

[source]
type = "ckan"
url = "{ckan.url}"
api_key = "{SOURCE_KEY}"

[target]
type = "ods"
url = "{ods.url}"
api_key = "{TARGET_KEY}"
mark_field = "custom.bulkport_source_id"

[options]
status_poll = 0.01
"""


def _same(report: bulkport.RunReport) -> dict[str, Any]:
    """What two runs of one job must agree on (their times aside)."""
    return {"job": report.job, "kind": report.kind, "ok": report.ok, "exit": report.exit_code,
            "counts": dict(report.counts), "failures": report.failures,
            "notes": dict(report.notes),
            "plan": sorted(report["plan"], key=lambda step: str(step["unit"]))}


def test_a_path_text_and_dict_give_one_report_inside_and_outside_a_loop(
        job_text: str, tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text(job_text)
    forms: dict[str, Any] = {"path": path, "str path": str(path), "text": job_text,
                             "dict": tomllib.loads(job_text)}
    reports: dict[str, bulkport.RunReport] = {}
    for label, job in forms.items():
        reports[f"{label}, no loop"] = bulkport.run(job, dry_run=True,
                                                    state_dir=tmp_path / label / "a")

        async def in_a_cell(job: Any = job, label: str = label) -> bulkport.RunReport:
            return bulkport.run(job, dry_run=True, state_dir=tmp_path / label / "b")

        reports[f"{label}, in a loop"] = asyncio.run(in_a_cell())
    first = _same(reports["path, no loop"])
    assert first["counts"]["would_create"] == PUBLIC and first["ok"] and first["exit"] == 0
    for label, report in reports.items():
        assert _same(report) == first, label
        assert report.dry_run and report.path is not None and report.path.is_file()
    # The command line's report of the same job holds the same.
    code = main(["run", str(path), "--dry-run", "--state-dir", str(tmp_path / "cli"),
                 "--no-progress", "--quiet"])
    cli = (tmp_path / "cli" / "report.json").read_bytes()
    cli_report = bulkport.RunReport.from_json(cli, exit_code=code, run=1, summary="")
    assert _same(cli_report) == first


def test_run_async_leaves_the_loop_free_and_the_job_done(job_text: str, tmp_path: Path) -> None:
    ticks: list[int] = []
    told: list[tuple[int, int | None]] = []

    async def cell() -> bulkport.RunReport:
        async def tick() -> None:
            while True:
                ticks.append(1)
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        report = await bulkport.run_async(job_text, state_dir=tmp_path / "state",
                                          progress=lambda done, total: told.append((done, total)))
        ticker.cancel()
        return report

    report = asyncio.run(cell())
    assert report.ok, report.summary and report.counts["datasets_created"] == PUBLIC
    assert report.run == 1 and report.path == tmp_path / "state" / "reports" / report.path.name
    assert len(ticks) > 1  # the loop ran while the job did
    assert told[-1][0] == PUBLIC and len(told) == PUBLIC
    # Run again: resumed from the same state, nothing left to do.
    again = bulkport.run(job_text, state_dir=tmp_path / "state")
    assert again.run == 2 and again.counts["datasets_created"] == 0


def test_a_bad_job_is_one_line_and_no_thread_is_left(tmp_path: Path) -> None:
    with pytest.raises(bulkport.ConfigError, match=r"^<job table>: name is required"):
        bulkport.run({"kind": "migrate"}, state_dir=tmp_path)
    with pytest.raises(bulkport.ConfigError, match=r"^<job text>: not valid TOML"):
        bulkport.run("kind = = 1", state_dir=tmp_path)
    with pytest.raises(bulkport.ConfigError, match=r"\[source\] type must be one of"):
        asyncio.run(bulkport.run_async({"name": "x", "source": {"type": "nope"}}))
    with pytest.raises(bulkport.ConfigError, match=r"missing\.toml: cannot read job file"):
        bulkport.run(tmp_path / "missing.toml")
    assert not [t for t in threading.enumerate() if t.name.startswith("bulkport")]


def test_verify_from_python(job_text: str, tmp_path: Path) -> None:
    bulkport.run(job_text, state_dir=tmp_path / "state")

    async def cell() -> tuple[bulkport.Comparison, list[bulkport.Check]]:
        return bulkport.verify(job_text), await bulkport.check_async(job_text)

    found, checks = asyncio.run(cell())
    assert found.at_source == PUBLIC and found.on_target == PUBLIC
    assert all(c.ok for c in checks) and len(checks) >= 3
    wrong = bulkport.check(job_text.replace(TARGET_KEY, "not-a-key"))
    assert [c.ok for c in wrong].count(False) == 1


def test_the_readme_notebook_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [example] = [block for block in blocks if "simulate(" in block]
    scope: dict[str, Any] = {"bulkport": bulkport}

    async def cell() -> None:
        exec(example.replace('"/tmp/try"', repr(str(tmp_path / "try"))), scope)

    asyncio.run(cell())
    report = scope["report"]
    assert report.ok and report.counts["datasets_created"] > 0, report.summary
