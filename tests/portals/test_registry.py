"""The portal registry: a portal is one package plus one registry line, and nothing else.

A throw-away portal type is declared here, in the test alone (settings, a tiny in-memory
source and target), registered, and a migration runs with it exactly as ``bulkport run``
runs one.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.streams.memory import MemoryObjectSendStream

import bulkport
from bulkport.checkpoint import Journal
from bulkport.cli import main
from bulkport.config import load_job
from bulkport.errors import ConfigError, MappingError
from bulkport.http import HttpClient, StreamResponse
from bulkport.model import Dataset, Resource
from bulkport.portals import registry
from bulkport.portals.base import QUIET, CheckSteps, Limit, Portal, Role, Written
from bulkport.report import Report
from bulkport.runner import run_job
from bulkport.settings import Options, SourceSettings, TargetSettings, setting
from bulkport.transfer import FileTransfer

PACKAGE = Path(bulkport.__file__).parent
SHELVES: dict[str, dict[str, dict[str, Any]]] = {}  # the in-memory "portals", by URL


@dataclass(frozen=True, kw_only=True)
class ShelfSource(SourceSettings):
    prefix: str = setting("", "only the records whose name starts with this")


@dataclass(frozen=True, kw_only=True)
class ShelfTarget(TargetSettings):
    tag: str = setting(doc="a keyword added to every copy")


class ShelfReader:
    def __init__(self, settings: ShelfSource, client: HttpClient, options: Options) -> None:
        self.settings = settings

    def describe(self) -> str:
        return f"shelf {self.settings.url}"

    async def check(self, steps: CheckSteps = QUIET) -> None:
        pass

    async def produce(self, send: MemoryObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Any = None, on_page_error: Any = None) -> int:
        shelf = SHELVES[self.settings.url]
        async with send:
            for record in shelf.values():
                if record["name"].startswith(self.settings.prefix):
                    await send.send(record)
        return len(shelf)

    def page_url(self, ds: Dataset) -> str:
        return f"{self.settings.url}/{ds.name}"

    def file_url(self, ds: Dataset, resource: Resource) -> str:
        return resource.url

    def to_pivot(self, raw: Any) -> Dataset:
        if not raw.get("title"):
            raise MappingError(f"record {raw['name']}: no title")
        return Dataset.from_fields(raw["name"], raw["name"], {"title": raw["title"]},
                                   private=False, resources=[], extras={})

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        raise AssertionError("the shelf holds no files")


class ShelfWriter:
    def __init__(self, settings: ShelfTarget, client: HttpClient, options: Options,
                 journal: Journal, report: Report) -> None:
        self.settings = settings
        self.shelf = SHELVES.setdefault(settings.url, {})

    def describe(self) -> str:
        return f"shelf {self.settings.url}"

    async def check(self, steps: CheckSteps = QUIET) -> None:
        pass

    async def plan(self, ds: Dataset) -> str:
        return "update" if ds.name in self.shelf else "create"

    async def upsert(self, ds: Dataset, transfer: FileTransfer) -> Written:
        outcome = "updated" if ds.name in self.shelf else "created"
        self.shelf[ds.name] = {"name": ds.name, "title": ds.title, "tags": [self.settings.tag]}
        return Written(outcome, ds.name, f"{self.settings.url}/{ds.name}")


SHELF = Portal(name="shelf", title="Shelf", source_settings=ShelfSource,
               target_settings=ShelfTarget, source=ShelfReader, target=ShelfWriter,
               limits={Limit.DELETE: "a shelf keeps everything"})


@pytest.fixture
def shelf() -> Iterator[Portal[Any, Any]]:
    SHELVES.clear()
    with registry.registered(SHELF) as portal:
        yield portal


def job_file(tmp_path: Path, source: str = "", target: str = 'tag = "copied"') -> Path:
    path = tmp_path / "shelf.toml"
    path.write_text(textwrap.dedent(f"""\
        kind = "migrate"
        [source]
        type = "shelf"
        url = "http://shelf-a.invalid"
        {source}
        [target]
        type = "shelf"
        url = "http://shelf-b.invalid"
        {target}
        """))
    return path


def test_a_portal_declared_in_a_test_migrates(shelf: Portal[Any, Any], tmp_path: Path) -> None:
    SHELVES["http://shelf-a.invalid"] = {
        f"r{n}": {"name": f"r{n}", "title": f"Record {n}" if n != 3 else ""} for n in range(6)}
    report_path = tmp_path / "report.json"
    code = run_job(load_job(job_file(tmp_path, source='prefix = "r"')), state_dir=tmp_path / "state",
                   report_path=report_path).exit_code
    copies = SHELVES["http://shelf-b.invalid"]
    assert sorted(copies) == ["r0", "r1", "r2", "r4", "r5"]  # r3 cannot be mapped: reported
    assert copies["r1"] == {"name": "r1", "title": "Record 1", "tags": ["copied"]}
    assert code == 1 and "r3: no title" in report_path.read_text()
    assert shelf.roles == {Role.SOURCE, Role.TARGET}


def test_a_portal_declared_in_a_test_is_checked(shelf: Portal[Any, Any], tmp_path: Path,
                                                capsys: Any) -> None:
    SHELVES["http://shelf-a.invalid"] = {}
    assert main(["check", str(job_file(tmp_path, source='prefix = "r"'))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.startswith("ok ") for line in lines), lines


def test_its_settings_are_typed_and_checked(shelf: Portal[Any, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[source\] unknown key 'prefx' \(did you mean "
                                          r"'prefix'\?\)"):
        load_job(job_file(tmp_path, source='prefx = "r"'))
    with pytest.raises(ConfigError, match=r"\[target\] tag must be str, got 3"):
        load_job(job_file(tmp_path, target="tag = 3"))
    with pytest.raises(ConfigError, match=r"\[target\] tag is required"):
        load_job(job_file(tmp_path, target=""))


def test_roles_it_lacks_are_refused_up_front(shelf: Portal[Any, Any], tmp_path: Path) -> None:
    path = job_file(tmp_path)
    path.write_text(path.read_text().replace('kind = "migrate"', 'kind = "mirror"'))
    with pytest.raises(ConfigError, match=r"\[source\] type 'shelf' cannot be a mirror source "
                                          r"for a mirror job \(supported: ckan, portaljs"):
        load_job(path)
    assert "shelf" in registry.names(Role.SOURCE)
    assert "shelf" not in registry.names(Role.MIRROR_SOURCE)


def test_an_unknown_type_lists_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[source\] type must be one of ckan, portaljs, ods, "
                                          r"datapress, got 'shelf'"):
        load_job(job_file(tmp_path))


def _string_literals(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant of a module but its docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings):
            yield node.lineno, node.value


def test_no_module_outside_a_portal_package_names_a_portal_type() -> None:
    names = registry.names()
    word = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    allowed = {PACKAGE / "portals" / "registry.py"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in ("portals", "testing") and len(parts) > 2 and parts[1] in names:
            continue  # bulkport/portals/<type>/ and bulkport/testing/<type>/
        if path in allowed:
            continue
        found += [f"{path.relative_to(PACKAGE)}:{line}: {value[:60]!r}"
                  for line, value in _string_literals(path) if word.search(value)]
    assert found == []


def test_running_a_job_loads_no_simulator(tmp_path: Path) -> None:
    """``bulkport run`` builds its parser and runs a job without ``bulkport.testing``."""
    job = tmp_path / "job.toml"
    job.write_text(textwrap.dedent(f"""\
        [source]
        type = "{registry.names(Role.SOURCE)[0]}"
        url = "http://127.0.0.1:9"
        [target]
        type = "{registry.names(Role.TARGET)[0]}"
        url = "http://127.0.0.1:9"
        [options]
        retries = 1
        """))
    code = textwrap.dedent(f"""\
        import sys
        from bulkport.cli import main
        try:
            main(["run", {str(job)!r}, "--state-dir", {str(tmp_path / "state")!r}])
        except SystemExit:
            pass
        print(sorted(m for m in sys.modules if m.startswith("bulkport.testing")))
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "127.0.0.1:9" in done.stderr  # it did run, and failed to connect
