"""The revoke-tokens job against the simulators; assertions on the final token state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from interrupt import kill_at_random_moments, kill_when_journaled
from state_rows import count_journaled, every_byte

from bulkport.cli import main
from bulkport.history import History
from bulkport.store import StateStore
from bulkport.testing import (
    CkanStore,
    Faults,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_portaljs_app,
)
from bulkport.testing.ckan.tokens import seed_tokens
from bulkport.testing.ods.apikeys import seed_apikeys
from bulkport.testing.ods.app import create_ods_app

ADMIN_KEY = "legacy-sysadmin-key-5e1f"


@dataclass
class Site:
    store: CkanStore
    url: str
    issued: dict[str, str]  # jti → token value

    def datapusher(self, keep_newest: int = 0) -> set[str]:
        """The jtis the datapusher job must revoke, worked out from the seeded tokens."""
        by_user: dict[str, list] = defaultdict(list)
        for token in self.store.accounts.tokens.values():
            if token.name == "datapusher":
                by_user[token.user_id].append(token)
        chosen = set()
        for tokens in by_user.values():
            tokens.sort(key=lambda t: t.created_at, reverse=True)
            chosen |= {t.id for t in tokens[keep_newest:]}
        return chosen


@pytest.fixture
def make_site() -> Iterator:
    servers: list[ThreadedServer] = []

    def make(users: int = 50, tokens: int = 5000, faults: Faults | None = None) -> Site:
        store = CkanStore(seed=4)
        issued = seed_tokens(store.accounts, users=users, tokens=tokens, seed=4)
        server = ThreadedServer(lambda: create_ckan_app(
            store, api_keys={ADMIN_KEY: "admin"}, faults=faults)).start()
        servers.append(server)
        return Site(store, server.url, issued)

    yield make
    for server in servers:
        server.stop()


def write_job(path: Path, url: str, *, filter: str = 'name = "datapusher"', type: str = "ckan",
              options: str = "connections = 16") -> Path:
    path.write_text(f"""
