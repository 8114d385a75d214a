"""What every benchmark does: start simulators in their own processes, run bulkport in
another one (as a user runs it), and read back its report and resource usage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY = "bench-key-0001"  # every simulator a benchmark starts accepts it
SETTINGS = {  # extra lines of a job's [target] table, per portal
    "ods": 'language = "en"',
    "datapress": 'team = "main"\nmasthead = "simulator"',  # made by `bulkport simulate`
}
# Pages a running simulator answers once it is up (an HTTP error still means it is up).
PROBES = {"ckan": "/api/3/action/status_show", "portaljs": "/api/3/action/status_show",
          "ods": "/api/automation/v1.0/datasets/?limit=0", "datapress": "/api/v3/whoami"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Simulator:
    kind: str
    url: str  # with the PortalJS portal path, when there is one
    pid: int

    @property
    def netloc(self) -> str:
        """``host:port``, as the report counts requests."""
        return self.url.split("//", 1)[1].split("/", 1)[0]


def start_simulator(stack: ExitStack, kind: str, args: list[str]) -> Simulator:
    """``bulkport simulate KIND`` on a free port, stopped when ``stack`` closes."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkport", "simulate", kind, "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    stack.callback(_stop, proc)
    url = f"http://127.0.0.1:{port}"
    portal = args[args.index("--portal") + 1] if "--portal" in args else None
    if portal:
        url += f"/@{portal}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + PROBES[kind], timeout=2).read()
            return Simulator(kind, url, proc.pid)
        except OSError as exc:
            if getattr(exc, "code", None):
                return Simulator(kind, url, proc.pid)
            time.sleep(0.2)
    raise SystemExit(f"{kind} simulator did not start on port {port}")


def start_portal(stack: ExitStack, kind: str, *, datasets: int, files: int, file_size: int,
                 latency: float, seed: int = 0) -> Simulator:
    """A simulated portal of ``kind`` seeded with ``datasets``, accepting :data:`KEY`."""
    return start_simulator(stack, kind, [
        "--latency", str(latency), "--api-key", KEY, "--datasets", str(datasets),
        "--resources", str(files), "--file-size", str(file_size), "--seed", str(seed),
        *(["--portal", "bench"] if kind == "portaljs" else [])])


def pair_job(path: Path, kind: str, source: Simulator, target: Simulator, connections: int,
             options: str = "") -> Path:
    """Write a ``kind`` job from ``source`` to ``target`` at ``path``; ``options``: extra
    lines of its ``[options]`` table."""
    path.write_text(f"""
kind = "{kind}"
name = "bench"
[source]
type = "{source.kind}"
url = "{source.url}"
api_key = "{KEY}"
include_private = true
[target]
type = "{target.kind}"
url = "{target.url}"
api_key = "{KEY}"
{SETTINGS.get(target.kind, "")}
[options]
connections = {connections}
transfers = {connections}
status_poll = 0.05
{options}
""")
    return path


@dataclass
class Run:
    """One bulkport process: its report and what it cost."""

    report: dict[str, Any]
    exit: int
    wall: float  # seconds, process start-up included
    rss_mb: float  # peak
    cpu: float  # user + system seconds


def run_bulkport(job: Path, state: Path, report: Path, *extra: str, quiet: bool = True) -> Run:
    """``bulkport run JOB`` in a child process; waits for it and reads its JSON report."""
    started = time.monotonic()
    output = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(state),
         "--report", str(report), "--no-progress", *extra], stdout=output, stderr=output)
    _, status, usage = os.wait4(proc.pid, 0)
    return Run(report=json.loads(report.read_text()), exit=os.waitstatus_to_exitcode(status),
               wall=time.monotonic() - started, rss_mb=usage.ru_maxrss / 1024,
               cpu=usage.ru_utime + usage.ru_stime)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a simulator; one holding a large catalog may take long to exit: then kill it."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
