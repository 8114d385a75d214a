"""Run one benchmark on two bulkport trees, turn about, and print the figures side by side.

The machine is shared and noisy: only ratios measured in one sitting mean anything. Each
tree runs the benchmark script with its own virtualenv (``TREE/.venv/bin/python``), from its
own directory, alternately, ``--rounds`` times::

    .venv/bin/python benchmarks/ab.py [--rounds N] [--startup] OTHER_TREE [SCRIPT [ARGS...]]

Also ``--startup``: the wall time of ``bulkport run --help`` (the CLI's import cost).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _python(tree: Path) -> str:
    venv = tree / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _startup(tree: Path, runs: int = 15) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([_python(tree), "-m", "bulkport", "run", "--help"], cwd=tree,
                       check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout (e.g. the one before)")
    parser.add_argument("script", nargs="?", help="a benchmark, relative to either tree")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--startup", action="store_true", help="also time the CLI start-up")
    options = parser.parse_args()
    trees = {"other": options.other.resolve(), "this": HERE}
    if options.startup:
        for name, tree in trees.items():
            print(f"{name:>5}: bulkport run --help in {_startup(tree) * 1000:.0f} ms (median "
                  f"of 15) [{tree}]")
    for round_ in range(1, options.rounds + 1):
        for name, tree in trees.items():
            if not options.script:
                continue
            print(f"===== round {round_}: {name} [{tree}]", flush=True)
            subprocess.run([_python(tree), options.script, *options.args], cwd=tree, check=True)


if __name__ == "__main__":
    main()
