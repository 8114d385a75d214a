"""The command line's conventions: results on stdout, diagnostics on stderr, ``--json``,
global flags after the command, every note counted, and shell completion that works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkport.cli import main
from bulkport.report import NOTES_SHOWN, Report
from bulkport.testing import (
    CkanStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

KEY = "conventions-key-0001"
BIN = Path(sys.executable).parent


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Path]:
    source = CkanStore(seed=9)
    seed_ckan(source, datasets=8, resources=1, file_size=300, seed=9)
    with (ThreadedServer(lambda: create_ckan_app(source, api_keys={KEY: "admin"})) as ckan,
          ThreadedServer(lambda: create_ods_app(OdsStore(), api_keys={KEY})) as ods):
        path = tmp_path / "job.toml"
        path.write_text(f'name = "conventions"\n[source]\ntype = "ckan"\nurl = "{ckan.url}"\n'
                        f'api_key = "{KEY}"\n[target]\ntype = "ods"\nurl = "{ods.url}"\n'
                        f'api_key = "{KEY}"\n[options]\nstatus_poll = 0.01\n')
        yield path


def test_the_summary_is_on_stdout_and_diagnostics_on_stderr(job: Path, tmp_path: Path,
                                                              capsys: Any) -> None:
    assert main(["run", str(job), "--state-dir", str(tmp_path / "s"), "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("migrate conventions: OK in ") and "report: " in out
    assert "files transferred" in out and "bytes transferred" in out
    assert err == ""
    assert main(["run", str(tmp_path / "missing.toml")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1


def test_json_prints_one_object_and_global_flags_come_after_the_command(
        job: Path, tmp_path: Path, capsys: Any) -> None:
    state = str(tmp_path / "s")
    assert main(["run", str(job), "--state-dir", state, "--dry-run", "--json",
                 "--log-level", "error"]) == 0
    out, _ = capsys.readouterr()
    brief = json.loads(out)
    assert brief["ok"] and brief["dry_run"] and brief["exit_code"] == 0
    assert brief["counts"]["would_create"] > 0 and Path(brief["report"]).is_file()
    saved = json.loads(Path(brief["report"]).read_text())
    assert brief["counts"] == saved["counts"]
    assert main(["--json", "run", str(tmp_path / "missing.toml")]) == 2
    assert json.loads(capsys.readouterr().out)["ok"] is False
    assert main(["history", str(job), "--state-dir", state, "-v"]) == 0
    assert "dry" in capsys.readouterr().out
    assert main(["history", str(job), "--state-dir", state, "--json"]) == 0
    [run] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert run["id"] == 1 and run["dry_run"] and run["counts"] == brief["counts"]
    assert main(["run", str(job), "--state-dir", state, "--no-progress", "--quiet"]) == 0
    assert main(["show", str(job), "--json", "--state-dir", state, "--entity", "dataset"]) == 0
    header, *actions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert header["id"] == 2 and not header["dry_run"]
    assert len(actions) == brief["counts"]["would_create"]
    assert {a["action"] for a in actions} == {"created"} and all(a["target_url"] for a in actions)
    redirects = str(tmp_path / "r.csv")
    assert main(["export", str(job), "--state-dir", state, "--redirects", redirects,
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["redirects"] > len(actions)


def test_every_note_is_counted_with_how_many_more_the_report_has() -> None:
    report = Report("j", "migrate")
    for n in range(NOTES_SHOWN + 3):
        report.note(f"licence 'l{n}' not mapped")
    lines = report.summary().splitlines()
    assert sum(line.startswith("  note (") for line in lines) == NOTES_SHOWN
    assert lines[-1] == "  … 3 more notes in the report"


def _complete(line: str, env: dict[str, str]) -> list[str]:
    """What bash completes ``line`` to, with ``bulkport completion bash`` sourced."""
    words = line.split(" ")
    script = (f'source <(bulkport completion bash)\n'
              f'COMP_LINE="{line}"; COMP_POINT=${{#COMP_LINE}}\n'
              f'COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n'
              f'$(complete -p bulkport | sed -E "s/.* -F ([^ ]+) .*/\\1/") bulkport '
              f'"{words[-1]}" "{words[-2]}"\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    return [word.strip() for word in done.stdout.splitlines() if word.strip()]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
def test_bash_completion_completes_commands_and_flags() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    assert _complete("bulkport ru", env) == ["run"]
    assert "--dry-run" in _complete("bulkport run --dr", env)
    assert _complete("bulkport completion f", env) == ["fish"]
    assert _complete("bulkport history --state", env) == ["--state-dir"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_get_their_own_script(shell: str, capsys: Any) -> None:
    assert main(["completion", shell]) == 0
    assert "bulkport" in capsys.readouterr().out
