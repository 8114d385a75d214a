"""What a CKAN key is worth, checked before the listing is trusted and before any write.

CKAN reads a key it does not know as an anonymous caller: without the check a source with
``include_private = true`` and a wrong key lists the public datasets only, and the run says
OK. Every case runs ``bulkport run`` (or ``verify``) as a user would, against the CKAN
simulator, and asserts the exit code, the one line it prints and that nothing was written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bulkport.cli import main
from bulkport.testing import CkanStore, ThreadedServer, create_ckan_app, seed_ckan

ADMIN_KEY, EDITOR_KEY, WRONG_KEY = "admin-key-0a9d41", "editor-key-5c2e88", "wrong-key-77f310"
WRITES = ("package_create", "package_update", "package_patch", "package_delete",
          "resource_create", "resource_update", "resource_patch", "resource_delete",
          "organization_create")


@dataclass
class Sites:
    source: CkanStore
    source_url: str
    target: CkanStore
    target_url: str

    def target_writes(self) -> int:
        return sum(self.target.stats[f"ckan:{action}"] for action in WRITES)

    def join(self, store: CkanStore, org: str, role: str) -> None:
        """Make the editor's user a member of ``org`` with ``role``."""
        store.members.setdefault(store.org_names[org], {})["joe"] = role


@pytest.fixture
def sites() -> Iterator[Sites]:
    """Two CKAN sites (the source seeded, with private datasets); on each the admin key
    is a sysadmin's and the editor key belongs to ``joe``, who is a member of nothing."""
    source, target = CkanStore(seed=1), CkanStore(seed=2)
    seed_ckan(source, datasets=40, resources=1, file_size=500, seed=1)
    assert any(p["private"] for p in source.packages.values())
    servers = [ThreadedServer(lambda s=store: create_ckan_app(
        s, api_keys={ADMIN_KEY: "admin", EDITOR_KEY: "joe"}, sysadmins={"admin"})).start()
        for store in (source, target)]
    yield Sites(source, servers[0].url, target, servers[1].url)
    for server in servers:
        server.stop()


def job(tmp_path: Path, sites: Sites, *, source: str = "", target: str = "",
        source_key: str | None = "${T_SOURCE_KEY}", target_key: str | None = "${T_TARGET_KEY}",
        kind: str = "migrate") -> Path:
    def key(value: str | None) -> str:
        return f'api_key = "{value}"\n' if value else ""

    path = tmp_path / "keys.toml"
    path.write_text(f'kind = "{kind}"\nname = "keys"\n'
                    f'[source]\ntype = "ckan"\nurl = "{sites.source_url}"\n{key(source_key)}'
                    f"{source}\n"
                    f'[target]\ntype = "ckan"\nurl = "{sites.target_url}"\n{key(target_key)}'
                    f"{target}\n[options]\nconnections = 4\n")
    return path


def run(path: Path, tmp_path: Path, *args: str, source_key: str = ADMIN_KEY,
        target_key: str = ADMIN_KEY, command: str = "run") -> int:
    os.environ.update(T_SOURCE_KEY=source_key, T_TARGET_KEY=target_key)
    state = ["--state-dir", str(tmp_path / "state"), "--no-progress"] if command == "run" else []
    return main([command, str(path), *state, *args])


def the_line(capsys: Any, marker: str = "ABORTED", stream: str = "out") -> str:
    """The one line that says why the run stopped, found once across both streams and in
    ``stream`` (a run's summary is on stdout; verify's "could not compare" on stderr); no
    traceback, no key in either stream."""
    output = capsys.readouterr()
    both = output.out.splitlines() + output.err.splitlines()
    assert not any("Traceback" in text for text in both)
    for key in (ADMIN_KEY, EDITOR_KEY, WRONG_KEY):
        assert not any(key in text for text in both)
    [line] = [text for text in both if marker in text]
    assert line in getattr(output, stream).splitlines()
    return line


