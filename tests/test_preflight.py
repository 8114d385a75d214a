"""``bulkport check JOB``: each portal asked, read-only, what the run needs.

Every case runs ``bulkport check`` as a user would, against the simulators, and asserts the
exit code, the one line that fails (one line per check), that the other side was checked
all the same, and that nothing was written: the simulators received only reads (CKAN
``*_show`` / ``*_list`` / ``package_search`` / ``status_show``, Opendatasoft and DataPress
only GET), and no state directory was made.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bulkport.cli import main
from bulkport.config import load_job
from bulkport.preflight import Check, check_job
from bulkport.testing import (
    CkanStore,
    DataPressStore,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_datapress_app,
    create_ods_app,
    seed_ckan,
)
from bulkport.testing.ckan.app import site_actions
from bulkport.testing.ckan.tokens import seed_tokens

ADMIN_KEY, EDITOR_KEY = "admin-key-61c0de", "editor-key-2b7f94"  # CKAN: 'admin', 'joe'
ODS_KEY, DP_KEY, DP_OTHER_KEY = "ods-key-4e8a17", "dp-key-a90c33", "dp-other-key-5d21e0"
WRONG_KEY = "wrong-key-0f4b6e"
KEYS = (ADMIN_KEY, EDITOR_KEY, ODS_KEY, DP_KEY, DP_OTHER_KEY, WRONG_KEY)
LICENCES = {"38js5ao": "CC BY 4.0", "odbl01x": "ODbL"}
THEMES = {"env01": "Environment"}
# Besides every *_show and *_list action: what CKAN reads with.
CKAN_READS = ("package_search", "status_show", "organization_list_for_user")
Received = list[tuple[str, str]]  # (method, path) of every request a simulator received


@dataclass
class Sites:
    source: CkanStore
    source_url: str
    ckan: CkanStore  # a CKAN target, its organizations made, no dataset
    ckan_url: str
    ods: OdsStore
    ods_url: str
    dp: DataPressStore
    dp_url: str
    team: str
    received: dict[str, Received] = field(default_factory=dict)  # by URL

    def reads_only(self) -> None:
        """Every simulator received requests, and only reads."""
        for url, calls in self.received.items():
            if url in (self.source_url, self.ckan_url):
                actions = {path.rsplit("/", 1)[-1] for _, path in calls}
                assert all(a.endswith(("_show", "_list")) or a in CKAN_READS
                           for a in actions), actions
                assert all(site_actions()[a][1] for a in actions)  # side-effect-free, all
            else:
                assert {method for method, _ in calls} <= {"GET"}, calls


def recorded(make: Callable[[], web.Application], received: Received) -> Callable[[], Any]:
    """``make``'s application, recording the method and path of every request first."""
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        received.append((request.method, request.path))
        return await handler(request)

    def build() -> web.Application:
        app = make()
        app.middlewares.insert(0, record)
        return app

    return build


