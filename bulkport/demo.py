"""``bulkport demo``: the main job on embedded simulated portals, no account needed.

A simulated CKAN (a few hundred datasets with their files) and a simulated Opendatasoft
domain start in this process; the migration runs exactly as ``bulkport run`` runs it; then
the target is checked against the source: every dataset once, published, every file byte
for byte.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from bulkport.config import load_job
from bulkport.portals.ods.mapping import EXTRACTORS, dataset_id_for
from bulkport.testing import (
    CkanStore,
    Faults,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

SOURCE_KEY = "demo-source-key-0001"
TARGET_KEY = "demo-target-key-0001"
JOB = resources.files("bulkport") / "demo.toml"


def check_target(ckan: CkanStore, ods: OdsStore) -> list[str]:
    """Differences between what the source holds and what the target received."""
    problems: list[str] = []
    for pkg in ckan.packages.values():
        if pkg.get("state") != "active":
            continue
        uid = ods.dataset_ids.get(dataset_id_for(pkg["name"]))
        if uid is None:
            problems.append(f"{pkg['name']}: missing on the target")
            continue
        target = ods.datasets[uid]
        hosted = [r for r in pkg["resources"] if r.get("url_type") == "upload"]
        tabular = [r for r in hosted if (r.get("format") or "").upper() in EXTRACTORS]
        if tabular and not target.is_published:
            problems.append(f"{pkg['name']}: not published")
        sent = sorted(ckan.blobs.get(r["id"]).sha256 for r in hosted)  # type: ignore[union-attr]
        received = sorted(
            ods.blobs.get(uid_).sha256  # type: ignore[union-attr]
            for uid_ in [*(r["datasource"]["file"]["uid"] for r in target.resources.values()),
                         *target.attachments]
        )
        if sent != received:
            problems.append(f"{pkg['name']}: files differ ({len(sent)} sent, {len(received)} held)")
    if len(ods.datasets) != len(ods.dataset_ids):
        problems.append("duplicate datasets on the target")
    return problems


def run_demo(datasets: int = 300, progress: bool = True) -> int:
    from bulkport.runner import run_job

    ckan_store, ods_store = CkanStore(), OdsStore(custom_templates={"bulkport": ["source_extras"]})
    seed_ckan(ckan_store, datasets=datasets, resources=2, file_size=8192, seed=7)
    latency = Faults(latency=0.005)  # a little network, so the concurrency shows
    with (
        ThreadedServer(lambda: create_ckan_app(ckan_store, api_keys={SOURCE_KEY: "admin"},
                                               faults=latency)) as ckan,
        ThreadedServer(lambda: create_ods_app(ods_store, api_keys={TARGET_KEY},
                                              faults=latency)) as ods,
        tempfile.TemporaryDirectory(prefix="bulkport-demo-") as tmp,
    ):
        state_dir = Path.cwd() / ".bulkport" / "demo"
        shutil.rmtree(state_dir, ignore_errors=True)  # the demo always starts afresh
        print(f"simulated CKAN at {ckan.url} with {datasets} datasets; "
              f"simulated Opendatasoft at {ods.url}", file=sys.stderr)
        os.environ.update(DEMO_SOURCE_URL=ckan.url, DEMO_SOURCE_KEY=SOURCE_KEY,
                          DEMO_TARGET_URL=ods.url, DEMO_TARGET_KEY=TARGET_KEY)
        job_path = Path(tmp) / "demo.toml"
        job_path.write_text(JOB.read_text(encoding="utf-8"))
        result = run_job(load_job(job_path), state_dir=state_dir,
                         progress=progress and sys.stderr.isatty())
        print(result.text())
        code = result.exit_code
        problems = check_target(ckan_store, ods_store)
    files = sum(len(d.resources) + len(d.attachments) for d in ods_store.datasets.values())
    if problems:
        print(f"target check: {len(problems)} problem(s)")
        for line in problems[:10]:
            print(f"  {line}")
        return code or 1
    print(f"target check: all {len(ods_store.datasets)} datasets present once and published "
          f"where they have data; {files} files byte-identical to the source")
    return code
