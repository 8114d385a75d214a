"""The CKAN key check against a real CKAN 2.12: what it answers decides, not the simulator.

A real CKAN takes an unknown, mistyped or revoked token for an anonymous caller: a source
with ``include_private = true`` then lists the public datasets only. ``bulkport run`` must
stop before the listing with one line about the key; a valid non-sysadmin key without the
rights must stop too; a sysadmin's key runs and copies every dataset.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from real_ckan.tier import CkanInstance, MakeUser, ckan_job

from bulkport.cli import main

pytestmark = pytest.mark.real_ckan


def _catalog(ckan: CkanInstance) -> int:
    """Two organizations, each with a public and a private dataset; return how many."""
    for org in ("alpha", "beta"):
        ckan.result("organization_create", {"name": org})
        for private in (False, True):
            ckan.result("package_create", {"name": f"{org}-{'private' if private else 'public'}",
                                           "owner_org": org, "private": private})
    return 4


def _job(tmp_path: Path, source: CkanInstance, target: CkanInstance, target_extra: str = "",
         name: str = "keys") -> Path:
    return ckan_job(tmp_path / f"{name}.toml", source, target, name="real-keys",
                    target_extra=target_extra)


def _run(path: Path, tmp_path: Path, source_key: str, target_key: str, *args: str) -> int:
    os.environ.update(RC_SOURCE_KEY=source_key, RC_TARGET_KEY=target_key)
    return main(["run", str(path), "--state-dir", str(tmp_path / "state"), "--no-progress", *args])


def _the_line(capsys: Any, *keys: str) -> str:
    """The one ABORTED line, on stdout with the run's summary; no traceback, no key in
    either stream."""
    output = capsys.readouterr()
    both = output.out + output.err
    assert "Traceback" not in both and all(key not in both for key in keys)
    assert "ABORTED" not in output.err
    [line] = [text for text in output.out.splitlines() if "ABORTED" in text]
    return line


def _copied(target: CkanInstance) -> int:
    found = target.result("package_search", {"include_private": True, "rows": 0})
    return int(found["count"])


def test_the_real_ckan_reads_an_unknown_or_revoked_key_as_anonymous(
        real_ckan: CkanInstance, make_user: MakeUser) -> None:
    """The fact the check is built on, and the call it makes."""
    _catalog(real_ckan)
    name, token = make_user(real_ckan)
    for key in ("not-a-valid-key", token[:-4] + "AAAA"):
        found = real_ckan.action("package_search", {"include_private": True, "rows": 0},
                                 token=key)
        assert found["success"] and found["result"]["count"] == 2  # no error: public only
        who = real_ckan.action("user_show", {}, token=key)
        assert who["error"]["__type"] == "Not Found Error"
    me = real_ckan.action("user_show", {}, token=token)
    assert me["result"]["name"] == name and me["result"]["sysadmin"] is False
    assert real_ckan.action("user_show", {})["result"]["sysadmin"] is True


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_wrong_or_revoked_source_key_stops_before_the_listing(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path, capsys: Any,
        make_user: MakeUser, args: tuple[str, ...]) -> None:
    _catalog(real_ckan)
    _, token = make_user(real_ckan)
    path = _job(tmp_path, real_ckan, real_ckan_target)
    assert _run(path, tmp_path, "not-a-valid-key-123", real_ckan_target.token, *args) == 2
    line = _the_line(capsys, "not-a-valid-key-123", real_ckan_target.token)
    assert f"[source] api_key: CKAN {real_ckan.url} does not know this key" in line
    assert _copied(real_ckan_target) == 0

    real_ckan.result("api_token_revoke", {"token": token})  # a key that was valid
    assert _run(path, tmp_path, token, real_ckan_target.token, *args) == 2
    assert "[source] api_key" in _the_line(capsys, token)
    assert _copied(real_ckan_target) == 0


def test_a_valid_key_without_the_rights_stops_and_a_sysadmin_runs(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path,
        capsys: Any, make_user: MakeUser) -> None:
    total = _catalog(real_ckan)
    name, token = make_user(real_ckan)
    real_ckan.result("organization_member_create", {"id": "alpha", "username": name,
                                                    "role": "member"})
    path = _job(tmp_path, real_ckan, real_ckan_target)
    assert _run(path, tmp_path, token, real_ckan_target.token) == 2
    line = _the_line(capsys, token)
    assert (f"[source] api_key: user {name!r} is neither a sysadmin nor a member of "
            "organization(s) 'beta'") in line
    assert _copied(real_ckan_target) == 0

    # A member of both organizations does see every private dataset there: it runs.
    real_ckan.result("organization_member_create", {"id": "beta", "username": name,
                                                    "role": "member"})
    assert _run(path, tmp_path, token, real_ckan_target.token, "--dry-run") == 0
    capsys.readouterr()

    assert _run(path, tmp_path, real_ckan.token, real_ckan_target.token) == 0
    assert _copied(real_ckan_target) == total


def test_a_target_key_that_cannot_write_stops_before_any_write(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path,
        capsys: Any, make_user: MakeUser) -> None:
    _catalog(real_ckan)
    real_ckan_target.result("organization_create", {"name": "copies"})
    name, token = make_user(real_ckan_target)
    real_ckan_target.result("organization_member_create", {"id": "copies", "username": name,
                                                           "role": "member"})
    path = _job(tmp_path, real_ckan, real_ckan_target,
                'organization = "copies"\ncreate_organizations = false')
    assert _run(path, tmp_path, real_ckan.token, token) == 2
    line = _the_line(capsys, token)
    assert (f"[target] api_key: user {name!r} is neither a sysadmin nor an editor of "
            "organization(s) 'copies'") in line

    missing = _job(tmp_path, real_ckan, real_ckan_target,
                   'organization = "elsewhere"\ncreate_organizations = false', name="missing")
    assert _run(missing, tmp_path, real_ckan.token, real_ckan_target.token, "--dry-run") == 2
    assert "[target] organization = 'elsewhere': no such organization" in _the_line(capsys)

    real_ckan_target.result("organization_member_create", {"id": "copies", "username": name,
                                                           "role": "editor"})
    assert _run(path, tmp_path, real_ckan.token, token) == 0
    assert _copied(real_ckan_target) == 4
