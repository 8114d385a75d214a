"""The official DataPress client's integration suite, run against bulkport's simulator.

No DataPress server can run here, so the suite DataPress wrote for its own client against a
real site (``tests/test_integration.py`` in the ``datapress`` package on PyPI) is the oracle:
every failure of it is a way the simulator differs from DataPress. The suite is taken from
the package at test time, never copied into this repository: from an installed
``datapress`` of that version, else from its wheel, downloaded with pip into a temporary
folder. The test skips only when PyPI cannot be reached (``BULKPORT_ORACLES=require``
turns that skip into a failure, for CI).

The wheel is unpacked rather than installed: it ships a top-level ``tests`` package that
would shadow this repository's ``tests`` folder in the virtual environment.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from datapress_suite_skips import SKIPS

from bulkport.testing import DataPressStore, ThreadedServer, create_datapress_app
from bulkport.testing.datapress.schema import build_dataset

pytestmark = pytest.mark.oracle

VERSION = "1.3.0"  # the suite below is counted for this release
SUITE = ("tests/test_integration.py", "tests/conftest.py")
# 13 tests in 1.3.0's suite; the S3 one needs cloud storage.
EXPECTED = {"passed": 12, "skipped": 1}
KEY = "oracle-editor-key-7f3a"
HERE = Path(__file__).parent
# What pip prints when it cannot reach the index (as opposed to a missing release).
_UNREACHABLE = re.compile(
    r"NewConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|Network is unreachable|"
    r"Name or service not known|Temporary failure in name resolution|nodename nor servname|"
    r"ProxyError|Connection refused|Connection reset|SSLError", re.IGNORECASE)


@dataclass
class Suite:
    folder: Path  # conftest.py and test_integration.py, side by side
    library: Path | None  # where ``import datapress`` is found, if not installed


def _unavailable(reason: str) -> None:
    if os.environ.get("BULKPORT_ORACLES") == "require":
        pytest.fail(f"oracle required but unavailable: {reason}")
    pytest.skip(reason)


def _installed(folder: Path) -> bool:
    """Copy the suite out of an installed ``datapress`` of :data:`VERSION`, if there is one."""
    try:
        dist = importlib.metadata.distribution("datapress")
    except importlib.metadata.PackageNotFoundError:
        return False
    if dist.version != VERSION:
        return False
    sources = [Path(str(dist.locate_file(name))) for name in SUITE]
    if not all(source.is_file() for source in sources):
        return False
    for source in sources:
        shutil.copy(source, folder / source.name)
    return True


def _downloaded(folder: Path, work: Path) -> Path:
    """Fetch the wheel from PyPI, unpack the client and copy the suite; return the client's
    folder."""
    wheels = work / "wheel"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"datapress=={VERSION}", "--no-deps",
         "--only-binary", ":all:", "--disable-pip-version-check", "--retries", "1",
         "--timeout", "20", "-d", str(wheels)],
        capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        why = next((line.strip() for line in output.splitlines() if _UNREACHABLE.search(line)),
                   None)
        if why is not None:
            _unavailable(f"PyPI unreachable, cannot fetch datapress=={VERSION}: {why[:200]}")
        pytest.fail(f"pip download datapress=={VERSION} failed:\n{output}")
    wheel = next(wheels.glob("datapress-*.whl"))
    library = work / "lib"
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.startswith("datapress/"):  # the client only: not its ``tests`` package
                archive.extract(name, library)
        for name in SUITE:
            (folder / Path(name).name).write_bytes(archive.read(name))
    return library


def official_suite(work: Path) -> Suite:
    folder = work / "suite"
    folder.mkdir()
    if _installed(folder):
        return Suite(folder, None)
    return Suite(folder, _downloaded(folder, work))


@dataclass
class Site:
    url: str
    store: DataPressStore
    dataset_id: str


@pytest.fixture
def site() -> Iterator[Site]:
    """A DataPress simulator holding "Test Dataset", editable by :data:`KEY` (a team member,
    not an admin: the suite needs no more than an editor)."""
    store = DataPressStore(seed=11)
    team = store.add_team("Oracle team")["id"]
    store.add_user("Oracle Editor", "editor@example.org", teams=[team], key=KEY)
    dataset_id = store.new_id()
    doc, issues = build_dataset(store, {"title": "Test Dataset", "team": team,
                                        "masthead": "simulator"}, None,
                                dataset_id=dataset_id, now="2025-01-01T00:00:00.000Z")
    assert not issues, issues
    store.datasets[dataset_id] = doc
    # The client's own part size: the simulator's default minimum is the same 5 MiB.
    with ThreadedServer(lambda: create_datapress_app(store)) as server:
        yield Site(server.url, store, dataset_id)
    store.close()


def _outcomes(report: Path) -> dict[str, tuple[str, str]]:
    """JUnit XML → test name → (outcome, message)."""
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "failed" if tag != "skipped" else "skipped"
                message = found.get("message", "")
                break
        outcomes[case.get("name", "?")] = (outcome, message)
    return outcomes


def _environment(site: Site, suite: Suite) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("TEST_DATAPRESS_", "DATAPRESS_", "SPACES_TEST_", "PYTEST_"))}
    paths = [str(HERE), *([str(suite.library)] if suite.library else []),
             *filter(None, [env.get("PYTHONPATH")])]
    no_proxy = ",".join(filter(None, ["127.0.0.1,localhost", env.get("NO_PROXY")]))
    env.update(TEST_DATAPRESS_API_KEY=KEY, TEST_DATAPRESS_INSTANCE=site.url,
               TEST_DATAPRESS_DATASET_ID=site.dataset_id, PYTHONPATH=os.pathsep.join(paths),
               NO_PROXY=no_proxy, no_proxy=no_proxy)
    return env


def test_the_official_datapress_suite_passes_against_the_simulator(
        site: Site, tmp_path: Path) -> None:
    suite = official_suite(tmp_path)
    ini = tmp_path / "pytest.ini"
    ini.write_text("[pytest]\n")  # none of bulkport's options: the suite runs as its authors do
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_integration.py", "-c", str(ini),
         "--rootdir", str(suite.folder), "-p", "datapress_suite_skips", "-p", "no:cacheprovider",
         "-p", "no:asyncio", "-q", "-rs", f"--junitxml={report}"],
        cwd=suite.folder, env=_environment(site, suite), capture_output=True, text=True,
        timeout=300, check=False)
    output = done.stdout + done.stderr
    assert report.exists(), output
    outcomes = _outcomes(report)
    counts: dict[str, Any] = {}
    for outcome, _ in outcomes.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    assert counts == EXPECTED, output
    assert done.returncode == 0, output
    skipped = {name: message for name, (outcome, message) in outcomes.items()
               if outcome == "skipped"}
    assert skipped == SKIPS, output
    # The suite cleans up after itself: its files gone, bodies and upload sessions too.
    dataset = site.store.datasets[site.dataset_id]
    assert dataset["title"] == "Test Dataset" and dataset["resources"] == {}
    assert not site.store.uploads and len(site.store.blobs) == 0