# ---- the source ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_wrong_source_key_with_private_data_stops_before_the_listing(
        sites: Sites, tmp_path: Path, capsys: Any, args: tuple[str, ...]) -> None:
    path = job(tmp_path, sites, source="include_private = true")
    assert run(path, tmp_path, *args, source_key=WRONG_KEY) == 2
    line = the_line(capsys)
    assert f"[source] api_key: CKAN {sites.source_url} does not know this key" in line
    assert "list only the public datasets" in line and "make a new API token" in line
    assert sites.source.stats["ckan:package_search"] == 0  # the listing was never read
    assert sites.target_writes() == 0 and not sites.target.packages


def test_a_wrong_source_key_stops_a_mirror_and_verify_too(sites: Sites, tmp_path: Path,
                                                          capsys: Any) -> None:
    path = job(tmp_path, sites, source="include_private = true", kind="mirror")
    assert run(path, tmp_path, source_key=WRONG_KEY) == 2
    assert "[source] api_key" in the_line(capsys)
    assert sites.target_writes() == 0
    assert run(path, tmp_path, source_key=WRONG_KEY, command="verify") == 2
    line = the_line(capsys, "could not compare", stream="err")
    assert "[source] api_key" in line and "does not know this key" in line


def test_a_wrong_source_key_stops_even_for_public_data(sites: Sites, tmp_path: Path,
                                                       capsys: Any) -> None:
    assert run(job(tmp_path, sites), tmp_path, source_key=WRONG_KEY) == 2
    assert "[source] api_key" in the_line(capsys)


def test_private_data_without_a_key_is_refused_before_any_request(sites: Sites, tmp_path: Path,
                                                                  capsys: Any) -> None:
    path = job(tmp_path, sites, source="include_private = true\ninclude_drafts = true",
               source_key=None)
    assert run(path, tmp_path) == 2
    line = the_line(capsys)
    assert "[source] include_private = true and include_drafts = true needs an api_key" in line
    assert sites.source.stats.requests == 0


def test_public_data_needs_no_key_and_a_sysadmin_key_costs_one_call(sites: Sites, tmp_path: Path,
                                                                    capsys: Any) -> None:
    public = sum(not p["private"] and p["state"] == "active" for p in sites.source.packages.values())
    assert run(job(tmp_path, sites, source_key=None), tmp_path) == 0
    assert len(sites.target.packages) == public
    sites.source.stats.clear()
    path = job(tmp_path, sites, source="include_private = true")
    assert run(path, tmp_path, "--dry-run") == 0
    assert sites.source.stats["ckan:user_show"] == 1
    assert sites.source.stats["ckan:organization_list_for_user"] == 0  # a sysadmin sees all


def test_a_member_of_some_organizations_only_is_stopped(sites: Sites, tmp_path: Path,
                                                        capsys: Any) -> None:
    sites.join(sites.source, "stadt-zuerich", "member")
    path = job(tmp_path, sites, source="include_private = true")
    assert run(path, tmp_path, source_key=EDITOR_KEY) == 2
    line = the_line(capsys)
    assert ("[source] api_key: user 'joe' is neither a sysadmin nor a member of "
            "organization(s) 'ministere-economie'") in line
    assert "'stadt-zuerich'" not in line and "use a sysadmin's API token" in line
    assert sites.source.stats["ckan:package_search"] == 0 and sites.target_writes() == 0


def test_a_member_of_what_the_fq_reads_or_of_every_organization_runs(
        sites: Sites, tmp_path: Path, capsys: Any) -> None:
    sites.join(sites.source, "stadt-zuerich", "member")
    sites.join(sites.source, "region-skane", "editor")
    narrowed = 'include_private = true\nfq = "organization:(stadt-zuerich OR region-skane)"'
    assert run(job(tmp_path, sites, source=narrowed), tmp_path, "--dry-run",
               source_key=EDITOR_KEY) == 0
    for org in sites.source.org_names:
        sites.join(sites.source, org, "member")
    assert run(job(tmp_path, sites, source="include_private = true"), tmp_path, "--dry-run",
               source_key=EDITOR_KEY) == 0


