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
    stack.callback(proc.wait, 10)
    stack.callback(proc.terminate)
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
