"""Benchmark: migrate a simulated CKAN catalog into a simulated Opendatasoft domain.

Each simulator runs in its own process with a fixed latency added to every request; bulkport
runs in a third process, exactly as a user runs it. Printed: requests/s per portal against
the latency-bound ideal (connections ÷ latency) and the peak RSS of the bulkport process.

    python benchmarks/migrate_ckan_to_ods.py [--datasets 2000] [--files 2] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from harness import cpu_seconds, pair_job, run_bulkport, start_portal


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
        simulators = [start_portal(stack, kind, datasets=datasets, files=args.files,
                                   file_size=args.file_size, latency=args.latency)
                      for kind, datasets in (("ckan", args.datasets), ("ods", 0))]
        ckan = simulators[0].url
        job = pair_job(Path(tmp) / "bench.toml", "migrate", *simulators, args.connections,
                       f"dataset_workers = {args.connections * args.workers_per_connection}")
        before = {sim.kind: cpu_seconds(sim.pid) for sim in simulators}
        run = run_bulkport(job, Path(tmp) / "state", Path(tmp) / "report.json", quiet=False)
        sim_cpu = {sim.kind: cpu_seconds(sim.pid) - before[sim.kind] for sim in simulators}
        report = run.report

    seconds = report["seconds"]
    ideal = args.connections / args.latency
    print(f"\nmigrated {args.datasets} datasets × {args.files} files in {seconds:.1f}s "
          f"(wall {run.wall:.1f}s incl. start-up), exit {run.exit}")
    print(f"counts: {report['counts']}")
    print(f"{'portal':<28}{'requests':>10}{'req/s':>10}{'ideal':>10}{'ratio':>8}")
    for host, count in sorted(report["requests"]["per_host"].items()):
        rate = count / seconds
        name = "ckan " + host if host in ckan else "ods " + host
        print(f"{name:<28}{count:>10}{rate:>10.0f}{ideal:>10.0f}{rate / ideal:>8.0%}")
    print(f"datasets/s: {args.datasets / seconds:.0f}")
    print(f"peak RSS of bulkport: {run.rss_mb:.0f} MB; "
          f"CPU {run.cpu:.1f}s over {seconds:.1f}s; simulators' CPU: "
          + ", ".join(f"{kind} {cpu:.1f}s" for kind, cpu in sim_cpu.items())
          + f" (machine: {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
