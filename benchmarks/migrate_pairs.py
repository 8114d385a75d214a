"""Benchmark: the migration scenario for every pair of portals, side by side in one run.

For each pair a source simulator seeded with the catalog and an empty target simulator run
in their own processes, with a fixed latency added to every request; bulkport runs in a
third process, as a user runs it. Printed per pair: datasets/s against the latency-bound
ideal (the busiest portal's connections ÷ latency, divided by the requests a dataset needs
there), requests per portal and the peak RSS of bulkport.

    python benchmarks/migrate_pairs.py [--datasets 2000] [--files 2] [--latency 0.02]
                                       [--pairs ckan:ods,ods:ckan,...]
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from pathlib import Path

from harness import Simulator, cpu_seconds, pair_job, run_bulkport, start_portal

ALL_PAIRS = ("ckan:ckan", "ckan:portaljs", "ckan:ods", "ckan:datapress", "portaljs:ckan",
             "portaljs:ods", "ods:ckan", "ods:portaljs", "datapress:ckan")


def start(stack: ExitStack, kind: str, datasets: int, args: argparse.Namespace) -> Simulator:
    return start_portal(stack, kind, datasets=datasets, files=args.files,
                        file_size=args.file_size, latency=args.latency)


def run_pair(source_kind: str, target_kind: str, args: argparse.Namespace) -> dict:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        source = start(stack, source_kind, args.datasets, args)
        target = start(stack, target_kind, 0, args)
        job = pair_job(Path(tmp) / "bench.toml", "migrate", source, target, args.connections)
        before = [cpu_seconds(sim.pid) for sim in (source, target)]
        run = run_bulkport(job, Path(tmp) / "state", Path(tmp) / "report.json")
        source_cpu, target_cpu = (cpu_seconds(sim.pid) - cpu
                                  for sim, cpu in zip((source, target), before, strict=True))
        report = {**run.report, "exit": run.exit, "rss_mb": run.rss_mb, "cpu": run.cpu,
                  "source_cpu": source_cpu, "target_cpu": target_cpu,
                  "hosts": {source.netloc: f"source {source_kind}",
                            target.netloc: f"target {target_kind}"}}
        return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=2000)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--file-size", type=int, default=4096)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pairs", default=",".join(ALL_PAIRS))
    args = parser.parse_args()

    per_host_ideal = args.connections / args.latency
    print(f"{args.datasets:,} datasets × {args.files} files of {args.file_size:,} bytes, "
          f"{args.latency * 1000:.0f} ms latency, {args.connections} connections per portal")
    print(f"{'pair':<20}{'datasets/s':>11}{'ideal':>8}{'ratio':>7}{'secs':>7}{'CPU s':>7}"
          f"{'src':>5}{'tgt':>5}{'RSS MB':>7}  requests per portal")
    print(f"{'':<46}(CPU seconds: bulkport, source and target simulators)")
    for pair in args.pairs.split(","):
        source_kind, target_kind = pair.split(":")
        report = run_pair(source_kind, target_kind, args)
        seconds = report["seconds"] or 1e-9
        per_host = report["requests"]["per_host"]
        named = {report["hosts"].get(host, "presigned objects"): count
                 for host, count in sorted(per_host.items())}
        busiest = max(per_host.values()) / args.datasets if per_host else 1
        ideal = per_host_ideal / busiest
        rate = args.datasets / seconds
        hosts = ", ".join(f"{name} {count:,} ({count / seconds:,.0f}/s)"
                          for name, count in named.items())
        failed = "" if report["exit"] == 0 else f"  EXIT {report['exit']}"
        print(f"{pair.replace(':', ' → '):<20}{rate:>11.0f}{ideal:>8.0f}{rate / ideal:>7.0%}"
              f"{seconds:>7.1f}{report['cpu']:>7.1f}{report['source_cpu']:>5.1f}"
              f"{report['target_cpu']:>5.1f}{report['rss_mb']:>7.0f}  {hosts}{failed}")


if __name__ == "__main__":
    main()
