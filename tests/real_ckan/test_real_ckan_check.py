"""``bulkport check`` against a real CKAN 2.12: what it answers decides, not the simulator.

A real CKAN reads a key it does not know as an anonymous caller; ``bulkport check`` must
still say, one line, that the key is wrong, that a valid key may not write where the job
writes, or that a named organization is missing while none may be created, and change
nothing on either site.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from real_ckan.tier import CkanInstance, MakeUser, ckan_job

from bulkport.cli import main

pytestmark = pytest.mark.real_ckan
WRONG_KEY = "not-a-valid-key-8c41"


def _job(tmp_path: Path, source: CkanInstance, target: CkanInstance, target_extra: str) -> Path:
    return ckan_job(tmp_path / "check.toml", source, target, name="real-check",
                    target_extra=target_extra, retries=1)


def _check(path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, source_key: str,
           target_key: str) -> tuple[int, list[str]]:
    monkeypatch.chdir(path.parent)
    os.environ.update(RC_SOURCE_KEY=source_key, RC_TARGET_KEY=target_key)
    code = main(["check", str(path)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert not any(key in out or key in err for key in (source_key, target_key))
    assert not (path.parent / ".bulkport").exists()
    return code, out.splitlines()


def _failure(lines: list[str]) -> str:
    [failed] = [line for line in lines if line.startswith("FAIL")]
    return failed


def _unchanged(target: CkanInstance, organizations: list[str]) -> None:
    """Nothing was written on the target."""
    found = target.result("package_search", {"include_private": True, "rows": 0})
    assert found["count"] == 0
    assert target.result("organization_list", {}) == organizations


def test_a_wrong_key_on_either_side_is_one_line(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path, capsys: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = _job(tmp_path, real_ckan, real_ckan_target, "")
    code, lines = _check(path, capsys, monkeypatch, real_ckan.token, WRONG_KEY)
    assert code == 2
    assert _failure(lines).startswith(
        f"FAIL  target CKAN {real_ckan_target.url}: [target] api_key: CKAN "
        f"{real_ckan_target.url} does not know this key")
    assert f"ok    source CKAN {real_ckan.url}: key of sysadmin 'admin', who sees every dataset" \
        in lines  # the source was checked all the same
    assert any(line.startswith(f"ok    target CKAN {real_ckan_target.url}: reachable, CKAN 2.12")
               for line in lines), lines

    code, lines = _check(path, capsys, monkeypatch, WRONG_KEY, real_ckan_target.token)
    assert code == 2
    assert _failure(lines).startswith(f"FAIL  source CKAN {real_ckan.url}: [source] api_key: "
                                      f"CKAN {real_ckan.url} does not know this key")
    _unchanged(real_ckan_target, [])


def test_a_valid_key_that_may_not_write_or_read_is_one_line(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path, capsys: Any,
        monkeypatch: pytest.MonkeyPatch, make_user: MakeUser) -> None:
    real_ckan_target.result("organization_create", {"name": "copies"})
    name, token = make_user(real_ckan_target)
    real_ckan_target.result("organization_member_create", {"id": "copies", "username": name,
                                                           "role": "member"})
    path = _job(tmp_path, real_ckan, real_ckan_target,
                'organization = "copies"\ncreate_organizations = false')
    code, lines = _check(path, capsys, monkeypatch, real_ckan.token, token)
    assert code == 2
    assert f"ok    target CKAN {real_ckan_target.url}: key of user {name!r}" in lines
    assert _failure(lines).startswith(
        f"FAIL  target CKAN {real_ckan_target.url}: [target] api_key: user {name!r} is neither "
        "a sysadmin nor an editor of organization(s) 'copies'")

    real_ckan.result("organization_create", {"name": "alpha"})
    reader, reader_token = make_user(real_ckan)  # a member of nothing at the source
    code, lines = _check(path, capsys, monkeypatch, reader_token, real_ckan_target.token)
    assert code == 2
    assert _failure(lines).startswith(
        f"FAIL  source CKAN {real_ckan.url}: [source] api_key: user {reader!r} is neither a "
        "sysadmin nor a member of organization(s) 'alpha'")

    real_ckan_target.result("organization_member_create", {"id": "copies", "username": name,
                                                           "role": "editor"})
    code, lines = _check(path, capsys, monkeypatch, real_ckan.token, token)
    assert code == 0, lines
    assert (f"ok    target CKAN {real_ckan_target.url}: user {name!r} may create datasets in "
            "'copies'") in lines
    _unchanged(real_ckan_target, ["copies"])


def test_a_missing_organization_with_creation_off_is_one_line(
        real_ckan: CkanInstance, real_ckan_target: CkanInstance, tmp_path: Path, capsys: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = _job(tmp_path, real_ckan, real_ckan_target,
                'organization = "elsewhere"\ncreate_organizations = false')
    code, lines = _check(path, capsys, monkeypatch, real_ckan.token, real_ckan_target.token)
    assert code == 2
    assert _failure(lines).startswith(
        f"FAIL  target CKAN {real_ckan_target.url}: [target] organization = 'elsewhere': no "
        f"such organization on CKAN {real_ckan_target.url}, and create_organizations = false")
    _unchanged(real_ckan_target, [])