# ---- the target ----------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_wrong_target_key_stops_before_anything_is_read_or_written(
        sites: Sites, tmp_path: Path, capsys: Any, args: tuple[str, ...]) -> None:
    assert run(job(tmp_path, sites), tmp_path, *args, target_key=WRONG_KEY) == 2
    line = the_line(capsys)
    assert f"[target] api_key: CKAN {sites.target_url} does not know this key" in line
    assert "refuse every write" in line
    assert sites.source.stats.requests == 0 and sites.target_writes() == 0


def test_a_target_without_a_key_is_refused(sites: Sites, tmp_path: Path, capsys: Any) -> None:
    assert run(job(tmp_path, sites, target_key=None), tmp_path) == 2
    assert "[target] api_key is missing" in the_line(capsys)
    assert sites.target.stats.requests == 0


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_named_organization_missing_with_creation_off_is_one_line(
        sites: Sites, tmp_path: Path, capsys: Any, args: tuple[str, ...]) -> None:
    settings = ('organization = "nowhere"\ncreate_organizations = false\n'
                '[target.organizations]\n"stadt-zuerich" = "zurich-city"')
    assert run(job(tmp_path, sites, target=settings), tmp_path, *args) == 2
    line = the_line(capsys)
    assert ("[target] organizations 'stadt-zuerich' = 'zurich-city', organization = 'nowhere': "
            f"no such organization on CKAN {sites.target_url}, and create_organizations = "
            "false") in line
    assert sites.source.stats["ckan:package_search"] == 0 and sites.target_writes() == 0


def test_an_existing_named_organization_with_creation_off_runs(sites: Sites, tmp_path: Path,
                                                               capsys: Any) -> None:
    seed_ckan(sites.target, datasets=0)  # the organizations, no dataset
    settings = 'organization = "region-skane"\ncreate_organizations = false'
    assert run(job(tmp_path, sites, target=settings), tmp_path) == 0
    org = sites.target.org_names["region-skane"]
    assert sites.target.packages and all(p["owner_org"] == org
                                         for p in sites.target.packages.values())


def test_an_editor_outside_the_named_organization_is_stopped(sites: Sites, tmp_path: Path,
                                                             capsys: Any) -> None:
    seed_ckan(sites.target, datasets=0)
    sites.join(sites.target, "stadt-zuerich", "member")  # reads, but may not create there
    settings = 'organization = "stadt-zuerich"'
    assert run(job(tmp_path, sites, target=settings), tmp_path, target_key=EDITOR_KEY) == 2
    line = the_line(capsys)
    assert ("[target] api_key: user 'joe' is neither a sysadmin nor an editor of "
            "organization(s) 'stadt-zuerich'") in line
    assert sites.target_writes() == 0
    sites.join(sites.target, "stadt-zuerich", "editor")
    assert run(job(tmp_path, sites, target=settings), tmp_path, "--dry-run",
               target_key=EDITOR_KEY) == 0


def test_an_editor_of_nothing_with_creation_off_is_stopped(sites: Sites, tmp_path: Path,
                                                           capsys: Any) -> None:
    seed_ckan(sites.target, datasets=0)
    settings = "create_organizations = false"
    assert run(job(tmp_path, sites, target=settings), tmp_path, target_key=EDITOR_KEY) == 2
    assert ("[target] api_key: user 'joe' is neither a sysadmin nor an editor of any "
            "organization") in the_line(capsys)
    assert sites.target_writes() == 0


def test_a_url_that_is_no_ckan_is_named(sites: Sites, tmp_path: Path, capsys: Any) -> None:
    path = job(tmp_path, sites)
    path.write_text(path.read_text().replace(sites.target_url, sites.target_url + "/nothing"))
    assert run(path, tmp_path) == 2
    assert f"[target] url {sites.target_url}/nothing answers no CKAN Action API" in (
        the_line(capsys))

