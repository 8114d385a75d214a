"""The watchdog: a run that no longer moves stops within ``stall_timeout``, naming the host it
waits for; a slow run that moves goes on; a second Ctrl-C stops a run whose requests hang."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from state_rows import journaled

from bulkport.cli import main
from bulkport.testing import (
    CkanStore,
    Faults,
    ThreadedServer,
    create_ckan_app,
    create_portaljs_app,
    seed_ckan,
)
from bulkport.watchdog import Activity, watch

SOURCE_KEY, TARGET_KEY = "stall-source-key-71c3", "stall-target-key-2d9e"
# Without the watchdog these runs would end on the read timeout instead, too late for the test.
FAIL_FAST = "read_timeout = 5\nretries = 1"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ---- what counts as progress, and the line a stall prints -------------------------------

def test_a_stall_names_the_host_silent_longest() -> None:
    clock = Clock()
    activity = Activity(clock)
    activity.begin("slow.test:443")
    clock.now += 1
    activity.begin("other.test:80")
    activity.begin("slow.test:443")
    clock.now += 4
    assert activity.stall(6) is None
    clock.now += 1
    line = activity.stall(6)
    assert line is not None and "\n" not in line
    assert "no reply from slow.test:443 for 6.0s (2 requests), other.test:80 for 5.0s (1 request)" \
        in line
    assert "stall_timeout = 6" in line


def test_replies_and_chunks_are_progress_failed_connections_are_not() -> None:
    clock = Clock()
    activity = Activity(clock)
    flight = activity.begin("a.test:80")
    clock.now += 4
    activity.received(flight)  # a reply (an error reply too) or a chunk of a body
    clock.now += 4
    assert activity.stall(5) is None
    activity.end(flight)  # the next attempt fails to connect: no reply, no progress
    activity.begin("a.test:80")
    clock.now += 2
    assert activity.stall(5) is not None


def test_a_retry_wait_is_no_stall_until_it_ends() -> None:
    clock = Clock()
    activity = Activity(clock)
    activity.retrying("a.test:80", 30)  # a Retry-After the portal asked for
    clock.now += 33
    assert activity.stall(5) is None
    assert activity.summary() == "retries 1"
    clock.now += 3
    assert activity.stall(5) is not None


def test_the_progress_note_says_retries_waits_and_silent_hosts() -> None:
    clock = Clock()
    activity = Activity(clock)
    assert activity.summary() == ""
    activity.retrying("a.test:80", 4)
    activity.retrying("b.test:80", 1)
    assert activity.summary() == "retries 2, waiting 4s on a.test:80"
    clock.now += 5
    activity.begin("b.test:80")
    clock.now += 6  # nothing moved for 6 s, and b.test has not answered
    assert activity.summary() == "retries 2, no reply for 6s from b.test:80"


async def test_watch_cancels_a_run_that_does_not_move() -> None:
    activity = Activity()
    activity.begin("a.test:80")
    started = time.monotonic()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, activity, 0.4, scope)
            await anyio.sleep(5)
    assert scope.cancelled_caught
    assert 0.4 <= time.monotonic() - started < 2.0  # the limit, plus a loaded machine's lag
    assert activity.stalled is not None and "a.test:80" in activity.stalled


async def test_watch_leaves_a_run_that_moves_alone_and_a_busy_loop_too() -> None:
    activity = Activity()
    flight = activity.begin("a.test:80")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch, activity, 0.3, scope)
            for _ in range(12):  # 1.2 s of a slow reply that keeps coming
                await anyio.sleep(0.1)
                activity.received(flight)
            time.sleep(0.6)  # noqa: ASYNC251 (the loop busy with a long synchronous step: no stall)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert activity.stalled is None


# ---- whole runs ---------------------------------------------------------------------------

@dataclass
class Sites:
    source: CkanStore
    target: CkanStore
    source_url: str = ""
    target_url: str = ""
    release: threading.Event = field(default_factory=threading.Event)


def holding(path_part: str, after: int, release: threading.Event) -> Any:
    """A middleware that lets ``after`` requests whose path has ``path_part`` through, then
    accepts every other one and never answers it (until ``release``)."""
    seen = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        nonlocal seen
        if path_part in request.path:
            seen += 1
            if seen > after:
                while not release.is_set():  # noqa: ASYNC110 (set from the test's thread)
                    await asyncio.sleep(0.02)
        return await handler(request)

    return middleware


def trickling(piece: int, pause: float) -> Any:
    """A middleware that sends file downloads ``piece`` bytes every ``pause`` seconds."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if "/download/" not in request.path or not isinstance(response, web.Response):
            return response
        body = bytes(response.body)  # type: ignore[arg-type]
        slow = web.StreamResponse(headers={"Content-Type": response.content_type})
        slow.content_length = len(body)
        await slow.prepare(request)
        for start in range(0, len(body), piece):
            await asyncio.sleep(pause)
            await slow.write(body[start:start + piece])
        await slow.write_eof()
        return slow

    return middleware


