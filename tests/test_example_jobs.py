"""Every job file in ``jobs/`` runs as shipped, followed the way its header tells a user to.

A header says how to try the job on simulators, in lines this test reads as a user would:

    #   bulkport simulate ckan --port 5000 --datasets 40 &
    #   then in this file: [source] url = "http://127.0.0.1:5000", [target] url = "…"
    #   CKAN_API_KEY=simulator-key ODS_API_KEY=simulator-key bulkport run jobs/NAME.toml

Each ``bulkport simulate`` line is started as a subprocess (on a free port instead of the
one written: the job's URLs follow), the ``in this file`` values are put in the job, the
variables are set, and the job runs with ``--dry-run`` and then for real — both must
succeed — from a copy of the file in ``jobs/`` of an empty working directory.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bulkport.cli import main

JOBS = Path(__file__).parents[1] / "jobs"
SIMULATE = re.compile(r"^#\s+(bulkport simulate .*?)\s*&?\s*$", re.M)
IN_FILE = re.compile(r"^#\s+then in this file:\s*(.*)$", re.M)
SETTING = re.compile(r'\[(?P<table>[\w.]+)\]\s+(?P<key>\w+)\s*=\s*"(?P<value>[^"]*)"')
RUN = re.compile(r"^#\s+((?:\w+=\S+\s+)*)bulkport run jobs/(?P<file>\S+)(?P<args>[^#\n]*)", re.M)
STARTED = re.compile(r"simulator at (http://127\.0\.0\.1:(\d+))")


def _header(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.startswith("#"))


def _set(text: str, table: str, key: str, value: str) -> str:
    """``text`` with ``key`` of ``[table]`` set to ``value``, as a user edits the line."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == f"[{table}]")
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("["):
            break
        if re.match(rf"\s*{key}\s*=", lines[i]):
            lines[i] = re.sub(r'=\s*"[^"]*"', f'= "{value}"', lines[i], count=1)
            return "".join(lines)
    raise AssertionError(f"no {key} in [{table}]")


class Simulators:
    """The simulators a header starts, each its own ``bulkport simulate`` process."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[str]] = []
        self.ports: dict[str, str] = {}  # the port a header names → the one really used

    def start(self, command: str) -> None:
        args = shlex.split(command)[1:]
        asked = args[args.index("--port") + 1]
        args[args.index("--port") + 1] = "0"
        process = subprocess.Popen([sys.executable, "-m", "bulkport", *args], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.processes.append(process)
        assert process.stdout is not None
        first = process.stdout.readline()  # the start line names the address
        found = STARTED.search(first)
        assert found, f"{command}: {first}{process.stdout.read() if process.poll() else ''}"
        self.ports[asked] = found[2]

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=30)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def simulators() -> Iterator[Simulators]:
    made = Simulators()
    yield made
    made.stop()


def _follow(name: str, folder: Path, simulators: Simulators,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    """Do what the header of ``jobs/name`` says; return the job's path and the arguments
    of its real run."""
    text = (JOBS / name).read_text(encoding="utf-8")
    header = _header(text)
    commands = SIMULATE.findall(header)
    assert commands, f"jobs/{name}: its header names no simulator to try it on"
    for command in commands:
        simulators.start(command)
    for line in IN_FILE.findall(header):
        for found in SETTING.finditer(line):
            text = _set(text, found["table"], found["key"], found["value"])
    for asked, port in simulators.ports.items():
        text = text.replace(f"127.0.0.1:{asked}", f"127.0.0.1:{port}")
    # The run line that sets the variables (the others show the same command without them).
    run = next((m for m in RUN.finditer(header) if m["file"] == name and m[1]), None)
    assert run is not None, f"jobs/{name}: its header shows no `VAR=… bulkport run` line"
    for assignment in run[1].split():
        variable, _, value = assignment.partition("=")
        monkeypatch.setenv(variable, value)
    (folder / "jobs").mkdir()
    job = folder / "jobs" / name
    job.write_text(text, encoding="utf-8")
    monkeypatch.chdir(folder)
    return Path("jobs") / name, shlex.split(run["args"])


@pytest.mark.parametrize("name", sorted(p.name for p in JOBS.glob("*.toml")))
def test_each_example_job_runs_against_the_simulators_its_header_names(
        name: str, tmp_path: Path, simulators: Simulators, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    job, args = _follow(name, tmp_path, simulators, monkeypatch)
    real = [a for a in args if a != "--dry-run"]
    # On a failure, show both streams: the summary on stdout, the diagnostics on stderr.
    assert main(["run", str(job), "--no-progress", "--dry-run", "--report", "dry.json"]) == 0, (
        capsys.readouterr())
    assert main(["run", str(job), "--no-progress", "--report", "real.json", *real]) == 0, (
        capsys.readouterr())
    counts = json.loads(Path("real.json").read_text())["counts"]
    assert not counts.get("failed")
    assert any(counts.get(k) for k in ("datasets_created", "revoked")), counts
    if f"bulkport verify jobs/{name}" in _header((JOBS / name).read_text(encoding="utf-8")):
        assert main(["verify", str(job), "--quiet"]) == 0, capsys.readouterr()