@pytest.fixture
def sites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sites]:
    """A seeded CKAN source and three empty targets: CKAN (with organizations), an
    Opendatasoft domain (licences, themes, a ``custom`` template) and a DataPress site
    (a team; an admin key, and the key of a user of another team). The working directory
    is ``tmp_path``, where a run would make ``.bulkport/``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("P_SOURCE_KEY", ADMIN_KEY)
    source, ckan = CkanStore(seed=1), CkanStore(seed=2)
    seed_ckan(source, datasets=20, resources=1, file_size=300, seed=1)
    seed_ckan(ckan, datasets=0)  # the organizations only
    seed_tokens(ckan.accounts, users=4, tokens=40, seed=4)
    ods = OdsStore(licenses=LICENCES, themes=THEMES,
                   custom_templates={"custom": ["bulkport_source_id"]})
    dp = DataPressStore(seed=6)
    team = dp.add_team("Migrated datasets")["id"]
    dp.add_user("Migration Admin", "admin@example.org", admin=True, key=DP_KEY)
    dp.add_user("Ed Itor", "ed@example.org", teams=[dp.add_team("Elsewhere")["id"]],
                key=DP_OTHER_KEY)
    ckan_keys = {ADMIN_KEY: "admin", EDITOR_KEY: "joe"}
    makers = [lambda s=store: create_ckan_app(s, api_keys=ckan_keys, sysadmins={"admin"})
              for store in (source, ckan)]
    makers += [lambda: create_ods_app(ods, api_keys={ODS_KEY}), lambda: create_datapress_app(dp)]
    received: list[Received] = [[] for _ in makers]
    servers = [ThreadedServer(recorded(make, calls)).start()
               for make, calls in zip(makers, received, strict=True)]
    urls = [server.url for server in servers]
    yield Sites(source, urls[0], ckan, urls[1], ods, urls[2], dp, urls[3], team,
                dict(zip(urls, received, strict=True)))
    for server in servers:
        server.stop()
    ods.close()
    dp.close()


def write_job(sites: Sites, target: str, *, kind: str = "migrate", source: str = "") -> Path:
    """A job file from the CKAN source (with its private datasets) to ``target`` (a
    ``[target]`` table's lines), its keys as ``${VARS}``."""
    path = Path("job.toml")
    path.write_text(f'kind = "{kind}"\nname = "preflight"\n'
                    f'[source]\ntype = "ckan"\nurl = "{sites.source_url}"\n'
                    f'api_key = "${{P_SOURCE_KEY}}"\ninclude_private = true\n{source}\n'
                    f"[target]\n{target}\n[options]\nconnections = 4\nretries = 1\n")
    return path


def to_ckan(sites: Sites, extra: str = "") -> str:
    return f'type = "ckan"\nurl = "{sites.ckan_url}"\napi_key = "${{P_TARGET_KEY}}"\n{extra}'


def to_ods(sites: Sites, extra: str = "") -> str:
    return (f'type = "ods"\nurl = "{sites.ods_url}"\napi_key = "${{P_TARGET_KEY}}"\n'
            f'mark_field = "custom.bulkport_source_id"\n{extra}')


def to_datapress(sites: Sites, *, team: str | None = None, masthead: str = "simulator") -> str:
    return (f'type = "datapress"\nurl = "{sites.dp_url}"\napi_key = "${{P_TARGET_KEY}}"\n'
            f'team = "{team or sites.team}"\nmasthead = "{masthead}"\n')


def check(path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch, target_key: str,
          *args: str) -> tuple[int, list[str]]:
    """Run ``bulkport check``; its exit code and stdout lines (no key in any output)."""
    monkeypatch.setenv("P_TARGET_KEY", target_key)
    code = main(["check", str(path), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert not any(key in out or key in err for key in KEYS)
    assert not Path(".bulkport").exists()  # no state directory made
    return code, out.splitlines()


def the_failure(lines: list[str]) -> str:
    """The one failed line; every other line says ok."""
    [failed] = [line for line in lines if line.startswith("FAIL")]
    assert all(line.startswith(("ok ", "FAIL")) for line in lines), lines
    return failed


def source_passed(lines: list[str], sites: Sites) -> None:
    """The source was checked (and passed) whatever became of the target."""
    source = [line for line in lines if line.startswith(f"ok    source CKAN {sites.source_url}")]
    assert any("key of sysadmin 'admin'" in line for line in source), lines


# ---- a good job ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["migrate", "mirror"])
def test_a_good_job_passes_every_check_and_writes_nothing(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    maps = '[target.licenses]\n"cc-by" = "38js5ao"\n[target.themes]\n"environment" = "env01"'
    code, lines = check(write_job(sites, to_ods(sites, maps), kind=kind), capsys, monkeypatch,
                        ODS_KEY)
    assert code == 0 and all(line.startswith("ok    ") for line in lines), lines
    assert lines[0] == f"ok    job file job.toml: {kind} job 'preflight', ${{VARS}} resolved"
    assert f"ok    source CKAN {sites.source_url}: reachable, CKAN 2.12.0 Action API" in lines
    target = f"ok    target Opendatasoft {sites.ods_url}: "
    for found in ("reachable, Automation API v1.0, key accepted (0 datasets on the domain)",
                  "licence id '38js5ao' exists, theme id 'env01' exists",
                  "template 'custom' has field 'bulkport_source_id'"):
        assert target + found in lines
    sites.reads_only()
    assert not sites.ods.datasets and sites.ods.stats.requests > 0


def test_good_ckan_and_datapress_targets_pass(sites: Sites, capsys: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = check(write_job(sites, to_ckan(sites, 'organization = "region-skane"\n'
                                                        "create_organizations = false")),
                        capsys, monkeypatch, ADMIN_KEY)
    assert code == 0, lines
    assert (f"ok    target CKAN {sites.ckan_url}: organization(s) 'region-skane' exist"
            in lines)
    code, lines = check(write_job(sites, to_datapress(sites)), capsys, monkeypatch, DP_KEY)
    assert code == 0, lines
    assert (f"ok    target DataPress {sites.dp_url}: reachable, DataPress API at /api/v3, "
            "key of admin 'Migration Admin'") in lines
    sites.reads_only()
    assert not sites.ckan.packages and not sites.dp.datasets


def test_json_says_each_check(sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = check(write_job(sites, to_ods(sites)), capsys, monkeypatch, WRONG_KEY,
                        "--json")
    assert code == 2
    [line] = lines
    reply = json.loads(line)
    assert reply["ok"] is False
    by_name = {c["check"]: c for c in reply["checks"]}
    assert by_name["job file"]["ok"] and by_name["source key"]["ok"]
    assert by_name["target key"] == {
        "check": "target key", "subject": f"Opendatasoft {sites.ods_url}", "ok": False,
        "detail": by_name["target key"]["detail"]}
    assert "[target] api_key" in by_name["target key"]["detail"]


async def test_check_job_is_the_python_api(sites: Sites, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P_TARGET_KEY", DP_KEY)
    checks = await check_job(load_job(write_job(sites, to_datapress(sites))))
    assert all(isinstance(c, Check) and c.ok for c in checks)
    assert [c.check for c in checks] == ["job file", "source api", "source key",
                                         "target key", "target ids", "target permissions"]


@pytest.mark.parametrize("portal", ["ckan", "ods", "datapress"])
def test_every_source_is_asked_too(sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                                   portal: str) -> None:
    """A source a run would only find wrong at its first read (no key; Opendatasoft) is
    asked here what that read would tell."""
    table, key, says = {
        "ckan": (f'type = "ckan"\nurl = "{sites.source_url}"', WRONG_KEY,
                 [f"ok    source CKAN {sites.source_url}: reachable, CKAN 2.12.0 Action API",
                  f"ok    source CKAN {sites.source_url}: no api_key: the public datasets, as "
                  "anyone sees them"]),
        "ods": (f'type = "ods"\nurl = "{sites.ods_url}"\napi_key = "${{P_SOURCE_KEY}}"', ODS_KEY,
                [f"ok    source Opendatasoft {sites.ods_url}: reachable, Automation API v1.0, "
                 "key accepted: 0 datasets to read"]),
        "datapress": (f'type = "datapress"\nurl = "{sites.dp_url}"\napi_key = "${{P_SOURCE_KEY}}"',
                      DP_KEY, [f"ok    source DataPress {sites.dp_url}: reachable, DataPress "
                               "API at /api/v3, key of admin 'Migration Admin'"]),
    }[portal]
    monkeypatch.setenv("P_SOURCE_KEY", key)
    path = Path("job.toml")
    path.write_text(f'kind = "migrate"\nname = "sources"\n[source]\n{table}\n'
                    f"[target]\n{to_ckan(sites)}\n")
    code, lines = check(path, capsys, monkeypatch, ADMIN_KEY)
    assert code == 0 and lines[1:1 + len(says)] == says, lines
    sites.reads_only()

    monkeypatch.setenv("P_SOURCE_KEY", WRONG_KEY)
    code, lines = check(path, capsys, monkeypatch, ADMIN_KEY)
    if portal == "ckan":  # no key to be wrong
        assert code == 0
    else:
        assert code == 2
        assert the_failure(lines).startswith(says[0].replace("ok    ", "FAIL  ").split(": ")[0]
                                             + ": [source] api_key: ")


# ---- 1. a key the portal does not know ---------------------------------------------------


@pytest.mark.parametrize("portal", ["ckan", "ods", "datapress"])
def test_a_wrong_key_is_one_line_and_the_source_is_checked_too(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch, portal: str) -> None:
    target, title, url, says = {
        "ckan": (to_ckan(sites), "CKAN", sites.ckan_url, "does not know this key"),
        "ods": (to_ods(sites), "Opendatasoft", sites.ods_url, "refused the key (HTTP 401"),
        "datapress": (to_datapress(sites), "DataPress", sites.dp_url,
                      "the API key was refused (whoami answered null)"),
    }[portal]
    code, lines = check(write_job(sites, target), capsys, monkeypatch, WRONG_KEY)
    assert code == 2
    failed = the_failure(lines)
    assert failed.startswith(f"FAIL  target {title} {url}: [target] api_key: ")
    assert says in failed
    source_passed(lines, sites)
    sites.reads_only()


def test_a_wrong_source_key_fails_while_the_target_passes(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P_SOURCE_KEY", WRONG_KEY)
    code, lines = check(write_job(sites, to_datapress(sites)), capsys, monkeypatch, DP_KEY)
    assert code == 2
    assert the_failure(lines).startswith(
        f"FAIL  source CKAN {sites.source_url}: [source] api_key: CKAN {sites.source_url} "
        "does not know this key")
    assert (f"ok    target DataPress {sites.dp_url}: admin 'Migration Admin' may create "
            f"datasets in team(s) '{sites.team}'") in lines
    sites.reads_only()


# ---- 2. a valid key that may not write ------------------------------------------------------


def test_a_ckan_editor_outside_the_organization_may_not_write(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    org = sites.ckan.org_names["stadt-zuerich"]
    sites.ckan.members.setdefault(org, {})["joe"] = "member"  # reads, may not create there
    path = write_job(sites, to_ckan(sites, 'organization = "stadt-zuerich"'))
    code, lines = check(path, capsys, monkeypatch, EDITOR_KEY)
    assert code == 2
    assert f"ok    target CKAN {sites.ckan_url}: key of user 'joe'" in lines
    assert the_failure(lines).startswith(
        f"FAIL  target CKAN {sites.ckan_url}: [target] api_key: user 'joe' is neither a "
        "sysadmin nor an editor of organization(s) 'stadt-zuerich'")
    source_passed(lines, sites)
    sites.reads_only()

    sites.ckan.members[org]["joe"] = "editor"
    code, lines = check(path, capsys, monkeypatch, EDITOR_KEY)
    assert code == 0
    assert (f"ok    target CKAN {sites.ckan_url}: user 'joe' may create datasets in "
            "'stadt-zuerich'") in lines


def test_a_datapress_user_outside_the_team_may_not_write(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines = check(write_job(sites, to_datapress(sites)), capsys, monkeypatch,
                        DP_OTHER_KEY)
    assert code == 2
    assert the_failure(lines).startswith(
        f"FAIL  target DataPress {sites.dp_url}: [target] api_key: user 'Ed Itor' is neither "
        f"an admin nor a member of team(s) '{sites.team}'")
    source_passed(lines, sites)
    sites.reads_only()


# ---- 3. a team or masthead DataPress lacks -------------------------------------------------


def test_an_unknown_datapress_team_and_masthead_are_one_line(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_job(sites, to_datapress(sites, team="zz9zz", masthead="nope"))
    code, lines = check(path, capsys, monkeypatch, DP_KEY)
    assert code == 2
    failed = the_failure(lines)
    assert failed.startswith(f"FAIL  target DataPress {sites.dp_url}: [target] team = 'zz9zz': "
                             f"no such team on DataPress {sites.dp_url}")
    assert "masthead = 'nope': no such masthead" in failed
    assert f"ok    target DataPress {sites.dp_url}: reachable" in "\n".join(lines)
    source_passed(lines, sites)
    sites.reads_only()


# ---- 4. a CKAN organization missing, creation off -----------------------------------------


def test_a_missing_ckan_organization_with_creation_off(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_job(sites, to_ckan(sites, 'organization = "nowhere"\n'
                                           "create_organizations = false"))
    code, lines = check(path, capsys, monkeypatch, ADMIN_KEY)
    assert code == 2
    assert the_failure(lines).startswith(
        f"FAIL  target CKAN {sites.ckan_url}: [target] organization = 'nowhere': no such "
        f"organization on CKAN {sites.ckan_url}, and create_organizations = false")
    source_passed(lines, sites)
    sites.reads_only()
    assert "nowhere" not in sites.ckan.org_names


# ---- 5. an Opendatasoft licence id the domain lacks ----------------------------------------


def test_an_unknown_opendatasoft_licence_id(sites: Sites, capsys: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_job(sites, to_ods(sites, '[target.licenses]\n"cc-by" = "cc-by-99"'))
    code, lines = check(path, capsys, monkeypatch, ODS_KEY)
    assert code == 2
    assert the_failure(lines).startswith(
        f"FAIL  target Opendatasoft {sites.ods_url}: [target.licenses] 'cc-by' = 'cc-by-99': "
        f"no such licence id on Opendatasoft {sites.ods_url} (its licences: 38js5ao (CC BY "
        "4.0), odbl01x (ODbL))")
    source_passed(lines, sites)
    sites.reads_only()


# ---- 6. a mark field the domain lacks ---------------------------------------------------------


@pytest.mark.parametrize(("mark", "says"), [
    ("nothing.source_id", "mark_field 'nothing.source_id': template 'nothing' does not exist"),
    ("custom.other", "mark_field 'custom.other': 'other' is not a field of template 'custom'"),
])
def test_a_missing_mark_field(sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch,
                              mark: str, says: str) -> None:
    target = to_ods(sites).replace("custom.bulkport_source_id", mark)
    code, lines = check(write_job(sites, target, kind="mirror"), capsys, monkeypatch, ODS_KEY)
    assert code == 2
    assert the_failure(lines) == (f"FAIL  target Opendatasoft {sites.ods_url}: [target] {says} "
                                  f"on {sites.ods_url}")
    source_passed(lines, sites)
    sites.reads_only()


# ---- revoke-tokens jobs ---------------------------------------------------------------------


def revoke_job(url: str, *, type: str = "ckan", users: str = "") -> Path:
    path = Path("revoke.toml")
    path.write_text(f'kind = "revoke-tokens"\nname = "preflight-revoke"\n'
                    f'[target]\ntype = "{type}"\nurl = "{url}"\napi_key = "${{P_TARGET_KEY}}"\n'
                    f'[filter]\nname = "datapusher"\n{users}\n')
    return path


def test_a_revocation_checks_the_key_and_the_listing_and_revokes_nothing(
        sites: Sites, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = dict(sites.ckan.accounts.tokens)
    code, lines = check(revoke_job(sites.ckan_url), capsys, monkeypatch, ADMIN_KEY)
    assert code == 0, lines
    assert lines[1:] == [
        f"ok    target CKAN {sites.ckan_url}: key of a sysadmin: may list and revoke every "
        "user's tokens",
        f"ok    target CKAN {sites.ckan_url}: may list the tokens of every user (6 users)"]

    _, own = sites.ckan.accounts.create_token("user001", "datapusher")
    code, lines = check(revoke_job(sites.ckan_url), capsys, monkeypatch, own)
    assert code == 2  # every user's tokens: a sysadmin's key only
    assert lines[2].startswith(f"FAIL  target CKAN {sites.ckan_url}: CKAN {sites.ckan_url} "
                               "refused a sysadmin-only call")

    path = revoke_job(sites.ckan_url, users='users = ["user001", "user002"]')
    code, lines = check(path, capsys, monkeypatch, own)
    assert code == 2
    assert (f"ok    target CKAN {sites.ckan_url}: key of user 'user001', not a sysadmin: may "
            "list and revoke its own tokens only") in lines
    assert "refused to list the tokens of user 'user002'" in the_failure(lines)

    for job in (path, revoke_job(sites.ckan_url)):  # a wrong key, users named or not
        code, lines = check(job, capsys, monkeypatch, WRONG_KEY)
        assert code == 2
        assert the_failure(lines).startswith(
            f"FAIL  target CKAN {sites.ckan_url}: [target] api_key: CKAN {sites.ckan_url} does "
            "not know this key")
    sites.reads_only()
    assert set(tokens) <= set(sites.ckan.accounts.tokens)  # none revoked


def test_an_opendatasoft_revocation_checks_the_key(sites: Sites, capsys: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sites.ods.apikeys.create("admin", "datapusher")
    code, lines = check(revoke_job(sites.ods_url, type="ods"), capsys, monkeypatch, ODS_KEY)
    assert code == 0, lines
    assert lines[1].startswith(f"ok    target Opendatasoft {sites.ods_url}: reachable, key "
                               "accepted: it may list 1 API key(s)")
    code, lines = check(revoke_job(sites.ods_url, type="ods"), capsys, monkeypatch, WRONG_KEY)
    assert code == 2
    assert "[target] api_key" in the_failure(lines)
    sites.reads_only()
    assert not any(k.revoked_at for k in sites.ods.apikeys.keys.values())
