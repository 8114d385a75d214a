"""Running the simulators: in the loop, in a thread, from the command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request

import aiohttp
import pytest

from bulkport.testing.ckan.app import create_ckan_app
from bulkport.testing.ckan.seed import seed_ckan
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.core.server import ThreadedServer, serve

COMMAND = """
import sys
from bulkport.testing.core.server import main
sys.exit(main(sys.argv[1:]))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_on_a_given_port_builds_urls_from_the_request_host() -> None:
    store = CkanStore()
    seed_ckan(store, datasets=2, resources=1)
    port = _free_port()
    async with serve(create_ckan_app(store), port=port) as url:
        assert url == f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session, session.get(
                url + "/api/3/action/package_search",
                headers={"Authorization": "simulator-key"},
                params={"include_private": "true"}) as response:
            body = await response.json()
    hosted = body["result"]["results"][0]["resources"][0]["url"]
    assert hosted.startswith(f"http://127.0.0.1:{port}/dataset/")
    store.close()


def test_threaded_server_serves_synchronous_clients() -> None:
    store = CkanStore()
    with ThreadedServer(lambda: create_ckan_app(store)) as server:
        with urllib.request.urlopen(server.url + "/api/3/action/status_show") as response:
            assert json.load(response)["success"] is True
        assert server.app is not None and server.app["store"] is store
    server.stop()  # a second stop is harmless
    assert store.stats["ckan:status_show"] == 1


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_simulate_command_prints_its_url_and_serves_until_stopped(stop: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", COMMAND, "ckan", "--datasets", "3", "--api-key", "s3cret",
         "--port", "0"], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "s3cret" in line
        url = next(word for word in line.split() if word.startswith("http://"))
        request = urllib.request.Request(
            url + "/api/3/action/package_search?include_private=true",
            headers={"Authorization": "s3cret"})
        with urllib.request.urlopen(request) as response:
            assert json.load(response)["result"]["count"] == 3
    finally:
        process.send_signal(stop)
        assert process.wait(timeout=10) == 0


async def test_simulate_ckan_seeds_tokens_and_shows_its_own_jwt() -> None:
    from bulkport.testing.core.server import build_simulator, parse_args

    app = build_simulator(parse_args(["ckan", "--datasets", "1", "--tokens", "30"]))
    own, seeded = app["banner"]
    token = own.rsplit(" ", 1)[-1]
    assert token.startswith("eyJ") and "30 more API tokens seeded over 20 users" in seeded
    async with serve(app) as url, aiohttp.ClientSession() as session:
        async def call(action: str, key: str, **params: str) -> dict:
            async with session.get(f"{url}/api/3/action/{action}", params=params,
                                   headers={"Authorization": key}) as response:
                return dict(await response.json())

        listed = await call("api_token_list", token, user_id="admin")  # the JWT authenticates
        assert [t["id"] for t in listed["result"]] == [own.split("id ")[1].split(" ")[0]]
        users = await call("user_list", "simulator-key")
        tokens = 0
        for user in users["result"]:
            tokens += len((await call("api_token_list", "simulator-key", user_id=user["name"]))["result"])
        assert tokens == 31
    app["store"].close()


def test_the_cli_loads_no_simulator_to_run_a_job() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, bulkport.cli; bulkport.cli.build_parser(); "
         "print([m for m in sys.modules if m.startswith('bulkport.testing')])"],
        capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize(("argv", "shown", "hidden"), [
    (["simulate", "--help"], ["{ckan,datapress,ods,portaljs}", "--datasets"], ["--tokens"]),
    (["simulate", "ckan", "--help"], ["--tokens", "(default 100)"], ["--template", "--portal"]),
    (["simulate", "--port", "0", "ods", "-h"], ["--template", "(default 0)"], ["--prefix"]),
])
def test_simulate_help_shows_the_options_of_the_simulator_asked_for(
        argv: list[str], shown: list[str], hidden: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    from bulkport.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert all(word in text for word in shown) and not any(word in text for word in hidden)


def test_simulate_options_go_before_or_after_the_simulator() -> None:
    from bulkport.testing.core.server import parse_args

    args = parse_args(["--template", "a:b", "--port", "7", "ods", "--tokens", "3"])
    assert (args.kind, args.port, args.tokens, args.templates) == ("ods", 7, 3, [("a", ["b"])])
    # An option's value may name another simulator: the positional one is the simulator.
    args = parse_args(["--api-key", "ckan", "portaljs", "--portal", "acme"])
    assert (args.kind, args.api_key, args.portal_name) == ("portaljs", "ckan", "acme")
    with pytest.raises(SystemExit):
        parse_args(["ckan", "--portal", "acme"])  # another simulator's option


def test_simulators_are_found_by_package_and_imported_when_asked_for() -> None:
    from bulkport.testing.core.simulator import load, names

    assert names() == ["ckan", "datapress", "ods", "portaljs"]
    assert load("ods").name == "ods" and load("ods").datasets == 0
    with pytest.raises(LookupError):
        load("core")
