"""DataPress migrations under faults, lost replies, kill -9, wrong keys and settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from datapress_sites import (
    CKAN_KEY,
    DP_KEY,
    SiteFactory,
    check_ckan_in_datapress,
    check_datapress_in_ckan,
    final_state,
    run,
    write_job,
)
from interrupt import kill_at_random_moments, kill_when_journaled
from state_rows import count_journaled

from bulkport.testing import Faults
from bulkport.testing.core.responses import drop_connection


@pytest.fixture
def sites() -> Iterator[SiteFactory]:
    make = SiteFactory()
    yield make
    make.close()


def test_lost_replies_are_looked_up_not_repeated(sites, tmp_path: Path) -> None:
    """The first create, upload, part, completion and PATCH each succeed on the site but
    their reply is lost: the run finds what they did instead of doing it twice."""
    lost: list[str] = []

    @web.middleware
    async def lose_first_reply(request: web.Request, handler: Any) -> web.StreamResponse:
        kind = f"{request.method} {request.path.rsplit('/', 1)[-1]}"
        if request.method in ("POST", "PATCH") and kind not in lost:
            lost.append(kind)
            response = await handler(request)
            drop_connection(request)
            return response
        return await handler(request)

    s = sites(datasets=3, middleware=lose_first_reply)
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    assert {"POST dataset", "POST upload", "POST chunk", "POST complete"} <= set(lost)
    assert any(k.startswith("PATCH") for k in lost)
    check_ckan_in_datapress(s)  # one dataset, file and link each: nothing made twice


def test_ten_percent_faults_end_complete_without_duplicates(sites, tmp_path: Path) -> None:
    s = sites(datasets=30, faults=Faults(error_rate=0.1, retry_after=0, seed=4))
    assert run(write_job(tmp_path, s), tmp_path / "state") == 0
    assert s.dp.stats["faults"] > 5 and s.dp.stats["faults:drop_after"] > 0
    check_ckan_in_datapress(s)  # also: no duplicate dataset, file or link

    back = sites(datasets=30, source="datapress", faults=Faults(error_rate=0.1, retry_after=0,
                                                                seed=9))
    assert run(write_job(tmp_path, back, source="datapress"), tmp_path / "back") == 0
    assert back.dp.stats["faults"] > 5
    check_datapress_in_ckan(back)


def test_wrong_key_stops_at_the_first_request(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=5)
    code = run(write_job(tmp_path, s, dp_key="not-the-key-0000"), tmp_path / "state")
    assert code == 2 and s.dp.stats.requests == 1 and s.ckan.stats.requests == 0
    output = capsys.readouterr()
    [line] = [text for text in output.out.splitlines() if "ABORTED" in text]
    assert "API key was refused (whoami answered null)" in line and "[target] api_key" in line
    assert "not-the-key-0000" not in output.out + output.err

    back = sites(datasets=5, source="datapress")
    code = run(write_job(tmp_path, back, source="datapress", dp_key="not-the-key-0000"),
               tmp_path / "back")
    assert code == 2 and back.dp.stats.requests == 1
    assert "[source] api_key" in capsys.readouterr().out


def test_a_wrong_prefix_or_field_map_is_one_clear_line(sites, tmp_path: Path, capsys) -> None:
    s = sites(datasets=2)
    assert run(write_job(tmp_path, s, prefix="/api"), tmp_path / "state") == 2
    assert "is [target] prefix right ('/api/v3' or '/api')?" in capsys.readouterr().out
    job = write_job(tmp_path, s, extra='[target.fields]\nlanguag = "custom.lang"')
    assert run(job, tmp_path / "state") == 2
    assert "[target] fields: unknown pivot field(s) languag (known: name, title" in (
        capsys.readouterr().err)
    assert s.dp.stats.requests == 1 and not s.dp.datasets


def test_kill_9_then_resume_equals_an_uninterrupted_run(sites, tmp_path: Path) -> None:
    reference = sites(datasets=30, latency=0.01)
    for name in ("ref", "killed"):
        (tmp_path / name).mkdir()
    assert run(write_job(tmp_path / "ref", reference), tmp_path / "ref-state") == 0

    s = sites(datasets=30, latency=0.01)
    job = write_job(tmp_path / "killed", s)
    state = tmp_path / "killed-state"
    env = {**os.environ, "T_CKAN_KEY": CKAN_KEY, "T_DP_KEY": DP_KEY}
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
               "--no-progress"]
    kill_when_journaled(command, env, state, "dataset", 10)
    done = count_journaled(state, "dataset")
    assert 10 <= done < 30  # really interrupted mid-run

    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0
    check_ckan_in_datapress(s)
    assert final_state(s.dp) == final_state(reference.dp)


@pytest.mark.parametrize("seed", [3, 4])
def test_kill_9_at_random_moments_then_resume_equals_an_uninterrupted_run(
        sites, tmp_path: Path, seed: int) -> None:
    """Kills land anywhere: mid-create, mid-upload, mid-PATCH, mid-export scan."""
    reference = sites(datasets=30, latency=0.02)
    for name in ("ref", "killed"):
        (tmp_path / name).mkdir()
    assert run(write_job(tmp_path / "ref", reference), tmp_path / "ref-state") == 0

    s = sites(datasets=30, latency=0.02)  # a run of about 2 s, creates in its first half
    job = write_job(tmp_path / "killed", s)
    env = {**os.environ, "T_CKAN_KEY": CKAN_KEY, "T_DP_KEY": DP_KEY}
    command = [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir",
               str(tmp_path / "killed-state"), "--no-progress"]
    delays = kill_at_random_moments(command, env, seed=seed, kills=4, longest=1.6)
    assert subprocess.run(command, env=env, stderr=subprocess.DEVNULL).returncode == 0, delays
    check_ckan_in_datapress(s)
    assert final_state(s.dp) == final_state(reference.dp), delays
