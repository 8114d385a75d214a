"""Benchmark: migrate a simulated CKAN catalog into a simulated Opendatasoft domain.

Each simulator runs in its own process with a fixed latency added to every request; bulkport
runs in a third process, exactly as a user runs it. Printed: requests/s per portal against
the latency-bound ideal (connections ÷ latency) and the peak RSS of the bulkport process.

    python benchmarks/migrate_ckan_to_ods.py [--datasets 2000] [--files 2] [--latency 0.02]
    python benchmarks/migrate_ckan_to_ods.py --scale 2000,100000   # memory against size
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
    parser.add_argument("--scale", metavar="N,N…",
                        help="run once per catalog size (e.g. 2000,100000) and print the peak "
                             "RSS of each side by side: memory must not grow with the catalog")
    args = parser.parse_args()
    if not args.scale:
        measure(args, args.datasets)
        return
    sizes = [int(n) for n in args.scale.split(",")]
    results = [(n, measure(args, n)) for n in sizes]
    print(f"\n{'datasets':>10}{'seconds':>10}{'ds/s':>8}{'peak RSS':>11}")
    for n, (seconds, rss) in results:
        print(f"{n:>10,}{seconds:>10.1f}{n / seconds:>8.0f}{rss:>8.0f} MB")
    growth = results[-1][1][1] - results[0][1][1]
    print(f"peak RSS grew by {growth:+.0f} MB from {sizes[0]:,} to {sizes[-1]:,} datasets "
          f"({growth * 1024 / max(1, sizes[-1] - sizes[0]):.3f} kB per dataset)")


def measure(args: argparse.Namespace, datasets: int) -> tuple[float, float]:
    """Migrate ``datasets`` datasets; print the figures; return seconds and peak RSS (MB)."""
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        simulators = [start_portal(stack, kind, datasets=n, files=args.files,
                                   file_size=args.file_size, latency=args.latency)
                      for kind, n in (("ckan", datasets), ("ods", 0))]
        ckan = simulators[0].url
        job = pair_job(Path(tmp) / "bench.toml", "migrate", *simulators, args.connections,
                       f"dataset_workers = {args.connections * args.workers_per_connection}")
        before = {sim.kind: cpu_seconds(sim.pid) for sim in simulators}
        run = run_bulkport(job, Path(tmp) / "state", Path(tmp) / "report.json", quiet=False)
        sim_cpu = {sim.kind: cpu_seconds(sim.pid) - before[sim.kind] for sim in simulators}
        report = run.report

    seconds = report["seconds"]
    ideal = args.connections / args.latency
    print(f"\nmigrated {datasets} datasets × {args.files} files in {seconds:.1f}s "
          f"(wall {run.wall:.1f}s incl. start-up), exit {run.exit}")
    print(f"counts: {report['counts']}")
    print(f"{'portal':<28}{'requests':>10}{'req/s':>10}{'ideal':>10}{'ratio':>8}")
    for host, count in sorted(report["requests"]["per_host"].items()):
        rate = count / seconds
        name = "ckan " + host if host in ckan else "ods " + host
        print(f"{name:<28}{count:>10}{rate:>10.0f}{ideal:>10.0f}{rate / ideal:>8.0%}")
    print(f"datasets/s: {datasets / seconds:.0f}")
    print(f"peak RSS of bulkport: {run.rss_mb:.0f} MB; "
          f"CPU {run.cpu:.1f}s over {seconds:.1f}s; simulators' CPU: "
          + ", ".join(f"{kind} {cpu:.1f}s" for kind, cpu in sim_cpu.items())
          + f" (machine: {os.cpu_count()} cores)")
    return seconds, run.rss_mb


if __name__ == "__main__":
    main()
