"""A source catalog whose records come in threes under one name, for the name-clash tests.

A DataPress dataset takes its name from ``custom.name``, which nothing keeps unique:
"budget", "Budget!" and " BUDGET " are three datasets, and each becomes the CKAN name (and
the Opendatasoft ``dataset_id``) ``budget``. One keeps it; the others take their deterministic
variant, in the same run.
"""

from __future__ import annotations

import os
from pathlib import Path

from bulkport.cli import main
from bulkport.testing import DataPressStore, seed_datapress

SOURCE_KEY = "clash-source-key-3f90"
GROUPS = ("budget", "parks")  # the clashing names, one group of three each


def spell(name: str, n: int) -> str:
    """The n-th (0–2) of three spellings that are one name once made valid."""
    return (name, f"{name.title()}!", f" {name.upper()} ")[n]


def twin_source(seed: int = 41) -> tuple[DataPressStore, dict[str, str]]:
    """A DataPress site with ``len(GROUPS) * 3`` datasets (one resource each) and
    the key ``SOURCE_KEY``; returns it and, per dataset id, the name its records clash on."""
    store = DataPressStore(seed=seed)
    ids = seed_datapress(store, datasets=len(GROUPS) * 3, resources=1,
                         file_size=300, seed=seed)
    clash: dict[str, str] = {}
    for n, dataset_id in enumerate(ids):
        group = GROUPS[n // 3]
        store.datasets[dataset_id]["custom"]["name"] = spell(group, n % 3)
        clash[dataset_id] = group
    store.add_user("Source Admin", "source@example.org", admin=True, key=SOURCE_KEY)
    return store, clash


def write_job(folder: Path, source_url: str, target: str, *, options: str = "") -> Path:
    """A migrate job from the twin source into ``target`` (its ``[target]`` lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "clash.toml"
    job.write_text(f"""
kind = "migrate"
name = "clash"
[source]
type = "datapress"
url = "{source_url}"
api_key = "${{CLASH_SOURCE_KEY}}"
[target]
{target}
[options]
retries = 2
status_poll = 0.01
{options}
""")
    os.environ["CLASH_SOURCE_KEY"] = SOURCE_KEY
    return job


def run(job: Path, state: Path, *args: str) -> int:
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])
