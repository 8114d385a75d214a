"""The job-file key reference: made from the settings, complete, and docs/job-keys.md current."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

from bulkport.config import KINDS, TOP_LEVEL, JobFile
from bulkport.jobs.token_filter import KEYS, FilterTable
from bulkport.keyref import REGENERATE, reference, tables, undocumented
from bulkport.portals import registry
from bulkport.portals.base import Portal
from bulkport.settings import Options, SourceSettings, TargetSettings, keys, setting

DOCS = Path(__file__).resolve().parents[1] / "docs" / "job-keys.md"


def _sections(text: str) -> dict[str, str]:
    """Each ``## heading`` of the reference → its body."""
    parts = text.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1].strip() for part in parts}


def _row(section: str, key: str) -> list[str]:
    """The cells of ``key``'s row in a section."""
    line = next(line for line in section.splitlines() if line.startswith(f"| `{key}` |"))
    return [cell.strip() for cell in line.strip("|").split(" | ")]


def test_every_key_of_every_table_says_what_it_means() -> None:
    missing = [f"{table.heading}: {key}" for table in tables()
               for key in undocumented(table.settings)]
    assert missing == []


def test_the_checker_flags_a_key_without_a_meaning() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Careless(Options):
        said: int = setting(1, "a key that says what it is")
        silent: int = setting(2)
        blank: str = setting("x", "   ")
        plain: int = 3
        made: list[str] = field(default_factory=list)

    assert undocumented(Careless) == ["silent", "blank", "plain", "made"]


def test_docs_file_is_the_reference_as_generated() -> None:
    assert DOCS.read_text(encoding="utf-8") == reference(), (
        f"docs/job-keys.md is stale: regenerate it with `{REGENERATE}`")
    assert DOCS.read_text(encoding="utf-8").splitlines()[0].startswith("<!-- Generated ")


def test_the_module_prints_the_reference() -> None:
    out = subprocess.run([sys.executable, "-m", "bulkport.keyref"], capture_output=True,
                         check=True).stdout
    assert out == reference().encode("utf-8")


def test_spot_checks() -> None:
    sections = _sections(reference())
    assert _row(sections["[options]"], "connections") == [
        "`connections`", "`int (1–1000)`", "`16`", "connections per host"]
    assert _row(sections["[options]"], "connect_timeout")[1] == "`float (> 0, ≤ 600)`"
    assert _row(sections["[options]"], "on_delete")[1:3] == [
        '`"delete" \\| "private" \\| "keep"`', '`"delete"`']
    assert _row(sections["[options]"], "max_delete_count")[1] == "`int (≥ 0)`"
    datapress = sections["DataPress: [target]"]
    assert _row(datapress, "team")[1:3] == ["`str`", "required"]
    assert _row(datapress, "type")[1] == '`"datapress"`'
    assert _row(datapress, "licenses")[1] == "`dict[str, str \\| {url = str, title = str}]`"
    assert _row(sections["CKAN: [source]"], "rows")[1:3] == ["`int (1–1000) \\| none`", "not set"]
    assert _row(sections["CKAN: [target]"], "organizations")[1:3] == ["`dict[str, str]`", "`{}`"]
    assert _row(sections["PortalJS Cloud: [target]"], "presigned_uploads")[2] == "`true`"
    assert _row(sections["Opendatasoft: [source]"], "api_key")[1:3] == ["`str`", "required"]
    assert _row(sections["Top level"], "kind")[2] == '`"migrate"`'
    assert datapress.startswith('`type = "datapress"`: the [target] of migrate and mirror jobs.')


def test_a_portal_shows_only_the_tables_of_the_roles_it_plays() -> None:
    def reader(*_: Any) -> Any:
        raise NotImplementedError

    read_only: registry.AnyPortal = Portal(name="readonly", title="Read Only",
                                           source_settings=SourceSettings,
                                           target_settings=TargetSettings, source=reader)
    with registry.registered(read_only):
        sections = _sections(reference())
    assert sections["Read Only: [source]"].startswith(
        '`type = "readonly"`: the [source] of migrate jobs.')
    assert "Read Only: [target]" not in sections


def test_the_documented_classes_are_the_keys_the_parsers_accept() -> None:
    assert TOP_LEVEL == tuple(keys(JobFile))
    assert get_args(get_type_hints(JobFile)["kind"]) == tuple(KINDS)
    assert KEYS == tuple(keys(FilterTable))
