"""A mirror run killed with SIGKILL, then run again, ends where an uninterrupted run ends,
and its watermark never passes work that was not finished."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from interrupt import kill_at_random_moments, kill_when_journaled
from mirror_sites import (
    Sites,
    add,
    by_mark,
    drop,
    edit,
    environment,
    last_report,
    run,
    site_factory,
    state_of,
    verify,
    write_job,
)
from state_rows import count_journaled

from bulkport.portals.ckan.mapping import VERSION
from bulkport.testing import CkanStore
from bulkport.testing.ckan.model import now_iso


@pytest.fixture
def sites() -> Iterator[Callable[..., Sites]]:
    yield from site_factory()


def final_state(target: CkanStore) -> dict[str, Any]:
    """What a user sees on the target, copy by copy (ids and timestamps aside)."""
    state: dict[str, Any] = {}
    for mark, pkg in by_mark(target, state=None).items():
        resources = [(r["name"], r.get("format"), r.get("url_type"), r.get(VERSION),
                      target.blobs.get(r["id"]).sha256 if r.get("url_type") == "upload"
                      else r.get("url")) for r in pkg["resources"]]
        state[mark] = (pkg["name"], pkg["state"], pkg["private"], pkg["title"],
                       pkg.get("notes"), sorted(t["name"] for t in pkg["tags"]),
                       sorted((e["key"], e["value"]) for e in pkg["extras"]), resources)
    return state


def change(s: Sites, when: str) -> None:
    """The same changes on twin sources: 80 edits, 3 deletions, 5 new datasets."""
    ids = s.active_ids()
    for n, pkg_id in enumerate(ids[:80]):
        edit(s.source, pkg_id, when, title=f"Second version {n}")
    for pkg_id in ids[-3:]:
        drop(s.source, pkg_id, when)
    for n in range(5):
        add(s.source, ids[90 + n], n, when)


def test_sigkill_during_a_run_then_a_rerun_equals_an_uninterrupted_run(sites, tmp_path: Path
                                                                       ) -> None:
    when = now_iso()  # one moment for both twins, so their copies match field for field
    reference, killed = sites(datasets=120), sites(datasets=120)
    for name, s in (("reference", reference), ("killed", killed)):
        assert run(write_job(tmp_path / name, s), tmp_path / name / "state") == 0
        change(s, when)
    ref_job = write_job(tmp_path / "reference", reference)
    assert run(ref_job, tmp_path / "reference" / "state") == 0
    assert verify(ref_job) == 0

    job, state = write_job(tmp_path / "killed", killed), tmp_path / "killed" / "state"
    watermark = state_of(state)["watermark"]
    killed.target_faults.latency = 0.05  # slow enough to be killed half-way
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress", "--concurrency", "2"]
    pid = kill_when_journaled(command, environment(), state, "mirror", 15)

    assert state_of(state)["watermark"] == watermark  # unfinished work: the watermark stayed
    done = count_journaled(state, "mirror")
    assert 15 <= done < 88  # really interrupted half-way
    assert (state / "lock").read_text() == str(pid)  # a stale lock, from a dead run

    killed.target_faults.latency = 0.0
    assert subprocess.run(command, env=environment(), stderr=subprocess.DEVNULL).returncode == 0
    assert final_state(killed.target) == final_state(reference.target)
    assert last_report(state)["notes"] == {
        f"resumed an interrupted run: {done} datasets were done already": 1}
    saved = state_of(state)
    assert saved["watermark"] > watermark
    assert set(saved["datasets"]) == set(killed.active_ids())
    assert count_journaled(state, "mirror") == 0
    assert verify(job) == 0


def test_sigkill_at_random_moments_then_a_rerun_equals_an_uninterrupted_run(
        sites, tmp_path: Path) -> None:
    """Killed at random moments through the first run (a full migration) and through the
    next one (edits, deletions, new datasets), a mirror ends as one that never was."""
    when = now_iso()
    reference, killed = sites(datasets=120), sites(datasets=120)
    ref_job, ref_state = write_job(tmp_path / "reference", reference), tmp_path / "reference" / "s"
    job, state = write_job(tmp_path / "killed", killed), tmp_path / "killed" / "state"
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress", "--concurrency", "2"]
    watermark = None
    for seed in (1, 2):  # the first run, then the second
        if seed == 2:
            change(reference, when)
            change(killed, when)
        assert run(ref_job, ref_state) == 0
        killed.target_faults.latency = 0.05  # a run lasts longer than the latest kill
        delays = kill_at_random_moments(command, environment(), seed=seed, kills=3,
                                        longest=2.0)
        assert state_of(state)["watermark"] == watermark, f"not killed in time: {delays}"
        killed.target_faults.latency = 0.0
        assert subprocess.run(command, env=environment(),
                              stderr=subprocess.DEVNULL).returncode == 0
        assert final_state(killed.target) == final_state(reference.target)
        # Keys and dates (the hashes cover file URLs, which name each twin's own host).
        assert ({sid: (key, modified) for sid, (key, _, modified)
                 in state_of(state)["datasets"].items()}
                == {sid: (key, modified) for sid, (key, _, modified)
                    in state_of(ref_state)["datasets"].items()})
        assert count_journaled(state, "mirror") == 0
        watermark = state_of(state)["watermark"]
    assert verify(job) == 0


def test_sigterm_drains_keeps_the_watermark_and_a_rerun_finishes(sites, tmp_path: Path) -> None:
    s: Sites = sites(datasets=120)
    job, state = write_job(tmp_path, s), tmp_path / "state"
    assert run(job, state) == 0
    watermark = state_of(state)["watermark"]
    change(s, now_iso())
    s.target_faults.latency = 0.05
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress", "--concurrency", "2"]
    proc = subprocess.Popen(command, env=environment(), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and count_journaled(state, "mirror") < 10:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "SIGTERM: finishing the work in flight" in err
    assert state_of(state)["watermark"] == watermark
    drained = count_journaled(state, "mirror")
    assert 10 <= drained < 88

    s.target_faults.latency = 0.0
    assert run(job, state) == 0
    assert state_of(state)["watermark"] > watermark
    assert verify(job) == 0
