"""Real CKAN 2.12 servers for the tests: PostgreSQL, Redis and CKAN under gunicorn, on loopback.

One PostgreSQL cluster and one Redis serve every instance (a database and a Redis db each).
Each instance gets a sysadmin and a real API token (a JWT). Everything lives in one temporary
directory and is stopped and removed by :meth:`Tier.stop`.

Run by hand: ``python tests/real_ckan/tier.py`` starts two instances, prints their URLs and
tokens, and stops them on Ctrl-C.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkport.portals.ckan.tokens import token_id_of

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("BULKPORT_CKAN_VENV", Path.home() / ".cache/bulkport/ckan-2.12"))
SYSADMIN = "admin"
WORKERS = 4  # production CKAN runs several sync workers: races between them are real


class TierUnavailable(RuntimeError):
    """This machine cannot run the tier (not root, or install.sh has not run)."""


@dataclass
class CkanInstance:
    name: str
    url: str
    token: str
    token_id: str  # the JWT's jti: what api_token_revoke takes
    sysadmin: str = SYSADMIN

    def action(self, name: str, data: dict[str, Any] | None = None, *,
               token: str | None = "") -> dict[str, Any]:
        """POST one action; the whole reply (``success``, ``result`` or ``error``)."""
        headers = {"Content-Type": "application/json"}
        key = self.token if token == "" else token
        if key:
            headers["Authorization"] = key
        request = urllib.request.Request(f"{self.url}/api/3/action/{name}",
                                         data=json.dumps(data or {}).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return dict(json.loads(reply.read()))
        except urllib.error.HTTPError as error:
            return dict(json.loads(error.read()))

    def result(self, name: str, data: dict[str, Any] | None = None) -> Any:
        """POST one action as the sysadmin and return its ``result`` (fails loudly otherwise)."""
        reply = self.action(name, data)
        if not reply.get("success"):
            raise AssertionError(f"{name} failed on {self.url}: {reply.get('error')}")
        return reply["result"]

    def wipe(self) -> None:
        """Purge every dataset and organization, so a test starts from an empty portal."""
        while True:
            found = self.result("package_search", {"include_private": True, "include_drafts": True,
                                                   "include_deleted": True, "rows": 1000, "fl": "id"})
            if not found["results"]:
                break
            for row in found["results"]:
                self.result("dataset_purge", {"id": row["id"]})
        for org in self.result("organization_list", {"all_fields": False}):
            self.result("organization_purge", {"id": org})


MakeUser = Callable[[CkanInstance], tuple[str, str]]  # the make_user fixture: (name, token)


def ckan_job(path: Path, source: CkanInstance, target: CkanInstance, *, kind: str = "migrate",
             name: str, target_extra: str = "", retries: int = 2, connections: int = 2) -> Path:
    """A CKAN → CKAN job file between two real CKANs; its keys are ``${RC_SOURCE_KEY}`` and
    ``${RC_TARGET_KEY}`` (the caller sets them: a test may send the wrong one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
kind = "{kind}"
name = "{name}"
[source]
type = "ckan"
url = "{source.url}"
api_key = "${{RC_SOURCE_KEY}}"
include_private = true
[target]
type = "ckan"
url = "{target.url}"
api_key = "${{RC_TARGET_KEY}}"
{target_extra}
[options]
connections = {connections}
retries = {retries}
""")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Tier:
    """A PostgreSQL cluster, a Redis and ``count`` CKAN instances."""

    def __init__(self, count: int = 2) -> None:
        self.count = count
        self.root = Path(tempfile.mkdtemp(prefix="bulkport-real-ckan-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.instances: list[CkanInstance] = []
        self.pg_ctl = ""
        self.pg_port = free_port()
        self.redis_port = free_port()

    @staticmethod
    def check() -> None:
        if not (VENV / "bin" / "ckan").exists():
            raise TierUnavailable(f"no CKAN in {VENV}: run tests/real_ckan/install.sh (as root)")
        if os.geteuid() != 0:
            raise TierUnavailable("the real-CKAN tier runs PostgreSQL as the postgres user: run as root")
        if not glob.glob("/usr/lib/postgresql/*/bin/initdb") or not shutil.which("redis-server"):
            raise TierUnavailable("PostgreSQL or Redis missing: run tests/real_ckan/install.sh")

    def start(self) -> list[CkanInstance]:
        self.check()
        try:
            self._start_postgres()
            self._start_redis()
            with ThreadPoolExecutor(self.count) as pool:
                self.instances = list(pool.map(self._start_ckan, range(self.count)))
        except BaseException:
            self.stop()
            raise
        return self.instances

    def _run(self, args: list[str], **kwargs: Any) -> str:
        done = subprocess.run(args, capture_output=True, text=True, **kwargs)
        if done.returncode != 0:
            command = " ".join(args[:4])
            raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return str(done.stdout)

    def _start_postgres(self) -> None:
        bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
        self.pg_ctl = str(bindir / "pg_ctl")
        data = self.root / "pg"
        data.mkdir()
        postgres = pwd.getpwnam("postgres")
        os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        os.chown(data, postgres.pw_uid, postgres.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
        self._run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"])
        options = (f"-p {self.pg_port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([*as_postgres, self.pg_ctl, "-D", str(data), "-o", options,
                   "-l", str(self.root / "postgres.log"), "-w", "start"])

    def _start_redis(self) -> None:
        self.processes.append(subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))

    def _start_ckan(self, n: int) -> CkanInstance:
        name = f"ckan{n}"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        ini = self.root / f"{name}.ini"
        ckan = [str(VENV / "bin" / "ckan"), "-c", str(ini)]
        self._run(["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-q",
                   "-c", f"CREATE DATABASE {name}"])
        self._run([str(VENV / "bin" / "ckan"), "generate", "config", str(ini)])
        settings = {
            "sqlalchemy.url": f"postgresql://postgres@127.0.0.1:{self.pg_port}/{name}",
            "ckan.site_url": url,
            "ckan.redis.url": f"redis://127.0.0.1:{self.redis_port}/{n}",
            "ckan.storage_path": str(self.root / f"{name}-files"),
            "ckan.plugins": "nosolr",
            "solr_url": "http://127.0.0.1:9/solr/none",  # never reached: see ckanext-nosolr
            "ckan.site_id": name,
        }
        tool = [str(VENV / "bin" / "ckan"), "config-tool", str(ini)]
        self._run([*tool, *(f"{k}={v}" for k, v in settings.items())])
        for logger in ("logger_ckan", "logger_ckanext"):
            self._run([*tool, "-s", logger, "level=WARNING"])
        self._run([*ckan, "db", "init"])
        self._run([*ckan, "user", "add", SYSADMIN, "email=admin@example.org", "password=Sysadmin-pass-1"])
        self._run([*ckan, "sysadmin", "add", SYSADMIN])
        token = self._run([*ckan, "user", "token", "add", SYSADMIN, "bulkport-tests"]).split()[-1]
        env = {**os.environ, "CKAN_INI": str(ini)}
        log = open(self.root / f"{name}-gunicorn.log", "wb")
        self.processes.append(subprocess.Popen(
            [str(VENV / "bin" / "gunicorn"), "--chdir", str(HERE), "-w", str(WORKERS), "-b",
             f"127.0.0.1:{port}", "--timeout", "120", "wsgi:application"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        instance = CkanInstance(name, url, token, token_id_of(token) or "")
        self._wait(instance)
        return instance

    def _wait(self, instance: CkanInstance, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{instance.url}/api/3/action/status_show", timeout=5):
                    return
            except OSError:
                time.sleep(0.3)
        log = (self.root / f"{instance.name}-gunicorn.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"CKAN at {instance.url} did not answer in {timeout:.0f} s:\n{log}")

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)  # gunicorn and its workers
            except (ProcessLookupError, PermissionError):
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.pg_ctl:
            subprocess.run(["runuser", "-u", "postgres", "--", self.pg_ctl, "-D", str(self.root / "pg"),
                            "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


if __name__ == "__main__":
    tier = Tier(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    try:
        for inst in tier.start():
            print(f"{inst.name}: {inst.url}  token: {inst.token}")
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        tier.stop()
