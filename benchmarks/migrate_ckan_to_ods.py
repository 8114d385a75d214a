"""Benchmark: migrate a simulated CKAN catalog into a simulated Opendatasoft domain.

Each simulator runs in its own process with a fixed latency added to every request; bulkport
runs in a third process, exactly as a user runs it. Printed: requests/s per portal against
the latency-bound ideal (connections ÷ latency) and the peak RSS of the bulkport process.

    python benchmarks/migrate_ckan_to_ods.py [--datasets 2000] [--files 2] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

CKAN_KEY = "bench-ckan-key-0001"
ODS_KEY = "bench-ods-key-0001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SIMULATORS: dict[str, int] = {}  # kind → pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_simulator(stack: ExitStack, kind: str, args: list[str], probe: str) -> str:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulkport", "simulate", kind, "--port", str(port), *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    stack.callback(proc.wait, 10)
    stack.callback(proc.terminate)
    SIMULATORS[kind] = proc.pid
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + probe, timeout=2).read()
            return url
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error still means it is up
                return url
            time.sleep(0.2)
    raise SystemExit(f"{kind} simulator did not start on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=2000)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--file-size", type=int, default=4096)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers-per-connection", type=int, default=4)
    args = parser.parse_args()

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        common = ["--latency", str(args.latency)]
        ckan = start_simulator(stack, "ckan", [
            *common, "--api-key", CKAN_KEY, "--datasets", str(args.datasets),
            "--resources", str(args.files), "--file-size", str(args.file_size)],
            "/api/3/action/status_show")
        ods = start_simulator(stack, "ods", [*common, "--api-key", ODS_KEY],
                              "/api/automation/v1.0/datasets/?limit=0")
        job = Path(tmp) / "bench.toml"
        job.write_text(f"""
kind = "migrate"
name = "bench"
[source]
type = "ckan"
url = "{ckan}"
api_key = "{CKAN_KEY}"
include_private = true
[target]
type = "ods"
url = "{ods}"
api_key = "{ODS_KEY}"
[options]
connections = {args.connections}
transfers = {args.connections}
dataset_workers = {args.connections * args.workers_per_connection}
status_poll = 0.05
""")
        report_path = Path(tmp) / "report.json"
        sim_cpu = {kind: cpu_seconds(pid) for kind, pid in SIMULATORS.items()}
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir", str(Path(tmp) / "state"),
             "--report", str(report_path), "--no-progress"],
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        sim_cpu = {kind: cpu_seconds(pid) - sim_cpu[kind] for kind, pid in SIMULATORS.items()}
        report = json.loads(report_path.read_text())

    seconds = report["seconds"]
    ideal = args.connections / args.latency
    print(f"\nmigrated {args.datasets} datasets × {args.files} files in {seconds:.1f}s "
          f"(wall {wall:.1f}s incl. start-up), exit {os.waitstatus_to_exitcode(status)}")
    print(f"counts: {report['counts']}")
    print(f"{'portal':<28}{'requests':>10}{'req/s':>10}{'ideal':>10}{'ratio':>8}")
    for host, count in sorted(report["requests"]["per_host"].items()):
        rate = count / seconds
        name = "ckan " + host if host in ckan else "ods " + host
        print(f"{name:<28}{count:>10}{rate:>10.0f}{ideal:>10.0f}{rate / ideal:>8.0%}")
    print(f"datasets/s: {args.datasets / seconds:.0f}")
    print(f"peak RSS of bulkport: {usage.ru_maxrss / 1024:.0f} MB; "
          f"CPU {usage.ru_utime + usage.ru_stime:.1f}s over {seconds:.1f}s; simulators' CPU: "
          + ", ".join(f"{kind} {cpu:.1f}s" for kind, cpu in sim_cpu.items())
          + f" (machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