kind = "revoke-tokens"
name = "revoke-test"
[target]
type = "{type}"
url = "{url}"
api_key = "${{TEST_TOKEN_KEY}}"
[filter]
{filter}
[options]
{options}
""")
    return path


def run(job: Path, state: Path, *args: str, key: str = ADMIN_KEY) -> int:
    os.environ["TEST_TOKEN_KEY"] = key
    return main(["run", str(job), "--state-dir", str(state), "--no-progress", *args])


def report_of(state: Path) -> dict:
    return json.loads((state / "report.json").read_text())


@pytest.mark.parametrize("keep_newest", [0, 1])
def test_revokes_exactly_the_filtered_tokens(make_site, tmp_path: Path, capsys,
                                             keep_newest: int) -> None:
    site = make_site()
    before = set(site.store.accounts.tokens)
    expected = site.datapusher(keep_newest)
    assert 1000 < len(expected) < len(before)
    job = write_job(tmp_path / "job.toml", site.url,
                    filter=f'name = "datapusher"\nkeep_newest = {keep_newest}')

    # The dry run changes nothing and plans the very same set.
    assert run(job, tmp_path / "dry") == 0
    assert set(site.store.accounts.tokens) == before
    dry = report_of(tmp_path / "dry")
    assert dry["dry_run"] and {a["id"] for a in dry["actions"]} == expected
    assert f"DRY RUN: {len(expected):,} token(s) would be revoked" in capsys.readouterr().out

    csv = tmp_path / "revoked.csv"
    assert run(job, tmp_path / "state", "--yes", "--csv", str(csv)) == 0
    assert set(site.store.accounts.tokens) == before - expected
    report = report_of(tmp_path / "state")
    assert report["ok"] and report["counts"]["revoked"] == len(expected)
    assert {a["id"] for a in report["actions"] if a["outcome"] == "revoked"} == expected
    row = report["actions"][0]
    assert set(row) == {"id", "user", "name", "created_at", "last_access", "outcome"}
    assert csv.read_text().splitlines()[0] == "id,user,name,created_at,last_access,outcome"
    assert len(csv.read_text().splitlines()) == len(expected) + 1

    # No token value anywhere a user can read.
    output = capsys.readouterr()
    texts = [output.out.encode(), output.err.encode(), csv.read_bytes(),
             every_byte(tmp_path / "state")]
    for value in site.issued.values():
        assert not any(value.encode() in text for text in texts)

    # Finished for good: the journal is empty and a new run finds nothing left.
    assert count_journaled(tmp_path / "state") == 0
    assert run(job, tmp_path / "state", "--yes") == 0
    assert report_of(tmp_path / "state")["counts"].get("revoked", 0) == 0


def test_two_revocations_leave_two_audits_in_the_history(make_site, tmp_path: Path,
                                                        capsys) -> None:
    site = make_site(users=4, tokens=120)
    accounts, state = site.store.accounts, tmp_path / "state"

    def datapusher_of(user: str) -> set[str]:
        return {t.id for t in accounts.tokens.values()
                if t.name == "datapusher" and t.user_id == accounts.users[user].id}

    first, second = datapusher_of("user000"), datapusher_of("user001")
    assert first and second
    for user in ("user000", "user001"):
        job = write_job(tmp_path / "job.toml", site.url,
                        filter=f'name = "datapusher"\nusers = ["{user}"]')
        assert run(job, state) == 0  # a dry run first: it is in the history too
        assert run(job, state, "--yes") == 0
    capsys.readouterr()

    assert main(["history", str(job), "--state-dir", str(state)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in lines[1:]] == ["dry", "real", "dry", "real"]
    assert all("revoke-tokens" in line for line in lines[1:])

    for number, tokens in ((2, first), (4, second)):
        assert main(["show", str(job), str(number), "--state-dir", str(state),
                     "--action", "revoked"]) == 0
        shown = capsys.readouterr().out
        listed = {line.split()[2] for line in shown.splitlines() if line.startswith("  revoked")}
        assert listed == tokens
        assert f"tokens revoked {len(tokens)}" in shown

    # One JSON audit per run, none overwritten.
    audits = sorted((state / "reports").glob("*.json"))
    assert len(audits) == 4
    revoked = [{a["id"] for a in json.loads(p.read_text())["actions"] if a["outcome"] == "revoked"}
               for p in audits]
    assert first in revoked and second in revoked


def test_a_run_refused_by_the_lock_is_in_the_history(make_site, tmp_path: Path,
                                                     capsys) -> None:
    site = make_site(users=2, tokens=20)
    state = tmp_path / "state"
    job = write_job(tmp_path / "job.toml", site.url)
    with StateStore(state):  # another run holds the state directory
        assert run(job, state, "--yes") == 2
    assert "another bulkport run" in capsys.readouterr().err
    assert main(["history", str(job), "--state-dir", str(state)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert "aborted" in line and "another bulkport run" in line


def test_survives_ten_percent_faults(make_site, tmp_path: Path) -> None:
    site = make_site(users=20, tokens=1500, faults=Faults(error_rate=0.1, retry_after=0.05,
                                                          seed=9))
    expected = site.datapusher()
    before = set(site.store.accounts.tokens)
    job = write_job(tmp_path / "job.toml", site.url, options="connections = 16\nretries = 10")
    assert run(job, tmp_path / "state", "--yes") == 0
    assert site.store.stats["faults"] > 50
    assert set(site.store.accounts.tokens) == before - expected


@dataclass
class Killable:
    """A revocation run in a subprocess, on a slow site, to be killed half-way."""

    site: Site
    expected: set[str]
    before: set[str]
    state: Path
    env: dict[str, str]
    command: list[str]


def killable(make_site: Callable[..., Site], tmp_path: Path, tokens: int) -> Killable:
    site = make_site(users=10, tokens=tokens, faults=Faults(latency=0.01))
    job = write_job(tmp_path / "job.toml", site.url, options="connections = 4",
                    filter='name = "datapusher"\nkeep_newest = 1')
    state = tmp_path / "state"
    return Killable(site, site.datapusher(keep_newest=1), set(site.store.accounts.tokens),
                    state, {**os.environ, "TEST_TOKEN_KEY": ADMIN_KEY},
                    [sys.executable, "-m", "bulkport", "run", str(job), "--state-dir",
                     str(state), "--no-progress", "--yes"])


def test_kill_9_then_resume_ends_like_an_uninterrupted_run(make_site, tmp_path: Path) -> None:
    k = killable(make_site, tmp_path, 1200)
    site, expected, before, state, env, command = (k.site, k.expected, k.before, k.state,
                                                   k.env, k.command)
    kill_when_journaled(command, env, state, "token", 60)
    gone = before - set(site.store.accounts.tokens)
    assert 60 <= len(gone) < len(expected)  # really interrupted mid-run
    assert gone <= expected
    stored = every_byte(state)
    assert not any(value.encode() in stored for value in site.issued.values())

    # New datapusher tokens appear meanwhile: the resumed run keeps to its plan.
    site.store.accounts.create_token("user000", "datapusher")
    assert subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0
    assert set(site.store.accounts.tokens) - {*before} != set()
    assert before - set(site.store.accounts.tokens) == expected
    report = report_of(state)
    assert {a["id"] for a in report["actions"]} == expected
    assert any("resumed an unfinished run" in note for note in report["notes"])


@pytest.mark.parametrize("seed", [3, 4])
def test_kill_9_at_random_moments_then_resume_revokes_each_once(make_site, tmp_path: Path,
                                                               seed: int) -> None:
    k = killable(make_site, tmp_path, 900)
    site, expected, before, state, env, command = (k.site, k.expected, k.before, k.state,
                                                   k.env, k.command)
    delays = kill_at_random_moments(command, env, seed=seed, kills=4, longest=2.0,
                                    state=state)
    assert subprocess.run(command, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0, delays
    assert before - set(site.store.accounts.tokens) == expected, delays

    # Across the killed runs' history each token was revoked once; one whose revocation
    # was cut off before it was journaled is found gone by the next run.
    with StateStore(state, shared=True) as store:
        history = History(store)
        revoked: list[str] = []
        gone: set[str] = set()
        revoking_runs = 0
        for past in history.runs():
            before_run = len(revoked)
            for action in history.actions(past.id, entities=("token",)):
                if action.action == "revoked":
                    revoked.append(action.source_id)
                elif action.action == "already_gone":
                    gone.add(action.source_id)
            revoking_runs += len(revoked) > before_run
    assert revoking_runs >= 2, delays  # really cut off mid-run at least once
    assert len(revoked) == len(set(revoked)), delays
    assert set(revoked) | gone == expected, delays


def test_a_wrong_key_stops_at_the_first_request(make_site, tmp_path: Path, capsys) -> None:
    site = make_site(users=5, tokens=100)
    job = write_job(tmp_path / "job.toml", site.url)
    assert run(job, tmp_path / "state", "--yes", key="not-a-key") == 2
    assert site.store.stats.requests == 1
    assert "the API key is wrong, or it is not a sysadmin's" in capsys.readouterr().out
    assert len(site.store.accounts.tokens) == 100


def test_a_non_sysadmin_key_is_explained(make_site, tmp_path: Path, capsys) -> None:
    site = make_site(users=5, tokens=200)
    accounts = site.store.accounts
    jti, own = accounts.create_token("user001", "datapusher")  # the run's own token
    job = write_job(tmp_path / "job.toml", site.url)
    assert run(job, tmp_path / "s1", "--yes", key=own) == 2
    assert 'name that user in [filter] users = ["<user name>"]' in capsys.readouterr().out

    job = write_job(tmp_path / "job.toml", site.url,
                    filter='name = "datapusher"\nusers = ["user001", "user002"]')
    assert run(job, tmp_path / "s2", "--yes", key=own) == 2
    assert "refused to list the tokens of user 'user002'" in capsys.readouterr().out

    # Listing only itself works; the run's own token is spared and said so.
    mine = {t.id for t in accounts.tokens.values()
            if t.name == "datapusher" and t.user_id == accounts.users["user001"].id}
    job = write_job(tmp_path / "job.toml", site.url,
                    filter='name = "datapusher"\nusers = ["user001"]')
    assert run(job, tmp_path / "s3", "--yes", key=own) == 0
    left = {t for t in mine if t in accounts.tokens}
    assert left == {jti}
    report = report_of(tmp_path / "s3")
    assert report["counts"]["skipped_in_use_by_this_run"] == 1
    assert any("is the one this run uses" in note for note in report["notes"])


def test_a_plan_from_another_filter_is_not_resumed(make_site, tmp_path: Path, capsys) -> None:
    site = make_site(users=3, tokens=60)
    state = tmp_path / "state"
    job = write_job(tmp_path / "job.toml", site.url)
    # An unfinished run: its plan is sealed, nothing revoked yet.
    with StateStore(state) as store:
        store.journal.record("plan", "sealed", filter="something else", size=3)
    assert run(job, state, "--yes") == 2
    assert "was planned with another [filter]" in capsys.readouterr().out
    assert len(site.store.accounts.tokens) == 60


@pytest.fixture
def ods_domain() -> Iterator[tuple[OdsStore, str]]:
    store = OdsStore(seed=2)
    server = ThreadedServer(lambda: create_ods_app(store, api_keys={ADMIN_KEY})).start()
    yield store, server.url
    server.stop()


def test_opendatasoft_api_keys(ods_domain: tuple[OdsStore, str], tmp_path: Path,
                               capsys) -> None:
    store, url = ods_domain
    issued = seed_apikeys(store.apikeys, users=10, count=2500, seed=3)
    own = store.apikeys.create("admin", "datapusher")  # the run's key, listed like any other
    store.apikeys.admins.add("admin")
    created = {uid: k.created_at for uid, k in store.apikeys.keys.items()}
    by_user: dict[str, list[str]] = defaultdict(list)
    for uid, k in store.apikeys.keys.items():
        if k.label == "datapusher" and uid != own.uid:
            by_user[k.username].append(uid)
    expected = {uid for uids in by_user.values()
                for uid in sorted(uids, key=created.__getitem__)[:-2]}
    job = write_job(tmp_path / "job.toml", url, type="ods",
                    filter='name = "datapusher"\nkeep_newest = 2')
    assert run(job, tmp_path / "state", "--yes", "--reason", "rotation 2026-11",
               key=own.key) == 0
    revoked = {uid for uid, k in store.apikeys.keys.items() if k.revoked_at}
    assert revoked == expected
    assert {store.apikeys.keys[uid].revocation_reason for uid in revoked} == {"rotation 2026-11"}
    assert store.stats["GET /apikeys/"] == 3  # 2,501 keys: three pages of 1,000
    output = capsys.readouterr()
    texts = [output.out, output.err, (tmp_path / "state" / "report.json").read_text()]
    for value in [*issued.values(), own.key]:
        assert not any(value in text for text in texts)


def test_portaljs_tokens(tmp_path: Path) -> None:
    store = CkanStore(seed=7)
    seed_tokens(store.accounts, users=4, tokens=200, seed=7)
    server = ThreadedServer(lambda: create_portaljs_app(
        store, portal="acme", api_keys={ADMIN_KEY: "admin"})).start()
    try:
        datapusher = {j for j, t in store.accounts.tokens.items() if t.name == "datapusher"}
        others = set(store.accounts.tokens) - datapusher
        job = write_job(tmp_path / "job.toml", server.url + "/@acme", type="portaljs")
        assert run(job, tmp_path / "state", "--yes") == 0
        assert set(store.accounts.tokens) == others
    finally:
        server.stop()


def test_a_token_gone_before_its_revocation_counts_as_revoked(make_site, tmp_path: Path) -> None:
    # Lost replies make the run revoke again what is already gone; to a non-sysadmin CKAN
    # then answers 403, which must not stop the run nor count as a failure.
    site = make_site(users=3, tokens=300, faults=Faults(error_rate=0.3, kinds=("drop_after",),
                                                        seed=5))
    accounts = site.store.accounts
    jti, own = accounts.create_token("user001", "ci")
    mine = {t.id for t in accounts.tokens.values()
            if t.name == "datapusher" and t.user_id == accounts.users["user001"].id}
    job = write_job(tmp_path / "job.toml", site.url,
                    filter='name = "datapusher"\nusers = ["user001"]')
    assert run(job, tmp_path / "state", "--yes", key=own) == 0
    assert not mine & set(accounts.tokens) and jti in accounts.tokens
    counts = report_of(tmp_path / "state")["counts"]
    assert counts["already_gone"] > 0
    assert counts["revoked"] + counts["already_gone"] == len(mine)
