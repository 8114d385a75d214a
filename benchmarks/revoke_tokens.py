"""Benchmark: revoke 1,620 stale ``datapusher`` tokens on a simulated CKAN.

Two identical simulated CKAN sites run in their own processes, each with one sysadmin
holding 1,620 ``datapusher`` tokens and 5 others, and a fixed latency added to every
request. On one, a sequential loop revokes the tokens one at a time (what a hand-written
script does); on the other, ``bulkport run --yes`` does, as a user runs it. Both times, and
their ratio, are printed from the same run.

    python benchmarks/revoke_tokens.py [--tokens 1620] [--latency 0.02] [--connections 16,32,64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from harness import free_port, run_bulkport

KEY = "bench-sysadmin-key-0001"
USER = "ckan_admin"


def serve_site(port: int, tokens: int, latency: float) -> None:
    """A CKAN simulator whose sysadmin holds ``tokens`` datapusher tokens (and 5 others)."""
    from bulkport.testing import CkanStore, Faults, create_ckan_app, serve

    store = CkanStore(seed=1)
    store.accounts.add_user(USER, sysadmin=True)
    for i in range(tokens + 5):
        store.accounts.create_token(USER, "datapusher" if i < tokens else "jupyter",
                                    created_at=f"2024-03-{1 + i % 28:02d}T00:00:{i % 60:02d}")
    app = create_ckan_app(store, api_keys={KEY: USER}, faults=Faults(latency=latency))

    async def run() -> None:
        async with serve(app, port=port):
            await asyncio.Event().wait()

    asyncio.run(run())


def start_site(tokens: int, latency: float) -> tuple[multiprocessing.Process, str]:
    port = free_port()
    proc = multiprocessing.Process(target=serve_site, args=(port, tokens, latency), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/3/action/status_show", timeout=2).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the CKAN simulator did not start")


def action(url: str, name: str, data: dict | None = None) -> object:
    """One Action API call, the way a plain script makes it."""
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(f"{url}/api/3/action/{name}", data=body, headers={
        "Authorization": KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["result"]


def sequential(url: str) -> tuple[float, int]:
    """List the user's tokens, then revoke each datapusher token by jti, one at a time."""
    start = time.perf_counter()
    tokens = action(url, f"api_token_list?user_id={USER}")
    assert isinstance(tokens, list)
    revoked = 0
    for token in tokens:
        if token["name"] == "datapusher":
            action(url, "api_token_revoke", {"jti": token["id"]})
            revoked += 1
    return time.perf_counter() - start, revoked


def with_bulkport(url: str, connections: int, tmp: Path) -> tuple[float, dict]:
    job = tmp / "revoke.toml"
    job.write_text(f"""
kind = "revoke-tokens"
name = "bench"
[target]
type = "ckan"
url = "{url}"
api_key = "${{BENCH_KEY}}"
[filter]
name = "datapusher"
[options]
connections = {connections}
""")
    os.environ["BENCH_KEY"] = KEY
    run = run_bulkport(job, tmp / "state", tmp / "report.json", "--yes")
    if run.exit != 0:
        raise SystemExit(f"bulkport exited with {run.exit}")
    return run.wall, run.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1620)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--connections", default="16,32,64",
                        help="bulkport runs, one per connection count (default %(default)s)")
    args = parser.parse_args()

    runs: list[tuple[int, float, dict]] = []
    for connections in (int(c) for c in args.connections.split(",")):
        site, url = start_site(args.tokens, args.latency)  # a fresh site per run
        try:
            with tempfile.TemporaryDirectory() as tmp:
                runs.append((connections, *with_bulkport(url, connections, Path(tmp))))
        finally:
            site.terminate()
    loop_site, loop_url = start_site(args.tokens, args.latency)
    try:
        loop_time, loop_revoked = sequential(loop_url)
    finally:
        loop_site.terminate()

    print(f"{args.tokens:,} datapusher tokens, {args.latency * 1000:.0f} ms latency per request")
    print(f"  sequential loop: {loop_time:6.2f} s  ({loop_revoked:,} revoked, one request at a time)")
    print("  bulkport run --yes (wall time with process start; inside the run; ideal):")
    for connections, elapsed, report in runs:
        ideal = args.tokens / connections * args.latency
        print(f"    {connections:3d} connections: {elapsed:6.2f} s; {report['seconds']:5.2f} s; "
              f"{ideal:5.2f} s  → {loop_time / elapsed:5.1f}× faster "
              f"({report['counts'].get('revoked', 0):,} revoked, "
              f"{report['requests']['total']:,} requests)")
        if report["counts"].get("revoked", 0) != args.tokens:
            raise SystemExit("not every token was revoked")
    print("  target: ≥ 20× faster than the sequential loop")
    if loop_revoked != args.tokens:
        raise SystemExit("the sequential loop did not revoke every token")


if __name__ == "__main__":
    main()
