"""An Opendatasoft key, and the licence and theme ids a job maps to, checked before any write.

The Automation API answers no anonymous caller: a wrong key is a 401 on the first call, said
as one line about the key. A domain lists its licences and themes as the ``choices`` of the
``internal`` template's ``license_id`` and ``theme_id``: an id it lacks is one fatal line,
dry run included, instead of one refused dataset after another. Every case runs ``bulkport
run`` against the simulators as a user would.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from bulkport.cli import main
from bulkport.testing import (
    CkanStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
    seed_ods,
)

CKAN_KEY, ODS_KEY, WRONG_KEY = "ckan-key-1e7b20", "ods-key-8d3f61", "wrong-key-4a9c05"
LICENCES = {"38js5ao": "CC BY 4.0", "5sfe0h9": "CC BY-SA 4.0", "odbl01x": "ODbL"}
THEMES = {"env01": "Environment", "trn02": "Transport"}
WRITES = ("POST", "PUT", "DELETE")


@dataclass
class Sites:
    ckan: CkanStore
    ckan_url: str
    ods: OdsStore
    ods_url: str

    def ods_writes(self) -> int:
        return sum(n for label, n in self.ods.stats.items() if label.startswith(WRITES))


@pytest.fixture
def sites() -> Iterator[Sites]:
    """A seeded CKAN and an empty Opendatasoft domain with its licences and themes."""
    ckan = CkanStore(seed=3)
    seed_ckan(ckan, datasets=12, resources=1, file_size=400, seed=3)
    ods = OdsStore(licenses=LICENCES, themes=THEMES)
    servers = [ThreadedServer(lambda: create_ckan_app(ckan, api_keys={CKAN_KEY: "admin"})).start(),
               ThreadedServer(lambda: create_ods_app(ods, api_keys={ODS_KEY},
                                                     processing_time=0.01)).start()]
    yield Sites(ckan, servers[0].url, ods, servers[1].url)
    for server in servers:
        server.stop()
    ods.close()


def to_ods(tmp_path: Path, sites: Sites, maps: str = "", ods_key: str = "${T_ODS_KEY}") -> Path:
    path = tmp_path / "to-ods.toml"
    path.write_text(f'kind = "migrate"\nname = "to-ods"\n'
                    f'[source]\ntype = "ckan"\nurl = "{sites.ckan_url}"\napi_key = "{CKAN_KEY}"\n'
                    f'[target]\ntype = "ods"\nurl = "{sites.ods_url}"\napi_key = "{ods_key}"\n'
                    f"{maps}\n[options]\nconnections = 4\nstatus_poll = 0.01\n")
    return path


def run(path: Path, tmp_path: Path, *args: str) -> int:
    os.environ["T_ODS_KEY"] = ODS_KEY
    return main(["run", str(path), "--state-dir", str(tmp_path / "state"), "--no-progress", *args])


def the_line(capsys: Any) -> str:
    """The one ABORTED line, on stdout with the run's summary; no traceback, no key in
    either stream."""
    output = capsys.readouterr()
    both = output.out + output.err
    assert "Traceback" not in both and ODS_KEY not in both and WRONG_KEY not in both
    assert "ABORTED" not in output.err
    [line] = [text for text in output.out.splitlines() if "ABORTED" in text]
    return line


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_wrong_target_key_stops_before_anything_is_read(sites: Sites, tmp_path: Path,
                                                          capsys: Any, args: tuple[str, ...]) -> None:
    assert run(to_ods(tmp_path, sites, ods_key=WRONG_KEY), tmp_path, *args) == 2
    line = the_line(capsys)
    assert (f"[target] api_key: Opendatasoft {sites.ods_url} refused the key (HTTP 401: "
            "authentication_failed") in line
    assert "make a new one on the domain" in line
    assert sites.ckan.stats.requests == 0 and sites.ods.stats.requests == 1


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_licence_id_the_domain_lacks_is_one_line(sites: Sites, tmp_path: Path, capsys: Any,
                                                   args: tuple[str, ...]) -> None:
    maps = '[target.licenses]\n"cc-by" = "38js5ao"\n"odc-odbl" = "odbl"\n"cc-zero" = "cc0"'
    assert run(to_ods(tmp_path, sites, maps), tmp_path, *args) == 2
    line = the_line(capsys)
    assert (f"[target.licenses] 'odc-odbl' = 'odbl', 'cc-zero' = 'cc0': no such licence id on "
            f"Opendatasoft {sites.ods_url} (its licences: 38js5ao (CC BY 4.0), 5sfe0h9 "
            "(CC BY-SA 4.0), odbl01x (ODbL)): map to one of those ids") in line
    assert sites.ckan.stats["ckan:package_search"] == 0 and sites.ods_writes() == 0


def test_a_theme_id_the_domain_lacks_is_one_line(sites: Sites, tmp_path: Path,
                                                 capsys: Any) -> None:
    maps = '[target.themes]\n"environment" = "env01"\n"transport" = "transport"'
    assert run(to_ods(tmp_path, sites, maps), tmp_path, "--dry-run") == 2
    assert ("[target.themes] 'transport' = 'transport': no such theme id on Opendatasoft "
            f"{sites.ods_url} (its themes: env01 (Environment), trn02 (Transport))") in (
        the_line(capsys))


def test_ids_the_domain_has_are_written(sites: Sites, tmp_path: Path, capsys: Any) -> None:
    maps = ('[target.licenses]\n"cc-by" = "38js5ao"\n"cc-by-sa" = "5sfe0h9"\n'
            '"odc-odbl" = "odbl01x"\n[target.themes]\n"environment" = "env01"')
    assert run(to_ods(tmp_path, sites, maps), tmp_path) == 0
    written = {ds.metadata.get("internal", {}).get("license_id", {}).get("value")
               for ds in sites.ods.datasets.values()}
    assert len(sites.ods.datasets) == 12 and written - {None} <= set(LICENCES)
    assert written & set(LICENCES)


def _call(url: str, body: Any = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=None if body is None else orjson.dumps(body),
                                     headers={"Authorization": f"apikey {ODS_KEY}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, orjson.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def test_the_simulated_domain_lists_its_ids_and_refuses_others(sites: Sites) -> None:
    api = sites.ods_url + "/api/automation/v1.0"
    _, field = _call(f"{api}/metadata/templates/internal/fields/license_id/")
    assert field["type"] == "enum" and field["choices"] == list(LICENCES)
    assert field["labels"]["38js5ao"] == {"en": "CC BY 4.0"}
    body = {"dataset_id": "x", "metadata": {
        "default": {"title": {"value": "X"}, "modified": {"value": "2026-01-01T00:00:00Z"},
                    "language": {"value": "en"}},
        "internal": {"license_id": {"value": "nope"}, "theme_id": {"value": ["env01", "zz"]}}}}
    status, refused = _call(f"{api}/datasets/", body)
    assert status == 400 and refused["error_code"] == "validation_error"
    assert refused["detail"]["metadata.internal.license_id"] == ['"nope" is not a valid choice.']
    assert refused["detail"]["metadata.internal.theme_id"] == ['"zz" is not a valid choice.']
    assert not sites.ods.datasets


def test_a_wrong_source_key_stops_before_any_write(tmp_path: Path, capsys: Any) -> None:
    ods, ckan = OdsStore(seed=4), CkanStore(seed=4)
    seed_ods(ods, datasets=5, resources=1, file_size=300, seed=4, large_export_rows=10)
    servers = [ThreadedServer(lambda: create_ods_app(ods, api_keys={ODS_KEY})).start(),
               ThreadedServer(lambda: create_ckan_app(ckan, api_keys={CKAN_KEY: "admin"})).start()]
    try:
        path = tmp_path / "from-ods.toml"
        path.write_text(f'kind = "migrate"\nname = "from-ods"\n'
                        f'[source]\ntype = "ods"\nurl = "{servers[0].url}"\n'
                        f'api_key = "{WRONG_KEY}"\n'
                        f'[target]\ntype = "ckan"\nurl = "{servers[1].url}"\n'
                        f'api_key = "{CKAN_KEY}"\n')
        assert run(path, tmp_path) == 2
        line = the_line(capsys)
        assert (f"[source] api_key: Opendatasoft {servers[0].url} refused the key (HTTP 401"
                in line)
        assert ods.stats.requests == 1 and not ckan.packages
    finally:
        for server in servers:
            server.stop()
        ods.close()