@pytest.fixture
def make_sites() -> Iterator[Callable[..., Sites]]:
    servers: list[ThreadedServer] = []
    made: list[Sites] = []

    def make(datasets: int = 10, resources: int = 0, target_middleware: Any = None,
             source_middleware: Any = None, hold: tuple[str, int] | None = None) -> Sites:
        """``hold``: the target answers that many requests to that action, then no more
        (until ``sites.release``, which the end of the test sets)."""
        sites = Sites(CkanStore(seed=1), CkanStore(seed=2))
        if hold is not None:
            target_middleware = holding(*hold, sites.release)
        seed_ckan(sites.source, datasets=datasets, resources=resources, file_size=3000, seed=7)

        def app(store: CkanStore, key: str, middleware: Any) -> Callable[[], web.Application]:
            def build() -> web.Application:
                application = create_ckan_app(store, api_keys={key: "admin"})
                if middleware is not None:
                    application.middlewares.insert(0, middleware)
                return application
            return build

        servers.append(ThreadedServer(app(sites.source, SOURCE_KEY, source_middleware)).start())
        sites.source_url = servers[-1].url
        servers.append(ThreadedServer(app(sites.target, TARGET_KEY, target_middleware)).start())
        sites.target_url = servers[-1].url
        made.append(sites)
        return sites

    yield make
    for sites in made:
        sites.release.set()
    for server in servers:
        server.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def write_job(folder: Path, source_url: str, target_url: str, options: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.toml"
    job.write_text(f"""
kind = "migrate"
name = "stall"
[source]
type = "ckan"
url = "{source_url}"
api_key = "{SOURCE_KEY}"
include_private = true
[target]
type = "ckan"
url = "{target_url}"
api_key = "{TARGET_KEY}"
[options]
connections = 16
dataset_workers = 4  # fewer datasets at once than connections: held ones never block the rest
{options}
""")
    return job


def journaled_datasets(state: Path) -> list[dict[str, Any]]:
    """The datasets the journal holds as done."""
    return journaled(state, "dataset")


def test_a_server_that_never_answers_stops_the_run_within_the_stall_limit(
        make_sites, silent_server: str, tmp_path: Path, capsys) -> None:
    sites = make_sites()
    job = write_job(tmp_path, silent_server, sites.target_url, f"stall_timeout = 1.5\n{FAIL_FAST}")
    state = tmp_path / "state"
    started = time.monotonic()
    assert main(["run", str(job), "--state-dir", str(state), "--no-progress"]) == 2
    assert time.monotonic() - started < 1.5 + 3  # the limit, plus start-up on a loaded machine

    host = silent_server.removeprefix("http://")
    output = capsys.readouterr()
    # Said once, in the run's ABORTED summary on stdout, and not again as a diagnostic.
    stalled = [line for line in output.out.splitlines() if "stalled" in line]
    assert len(stalled) == 1 and f"no reply from {host}" in stalled[0]
    assert "stalled" not in output.err and "Traceback" not in output.err
    report = json.loads((state / "report.json").read_text())
    assert report["aborted"].startswith("stalled:") and host in report["aborted"]
    assert SOURCE_KEY not in output.out + output.err
    assert TARGET_KEY not in (state / "report.json").read_text()


def test_a_run_that_stalls_half_way_keeps_its_journal_and_resumes(make_sites,
                                                                   tmp_path: Path) -> None:
    sites = make_sites(datasets=10, hold=("package_create", 4))
    job = write_job(tmp_path, sites.source_url, sites.target_url, f"stall_timeout = 1\n{FAIL_FAST}")
    state = tmp_path / "state"
    started = time.monotonic()
    assert main(["run", str(job), "--state-dir", str(state), "--no-progress"]) == 2
    assert time.monotonic() - started < 1 + 4

    report = json.loads((state / "report.json").read_text())
    assert sites.target_url.removeprefix("http://") in report["aborted"]
    done = journaled_datasets(state)
    assert len(done) == report["counts"]["datasets_created"] == len(sites.target.packages) == 4

    sites.release.set()  # the portal answers again: the same command finishes the job
    assert main(["run", str(job), "--state-dir", str(state), "--no-progress"]) == 0
    assert sorted(p["name"] for p in sites.target.packages.values()) == sorted(
        p["name"] for p in sites.source.packages.values())


def test_a_slow_download_that_keeps_receiving_is_not_stopped(make_sites, tmp_path: Path) -> None:
    # 3,000 bytes at 250 bytes every 0.2 s: 2.4 s per file against a limit of 1 s.
    sites = make_sites(datasets=1, resources=1, source_middleware=trickling(250, 0.2))
    job = write_job(tmp_path, sites.source_url, sites.target_url, "stall_timeout = 1")
    state = tmp_path / "state"
    started = time.monotonic()
    assert main(["run", str(job), "--state-dir", str(state), "--no-progress"]) == 0
    assert time.monotonic() - started > 2.4  # really slower than the limit
    report = json.loads((state / "report.json").read_text())
    assert report["ok"]
    [copy] = sites.target.packages.values()
    [resource] = copy["resources"]
    assert resource["url_type"] == "upload"
    assert sites.target.blobs.get(resource["id"]).size == 3000


def test_dropped_connections_do_not_leave_uploads_waiting_on_idle_connections(
        tmp_path: Path) -> None:
    # A presigned PUT whose connection drops was sent again by aiohttp with a body stream
    # already read: headers announcing a body, then nothing; both ends waited for the read
    # timeout, run after run (the "mirror that sat on idle connections").
    source, target = CkanStore(seed=3), CkanStore(seed=4)
    seed_ckan(source, datasets=12, resources=2, file_size=2000, seed=3)
    drops = Faults(error_rate=0.3, kinds=("drop_before",), seed=11)
    with ThreadedServer(lambda: create_ckan_app(source, api_keys={SOURCE_KEY: "admin"})) as s, \
            ThreadedServer(lambda: create_portaljs_app(target, portal="acme", faults=drops,
                                                       api_keys={TARGET_KEY: "admin"})) as t:
        job = tmp_path / "job.toml"
        job.write_text(f"""
kind = "migrate"
name = "drops"
[source]
type = "ckan"
url = "{s.url}"
api_key = "{SOURCE_KEY}"
include_private = true
[target]
type = "portaljs"
url = "{t.url}/@acme"
api_key = "{TARGET_KEY}"
[options]
retries = 10
read_timeout = 30
""")
        started = time.monotonic()
        assert main(["run", str(job), "--state-dir", str(tmp_path / "s"), "--no-progress"]) == 0
        # Not one upload sat out a read timeout (the run itself takes a few seconds, more on
        # a loaded machine: the bound is the timeout, not a speed).
        assert time.monotonic() - started < 30
    hosted = sum(r.get("url_type") == "upload" for p in source.packages.values()
                 if p["state"] == "active" for r in p["resources"])
    copied = [r for p in target.packages.values() for r in p["resources"]
              if r.get("url_type") == "upload"]
    assert len(copied) == hosted and target.stats["faults:drop_before"] > 0


def test_retries_are_logged_with_host_status_and_wait_and_no_key(make_sites, tmp_path: Path,
                                                                 capsys) -> None:
    refused = 0

    @web.middleware
    async def busy_twice(request: web.Request, handler: Any) -> web.StreamResponse:
        nonlocal refused
        if "package_create" in request.path and refused < 2:
            refused += 1
            return web.json_response({"success": False, "error": {"message": "busy"}},
                                     status=503, headers={"Retry-After": "0.1"})
        return await handler(request)

    sites = make_sites(datasets=1, target_middleware=busy_twice)
    job = write_job(tmp_path, sites.source_url, sites.target_url, "retries = 4")
    assert main(["-v", "run", str(job), "--state-dir", str(tmp_path / "s"), "--no-progress"]) == 0
    output = capsys.readouterr()
    err = output.err  # the retries are diagnostics; the summary is on stdout
    host = sites.target_url.removeprefix("http://")
    retries = [line for line in err.splitlines() if "attempt" in line and "package_create" in line]
    assert len(retries) == 2
    assert f"POST http://{host}/api/3/action/package_create: HTTP 503" in retries[0]
    assert retries[0].endswith("attempt 2/4 in 0.1s") and retries[1].endswith("attempt 3/4 in 0.1s")
    assert SOURCE_KEY not in output.out + err and TARGET_KEY not in output.out + err


def test_a_second_sigint_stops_a_hanging_run_at_once(make_sites, tmp_path: Path) -> None:
    sites = make_sites(datasets=10, hold=("package_create", 3))
    job = write_job(tmp_path, sites.source_url, sites.target_url, "stall_timeout = 0")
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "bulkport", "run", str(job), "--state-dir",
                             str(state), "--no-progress"], stderr=subprocess.PIPE, text=True,
                            env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while len(journaled_datasets(state)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the other workers are now held by the silent portal
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None  # still draining: the requests in flight never end
        proc.send_signal(signal.SIGINT)
        asked = time.monotonic()
        _, err = proc.communicate(timeout=10)
        stopped_in = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert stopped_in < 5  # at once: draining would never end
    assert "SIGINT: finishing the work in flight" in err and "SIGINT again: stopping now" in err
    assert "Traceback" not in err
    report = json.loads((state / "report.json").read_text())
    assert "interrupted" in report["aborted"]
    done = journaled_datasets(state)
    assert len(done) == report["counts"]["datasets_created"] == len(sites.target.packages) == 3
    assert {entry["name"] for entry in done} == {p["name"] for p in sites.target.packages.values()}


# ---- the [options] keys --------------------------------------------------------------------

def test_the_time_limits_come_from_options_and_reach_every_request(tmp_path: Path) -> None:
    from bulkport.config import load_job
    from bulkport.jobs.migrate import make_client

    job = load_job(write_job(tmp_path, "http://a.test", "http://b.test",
                             "connect_timeout = 5\nread_timeout = 7.5\nstall_timeout = 90"))
    assert job.options.stall_timeout == 90
    client = make_client(job)
    assert (client.timeouts.connect, client.timeouts.read) == (5, 7.5)


@pytest.mark.parametrize(("line", "says"), [
    ("read_timeout = 0", "read_timeout must be more than 0"),
    ("connect_timeout = 100000", "connect_timeout must be at most 600"),
    ("stall_timeout = -1", "stall_timeout must be at least 0"),
    ("stall_timout = 5", "did you mean 'stall_timeout'"),
])
def test_a_wrong_time_limit_is_one_clear_line(tmp_path: Path, capsys, line: str,
                                              says: str) -> None:
    job = write_job(tmp_path, "http://a.test", "http://b.test", line)
    assert main(["run", str(job), "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
