"""Benchmark: a nightly mirror (CKAN → CKAN by default), first run against one after 1 % changed.

Both simulators run in their own processes with a fixed latency added to every request, and
bulkport runs in a third one, as a user runs it. The first run mirrors the whole catalog;
then 1 % of the source's datasets get a new title (through the source's API), and the
second run is measured against the first: requests (both portals) and time. The goal is a
second run costing at most 3 % of the first's requests.

    python benchmarks/mirror.py [--datasets 10000] [--change 0.01] [--latency 0.02]
                                [--pair ckan:ckan|ods:ckan|datapress:ckan|ckan:ods|...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import KEY, pair_job, run_bulkport, start_portal

GOAL = 0.03
SOURCES = ("ckan", "portaljs", "ods", "datapress")
ON_DELETE = {"datapress": "private"}  # DataPress's API cannot delete a dataset


def call(method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
    """One API call, the way a script editing the source would make it."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={
        **headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.load(reply)


class CkanEditor:
    """Lists and retitles datasets through the Action API (CKAN, PortalJS Cloud)."""

    def __init__(self, url: str) -> None:
        self.api, self.headers = f"{url}/api/3/action", {"Authorization": KEY}

    def ids(self) -> list[str]:
        found: list[str] = []
        while True:
            page = call("POST", f"{self.api}/package_search", self.headers, {
                "rows": 1000, "start": len(found), "sort": "id asc", "fl": "id",
                "include_private": True})["result"]
            found.extend(row["id"] for row in page["results"])
            if not page["results"] or len(found) >= page["count"]:
                return found

    def retitle(self, dataset_id: str, title: str) -> None:
        call("POST", f"{self.api}/package_patch", self.headers, {"id": dataset_id, "title": title})


class OdsEditor:
    """The Automation API: a template's metadata is replaced whole, so read it first."""

    def __init__(self, url: str) -> None:
        self.api = f"{url}/api/automation/v1.0"
        self.headers = {"Authorization": f"apikey {KEY}"}

    def ids(self) -> list[str]:
        found: list[str] = []
        while True:
            page = call("GET", f"{self.api}/datasets/?limit=1000&offset={len(found)}",
                        self.headers)
            found.extend(d["uid"] for d in page["results"])
            if not page["results"] or not page.get("next"):
                return found

    def retitle(self, uid: str, title: str) -> None:
        path = f"{self.api}/datasets/{uid}/metadata/default/"
        metadata = call("GET", path, self.headers)
        call("PUT", path, self.headers, {**metadata, "title": {"value": title}})


class DataPressEditor:
    """JSON Patch, moving ``updatedAt`` as an editor's change does (a silent one would not)."""

    def __init__(self, url: str) -> None:
        self.api, self.headers = f"{url}/api/v3", {"Authorization": KEY}

    def ids(self) -> list[str]:
        return [d["id"] for d in call("GET", f"{self.api}/datasets/export.json", self.headers)]

    def retitle(self, dataset_id: str, title: str) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        call("PATCH", f"{self.api}/dataset/{dataset_id}", self.headers, [
            {"op": "replace", "path": "/title", "value": title},
            {"op": "replace", "path": "/updatedAt", "value": now}])


EDITORS = {"ckan": CkanEditor, "portaljs": CkanEditor, "ods": OdsEditor,
           "datapress": DataPressEditor}


def change_source(kind: str, url: str, fraction: float) -> int:
    """Give a new title to ``fraction`` of the source's datasets, spread over the catalog."""
    editor = EDITORS[kind](url)
    ids = sorted(editor.ids())
    count = max(1, round(len(ids) * fraction))
    chosen = ids[::max(1, len(ids) // count)][:count]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: editor.retitle(i, f"Edited for the benchmark {i[:8]}"), chosen))
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=10_000)
    parser.add_argument("--change", type=float, default=0.01, help="fraction changed")
    parser.add_argument("--files", type=int, default=1, help="hosted files per dataset")
    parser.add_argument("--file-size", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pair", default="ckan:ckan", help="source:target (default %(default)s)")
    args = parser.parse_args()

    source_kind, target_kind = args.pair.split(":")
    if source_kind not in SOURCES or target_kind not in SOURCES:
        raise SystemExit(f"--pair: each side is one of {', '.join(SOURCES)}")
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sims = [start_portal(stack, kind, datasets=datasets, files=args.files,
                             file_size=args.file_size, latency=args.latency, seed=seed)
                for kind, datasets, seed in ((source_kind, args.datasets, 0), (target_kind, 0, 1))]
        source = sims[0].url
        job = pair_job(Path(tmp) / "mirror.toml", "mirror", *sims, args.connections,
                       f'on_delete = "{ON_DELETE.get(target_kind, "delete")}"')
        state = Path(tmp) / "state"
        runs = [run_bulkport(job, state, Path(tmp) / "first.json", quiet=False)]
        changed = change_source(source_kind, source, args.change)
        runs.append(run_bulkport(job, state, Path(tmp) / "second.json", quiet=False))
    first, second = (run.report for run in runs)
    first_wall, second_wall = (run.wall for run in runs)
    code1, code2 = (run.exit for run in runs)

    rows = [("requests", first["requests"]["total"], second["requests"]["total"]),
            ("seconds (report)", first["seconds"], second["seconds"]),
            ("seconds (wall, incl. start-up)", first_wall, second_wall)]
    print(f"\nmirror {source_kind} → {target_kind} of {args.datasets:,} datasets × {args.files} "
          f"file(s), {args.latency * 1000:.0f} ms latency, {args.connections} connections; "
          f"{changed:,} datasets changed before the second run (exit codes {code1}, {code2})")
    print(f"{'':<32}{'first run':>12}{'second run':>12}{'second/first':>14}")
    for label, a, b in rows:
        number = (lambda v: f"{v:,.0f}") if label == "requests" else (lambda v: f"{v:,.2f}")
        print(f"{label:<32}{number(a):>12}{number(b):>12}{b / a if a else 0:>14.2%}")
    portal = {sims[0].netloc: "source", sims[1].netloc: "target"}
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
