"""Benchmark: a nightly mirror CKAN → CKAN, first run against a run after 1 % changed.

Both simulators run in their own processes with a fixed latency added to every request, and
bulkport runs in a third one, as a user runs it. The first run mirrors the whole catalog;
then 1 % of the source's datasets get a new title (through the source's API), and the
second run is measured against the first: requests (both portals) and time. The goal is a
second run costing at most 3 % of the first's requests.

    python benchmarks/mirror.py [--datasets 10000] [--change 0.01] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness import run_bulkport, start_simulator

SOURCE_KEY = "bench-mirror-source-key"
TARGET_KEY = "bench-mirror-target-key"
GOAL = 0.03


def call(url: str, key: str, action: str, body: dict[str, Any]) -> Any:
    """One Action API call (POST), the way a script editing the source would make it."""
    request = urllib.request.Request(
        f"{url}/api/3/action/{action}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)["result"]


def change_source(url: str, fraction: float) -> int:
    """Give a new title to ``fraction`` of the source's datasets, spread over the catalog."""
    first = call(url, SOURCE_KEY, "package_search", {"rows": 0, "include_private": True})
    total = int(first["count"])
    count = max(1, round(total * fraction))
    step = max(1, total // count)
    ids: list[str] = []
    for start in range(0, total, 1000):
        page = call(url, SOURCE_KEY, "package_search", {
            "rows": 1000, "start": start, "sort": "id asc", "fl": "id", "include_private": True})
        ids.extend(row["id"] for row in page["results"])
    chosen = ids[::step][:count]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pkg_id: call(url, SOURCE_KEY, "package_patch", {
            "id": pkg_id, "title": f"Edited for the benchmark {pkg_id[:8]}"}), chosen))
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--change", type=float, default=0.01, help="fraction changed")
    parser.add_argument("--files", type=int, default=1, help="hosted files per dataset")
    parser.add_argument("--file-size", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        common = ["--latency", str(args.latency)]
        source = start_simulator(stack, "ckan", [
            *common, "--api-key", SOURCE_KEY, "--datasets", str(args.datasets),
            "--resources", str(args.files), "--file-size", str(args.file_size)]).url
        target = start_simulator(stack, "ckan", [
            *common, "--api-key", TARGET_KEY, "--datasets", "0", "--seed", "1"]).url
        job = Path(tmp) / "mirror.toml"
        job.write_text(f"""
kind = "mirror"
name = "bench-mirror"
[source]
type = "ckan"
url = "{source}"
api_key = "{SOURCE_KEY}"
include_private = true
[target]
type = "ckan"
url = "{target}"
api_key = "{TARGET_KEY}"
[options]
connections = {args.connections}
transfers = {args.connections}
""")
        state = Path(tmp) / "state"
        runs = [run_bulkport(job, state, Path(tmp) / "first.json", quiet=False)]
        changed = change_source(source, args.change)
        runs.append(run_bulkport(job, state, Path(tmp) / "second.json", quiet=False))
    first, second = (run.report for run in runs)
    first_wall, second_wall = (run.wall for run in runs)
    code1, code2 = (run.exit for run in runs)

    rows = [("requests", first["requests"]["total"], second["requests"]["total"]),
            ("seconds (report)", first["seconds"], second["seconds"]),
            ("seconds (wall, incl. start-up)", first_wall, second_wall)]
    print(f"\nmirror of {args.datasets:,} datasets × {args.files} file(s), {args.latency * 1000:.0f} "
          f"ms latency, {args.connections} connections; {changed:,} datasets changed "
          f"before the second run (exit codes {code1}, {code2})")
    print(f"{'':<32}{'first run':>12}{'second run':>12}{'second/first':>14}")
    for label, a, b in rows:
        number = (lambda v: f"{v:,.0f}") if label == "requests" else (lambda v: f"{v:,.2f}")
        print(f"{label:<32}{number(a):>12}{number(b):>12}{b / a if a else 0:>14.2%}")
    portal = {source.split("//", 1)[1]: "source", target.split("//", 1)[1]: "target"}
    for name, report in (("first", first), ("second", second)):
        counts = {k: v for k, v in report["counts"].items() if k.startswith("datasets_")}
        hosts = ", ".join(f"{portal.get(h, h)} {n:,}"
                          for h, n in sorted(report["requests"]["per_host"].items()))
        print(f"{name} run: {counts}; requests per host: {hosts}")
    fraction = second["requests"]["total"] / first["requests"]["total"]
    verdict = "met" if fraction <= GOAL else "NOT met"
    print(f"goal: second run ≤ {GOAL:.0%} of the first run's requests — {verdict} "
          f"({fraction:.2%})")


if __name__ == "__main__":
    main()
