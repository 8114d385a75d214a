"""A run whose records keep failing the same way stops with that error: one line, exit 2,
the report written, the journal kept; a success in between, or another cause, goes on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from mirror_sites import by_mark

from bulkport.breaker import Breaker, RepeatedFailure, shape
from bulkport.cli import main
from bulkport.errors import NotFound, ServerError, ValidationError
from bulkport.testing import CkanStore, ThreadedServer, create_ckan_app, seed_ckan
from bulkport.testing.ckan.tokens import seed_tokens

KEY = "breaker-test-key-60d2"
DATASETS = 60


def test_record_specific_parts_are_masked() -> None:
    one = ValidationError("organization 'city-transport' does not exist on CKAN http://127.0.0.1:5000")
    other = ValidationError("organization 'region-skane' does not exist on CKAN http://127.0.0.1:5000")
    assert shape(one) == shape(other)
    assert shape(NotFound("dataset da_1x2y3z gone (HTTP 404)")) == shape(
        NotFound("dataset da_9q8r7s gone (HTTP 404)"))
    assert shape(one) != shape(NotFound("organization 'x' does not exist on CKAN http://h"))
    assert shape(one) != shape(ValidationError("title 'x' is too long"))


def test_the_same_error_stops_only_when_it_repeats_in_a_row() -> None:
    breaker = Breaker(3)
    same = [ValidationError(f"licence 'l{n}' is unknown") for n in range(6)]
    breaker.failure(same[0])
    breaker.failure(same[1])
    breaker.success()  # a dataset went through: the two before were not one cause
    breaker.failure(same[2])
    breaker.failure(ServerError("server error 500"))  # another cause
    breaker.failure(same[3])
    breaker.failure(same[4])
    with pytest.raises(RepeatedFailure) as stopped:
        breaker.failure(same[5])
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("stopped after 3 datasets in a row failed with the same error")
    assert message.endswith("ValidationError: licence 'l5' is unknown")


def test_a_limit_of_zero_never_stops() -> None:
    breaker = Breaker(0)
    for n in range(100):
        breaker.failure(ValidationError(f"licence 'l{n}' is unknown"))


@pytest.fixture
def sites() -> Iterator[tuple[CkanStore, str, CkanStore, str]]:
    source, target = CkanStore(seed=51), CkanStore(seed=52)
    seed_ckan(source, datasets=DATASETS, resources=1, file_size=200, seed=51)
    servers = [ThreadedServer(lambda s=store: create_ckan_app(s, api_keys={KEY: "admin"})).start()
               for store in (source, target)]
    yield source, servers[0].url, target, servers[1].url
    for server in servers:
        server.stop()


def _job(folder: Path, kind: str, source_url: str, target_url: str, options: str = "") -> Path:
    job = folder / f"{kind}.toml"
    job.write_text(f"""
kind = "{kind}"
name = "breaker"
[source]
type = "ckan"
url = "{source_url}"
api_key = "${{BREAKER_KEY}}"
include_private = true
[target]
type = "ckan"
url = "{target_url}"
api_key = "${{BREAKER_KEY}}"
create_organizations = false    # and the source's organizations are missing there
[options]
connections = 2
dataset_workers = 2
{options}
""")
    os.environ["BREAKER_KEY"] = KEY
    return job


def _run(job: Path, state: Path, report: Path, *args: str) -> int:
    return main(["run", str(job), "--state-dir", str(state), "--no-progress",
                 "--report", str(report), *args])


@pytest.mark.parametrize("kind", ["migrate", "mirror"])
def test_every_dataset_failing_the_same_way_stops_the_run(sites, tmp_path: Path, capsys,
                                                          kind: str) -> None:
    source, source_url, target, target_url = sites
    job = _job(tmp_path, kind, source_url, target_url)
    state, report = tmp_path / "state", tmp_path / "report.json"
    assert _run(job, state, report) == 2
    output = capsys.readouterr()
    line = next(x for x in output.out.splitlines() if "ABORTED" in x)
    assert "stopped after 20 datasets in a row failed with the same error" in line
    assert "does not exist on CKAN" in line and "Traceback" not in output.err
    written = json.loads(report.read_text())
    assert "in a row" in written["aborted"]
    assert 20 <= written["counts"]["failed"] < DATASETS  # not the whole catalog
    assert not target.packages

    # Once the cause is gone, the same state finishes the work: nothing lost, nothing twice.
    for org in source.organizations.values():
        target.save_org(dict(org))
    assert _run(job, state, report) == 0
    active = {p["id"] for p in source.packages.values() if p["state"] == "active"}
    assert set(by_mark(target)) == active


def test_with_max_repeated_failures_0_the_run_goes_through(sites, tmp_path: Path) -> None:
    _, source_url, _, target_url = sites
    job = _job(tmp_path, "migrate", source_url, target_url, "max_repeated_failures = 0")
    report = tmp_path / "report.json"
    assert _run(job, tmp_path / "state", report) == 1
    counts = json.loads(report.read_text())["counts"]
    assert counts["failed"] == counts["datasets_listed_by_source"]


def test_revocations_failing_the_same_way_stop(tmp_path: Path, capsys) -> None:
    store = CkanStore(seed=53)
    seed_tokens(store.accounts, users=5, tokens=80, seed=53)

    @web.middleware
    async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.endswith("/api_token_revoke"):
            return web.json_response({"success": False, "error": {
                "__type": "Validation Error", "jti": ["Token revocation is disabled"]}},
                status=409)
        return await handler(request)

    def app() -> web.Application:
        made = create_ckan_app(store, api_keys={KEY: "admin"})
        made.middlewares.insert(0, refuse)
        return made

    with ThreadedServer(app) as server:
        job = tmp_path / "revoke.toml"
        job.write_text(f"""
kind = "revoke-tokens"
name = "breaker-revoke"
[target]
type = "ckan"
url = "{server.url}"
api_key = "{KEY}"
[filter]
name = "datapusher"
[options]
connections = 2
""")
        report = tmp_path / "report.json"
        assert _run(job, tmp_path / "state", report, "--yes") == 2
    assert "stopped after 20 tokens in a row failed" in capsys.readouterr().out
    written = json.loads(report.read_text())
    assert 20 <= written["counts"]["failed"] < written["counts"]["tokens_listed"]
