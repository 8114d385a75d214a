"""Every fatal input mistake: one line, exit 2, no traceback, nothing sent, nothing destroyed.

The portals are a tiny server that counts the requests it gets, so each test can say that
the mistake was caught before the first one.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from bulkport import outputs
from bulkport.cli import main
from bulkport.testing.core.server import ThreadedServer
from bulkport.testing.core.server import main as simulate


class Portal:
    def __init__(self, server: ThreadedServer, hits: list[str]) -> None:
        self.url, self.hits = server.url, hits


@pytest.fixture
def portal() -> Iterator[Portal]:
    """A server that answers every request 503 and counts them (no real portal needed)."""
    hits: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(status=503)

    def app() -> web.Application:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", anything)
        return application

    with ThreadedServer(app) as server:
        yield Portal(server, hits)


def job_file(tmp_path: Path, portal: Portal, *, kind: str = "migrate", extra: str = "",
             head: str = "", options: str = "retries = 0", name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(f"""kind = "{kind}"
{head}
[source]
type = "ckan"
url = "{portal.url}/a"
{extra}
[target]
type = "ckan"
url = "{portal.url}/b"
api_key = "target-key"
[options]
{options}
""")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str,
        stream: str = "err") -> tuple[int, list[str]]:
    """Run ``bulkport argv``; return its exit code and the lines of ``stream`` ("err": the
    errors; "out": a run's summary and its report line); never a traceback."""
    code = main(list(argv))
    output = capsys.readouterr()
    assert "Traceback" not in output.err
    return code, getattr(output, stream).splitlines()


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``bulkport argv``; check it stopped with exit 2 and one line; return that line."""
    code, lines = run(capsys, *argv)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default state directory lands in tmp_path/.bulkport


# ---- paths: the state directory and every output, checked before the first request ----

def test_state_dir_that_is_a_file(tmp_path: Path, portal: Portal,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    (tmp_path / "state").write_text("mine")
    line = refused(capsys, "run", str(job), "--state-dir", "state")
    assert line == "error: state directory state: not a directory"
    assert (tmp_path / "state").read_text() == "mine" and not portal.hits


def test_state_dir_that_cannot_be_written(tmp_path: Path, portal: Portal,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    job = job_file(tmp_path, portal)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access  # the tests may run as root, whom permissions do not stop
    monkeypatch.setattr(outputs.os, "access", lambda p, mode: Path(p) != locked
                        and real_access(p, mode))
    line = refused(capsys, "run", str(job), "--state-dir", str(locked / "state"))
    assert line == (f"error: state directory {locked}/state: no permission to write there "
                    f"({locked})")
    assert not portal.hits and not list(locked.iterdir())


@pytest.mark.parametrize("flag", ["--report", "--csv", "--log-file"])
def test_an_output_that_is_a_directory(tmp_path: Path, portal: Portal, flag: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    (tmp_path / "out").mkdir()
    line = refused(capsys, "run", str(job), flag, "out")
    assert line == f"error: {flag} out: is a directory, not a regular file; name a file to write"
    assert not portal.hits and (tmp_path / "out").is_dir()
    assert not (tmp_path / ".bulkport").exists()


@pytest.mark.parametrize("flag", ["--report", "--csv", "--log-file"])
def test_an_output_that_is_a_fifo_is_left_alone(tmp_path: Path, portal: Portal, flag: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    os.mkfifo(tmp_path / "pipe")
    line = refused(capsys, "run", str(job), flag, "pipe")
    assert line == (f"error: {flag} pipe: is a FIFO (named pipe), not a regular file; name a "
                    "file to write")
    assert stat.S_ISFIFO((tmp_path / "pipe").lstat().st_mode) and not portal.hits


def test_a_symlink_to_something_not_a_file_is_refused(tmp_path: Path, portal: Portal,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # Stands for --report /dev/full, which a rename over it used to replace.
    job = job_file(tmp_path, portal)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    line = refused(capsys, "run", str(job), "--report", "link")
    assert line == (f"error: --report link (→ {tmp_path}/pipe): is a FIFO (named pipe), not a "
                    "regular file; name a file to write")
    assert (tmp_path / "link").is_symlink()
    assert stat.S_ISFIFO((tmp_path / "pipe").lstat().st_mode)


def test_a_symlinked_report_is_followed(tmp_path: Path, portal: Portal,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "last.json").write_text("old")
    (tmp_path / "link").symlink_to(tmp_path / "reports" / "last.json")
    code, lines = run(capsys, "run", str(job), "--dry-run", "--report", "link", stream="out")
    assert code == 2 and lines[-2] == "report: link"  # the 503s abort it; the report is written
    assert (tmp_path / "link").is_symlink()
    assert orjson.loads((tmp_path / "reports" / "last.json").read_bytes())["job"] == "job"
    assert os.listdir(tmp_path / "reports") == ["last.json"]  # no temporary file left


def test_a_regular_report_is_replaced_whole_keeping_its_mode(
        tmp_path: Path, portal: Portal, capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    report = tmp_path / "report.json"
    report.write_text("old")
    report.chmod(0o640)
    before = report.stat().st_ino
    run(capsys, "run", str(job), "--dry-run", "--report", str(report))
    assert orjson.loads(report.read_bytes())["aborted"]
    assert report.stat().st_ino != before  # a new file renamed over the old one
    assert stat.S_IMODE(report.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bulkport", "job.toml", "report.json"]


def test_an_output_that_is_the_job_file(tmp_path: Path, portal: Portal,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    text = job.read_text()
    line = refused(capsys, "run", str(job), "--csv", str(job))
    assert line == f"error: --csv {job}: the same file as the job file; name another file"
    assert job.read_text() == text and not portal.hits


def test_an_output_inside_a_file(tmp_path: Path, portal: Portal,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    (tmp_path / "notes").write_text("mine")
    line = refused(capsys, "run", str(job), "--report", "notes/report.json")
    assert line == f"error: --report notes/report.json: {tmp_path}/notes is not a directory"


def test_an_unwritable_report_after_the_run_is_one_line(
        tmp_path: Path, portal: Portal, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A full disk (or a race) once the run has done its work: the summary, then one line.
    job = job_file(tmp_path, portal)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.tempfile, "mkstemp", full)
    code, lines = run(capsys, "run", str(job), "--dry-run", "--report", "r.json")
    assert code == 2
    assert lines[-1].startswith(f"error: report {tmp_path}/.bulkport/job/reports/")
    assert lines[-1].endswith(".json: cannot write: No space left on device")
    assert lines[0].startswith("DRY RUN: migrate job: ABORTED")


# ---- the job file itself ----

def test_a_job_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.toml"
    job.write_bytes(b'kind = "migrate"\nname = "caf\xe9"\n')
    line = refused(capsys, "run", str(job))
    assert line == (f"error: {job}: not UTF-8 text: byte 0xe9 at line 2, column 12; save the "
                    "file as UTF-8")


@pytest.mark.parametrize("what", ["directory", "fifo"])
def test_a_job_file_that_is_not_a_file(tmp_path: Path, what: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.toml"
    job.mkdir() if what == "directory" else os.mkfifo(job)  # a FIFO would block a reader
    line = refused(capsys, "run", str(job))
    kind = "a directory" if what == "directory" else "not a regular file"
    assert line == f"error: {job}: is {kind}; a job file is a TOML file"


def test_an_empty_job_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "job.toml").write_text("")
    line = refused(capsys, "run", "job.toml")
    assert line == "error: job.toml: a migrate job needs both a [source] and a [target] table"


def test_verify_on_a_job_kind_it_does_not_take(tmp_path: Path, portal: Portal,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "revoke.toml"
    job.write_text(f'kind = "revoke-tokens"\n[target]\ntype = "ckan"\nurl = "{portal.url}"\n'
                   'api_key = "k"\n[filter]\nname = "old"\n')
    line = refused(capsys, "verify", str(job))
    assert line == (f"error: {job}: verify compares the source and target of a migrate or "
                    "mirror job; this is a revoke-tokens job")
    assert not portal.hits


@pytest.mark.parametrize(("name", "shown"), [
    ('"../../elsewhere"', "'../../elsewhere'"), ('"a/b"', "'a/b'"), ('".."', "'..'"),
    ('""', "''"), ('"tab\\there"', "'tab\\there'"),
])
def test_a_name_that_is_a_path(tmp_path: Path, portal: Portal, name: str, shown: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal, head=f"name = {name}")
    line = refused(capsys, "run", str(job))
    assert line == (f"error: {job}: name must be a plain file name (no /, \\ or ..; it names "
                    f"the state directory .bulkport/<name>), got {shown}")
    assert not (tmp_path / ".bulkport").exists() and not portal.hits


def test_a_name_that_is_not_a_string(tmp_path: Path, portal: Portal,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal, head="name = 5")
    assert refused(capsys, "run", str(job)) == f"error: {job}: name must be a string, got 5"


# ---- unknown keys, anywhere ----

@pytest.mark.parametrize(("head", "extra", "options", "expected"), [
    ('sorce = "x"', "", "", "unknown top-level key 'sorce' (did you mean 'source'?); a job file "
                            "holds kind, name, source, target, options, filter"),
    ("", "api_kye = 'x'", "", "[source] unknown key 'api_kye' (did you mean 'api_key'?)"),
    ("", "organisation = 'x'", "", "[source] unknown key 'organisation'"),
    ("", "", "conections = 2", "[options] unknown key 'conections' (did you mean 'connections'?)"),
    ("[mapping]\nlicense = 'x'", "", "", "[mapping] is not read by bulkport: field and value "
                                         "maps are keys of [source] and [target] (fields, "
                                         "licenses, themes, organizations); move them there"),
    ("[filter]\nname = 'x'", "", "", "[filter] belongs to revoke-tokens jobs only"),
])
def test_unknown_keys(tmp_path: Path, portal: Portal, head: str, extra: str, options: str,
                      expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal, head=head, extra=extra, options=options)
    assert refused(capsys, "run", str(job)) == f"error: {job}: {expected}"


def test_an_unknown_filter_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "revoke.toml"
    job.write_text('kind = "revoke-tokens"\n[target]\ntype = "ckan"\nurl = "http://x.test"\n'
                   'api_key = "k"\n[filter]\nnmae = "old"\n')
    assert "did you mean 'name'" in refused(capsys, "run", str(job))


# ---- bounds and semantic checks ----

@pytest.mark.parametrize(("extra", "options", "expected"), [
    ("", "connections = 100000000",
     "[options] connections must be at most 1000, got 100000000 (connections per host)"),
    ("", "dataset_workers = 1000000", "[options] dataset_workers must be at most 10000, got "
                                      "1000000 (datasets handled at once; 0 = four per "
                                      "connection (most of a dataset's time is latency))"),
    ("", "transfers = 100000", "[options] transfers must be at most 256, got 100000 (files "
                               "streamed at once)"),
    ("", "page_size = 5000", "[options] page_size must be at most 1000, got 5000 (records per "
                             "listing page (the portals serve at most 1000))"),
    ("", "page_concurrency = 0", "[options] page_concurrency must be at least 1, got 0 "
                                 "(listing pages read at once)"),
    ("", "retries = 1000", "[options] retries must be at most 100, got 1000 (attempts per "
                           "request before it counts as failed)"),
    ("", "status_poll = 0", "[options] status_poll must be at least 0.01, got 0 (seconds "
                            "between two looks at a processing status)"),
    ("", "rate_limit = 0.5", "[options] rate_limit must be 0 (unlimited) or at least 1 request "
                             "per second, got 0.5"),
    ("rows = 5000", "", "[source] rows must be at most 1000, got 5000 (rows per package_search "
                        "page (default [options] page_size; CKAN serves at most 1000))"),
])
def test_runaway_settings(tmp_path: Path, portal: Portal, extra: str, options: str,
                          expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal, extra=extra, options=options)
    assert refused(capsys, "run", str(job)) == f"error: {job}: {expected}"
    assert not portal.hits


def test_a_runaway_page_size_of_a_listing_by_pages(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.toml"
    job.write_text('[source]\ntype = "ods"\nurl = "https://a.test"\napi_key = "k"\n'
                   'page_size = 100000\n[target]\ntype = "ckan"\nurl = "https://b.test"\n')
    assert refused(capsys, "run", str(job)).startswith(
        f"error: {job}: [source] page_size must be at most 1000, got 100000")


def test_a_bad_command_line_value_is_named_as_given(
        tmp_path: Path, portal: Portal, capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    assert refused(capsys, "run", str(job), "--concurrency", "0") == (
        "error: --concurrency: connections must be at least 1, got 0 (connections per host)")


@pytest.mark.parametrize("kind", ["migrate", "mirror"])
@pytest.mark.parametrize("target", ["{url}/a", "{url}/a/", "{url_443}/a"])
def test_source_and_target_the_same_portal(tmp_path: Path, kind: str, target: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.toml"
    url = target.format(url="https://data.example.org", url_443="https://DATA.example.org:443")
    job.write_text(f'kind = "{kind}"\n[source]\ntype = "ckan"\nurl = "https://data.example.org/a"\n'
                   f'[target]\ntype = "ckan"\nurl = "{url}"\napi_key = "k"\n')
    line = refused(capsys, "run", str(job))
    assert line == (f"error: {job}: [source] and [target] are the same portal "
                    f"({url.rstrip('/')}): it would then hold every dataset twice; point "
                    "[target] at another portal")


def test_a_url_with_an_impossible_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job.toml"
    job.write_text('[source]\ntype = "ckan"\nurl = "http://127.0.0.1:99999"\n')
    assert refused(capsys, "run", str(job)) == (
        f"error: {job}: [source] url has no valid port (1-65535), got 'http://127.0.0.1:99999'")


# ---- corrupt state: which file, and how to recover ----

RECOVER = ("move it away to start over: the next run reads the whole source again and finds "
           "its copies on the target, nothing is lost")


@pytest.mark.parametrize(("body", "why"), [
    (b"[]", "the file must be object, not array"),
    (b'{"datasets": [1, 2]}', "datasets must be object, not array"),
    (b'{"format": "one", "datasets": {}}', "format must be int, not str"),
    (b'{"datasets": {"a": ["k"]}}', "datasets[...]: expected array of length 3, got 1"),
    (b"{not json", None),
])
def test_a_mirror_state_of_the_wrong_shape(tmp_path: Path, portal: Portal, body: bytes,
                                           why: str | None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal, kind="mirror")
    state = tmp_path / ".bulkport" / "job" / "mirror.json"
    state.parent.mkdir(parents=True)
    state.write_bytes(body)
    code, lines = run(capsys, "run", str(job))
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith(f"error: {state}: unreadable mirror state ({why or 'not JSON'}")
    assert RECOVER in lines[0]
    assert state.read_bytes() == body and not portal.hits


@pytest.mark.parametrize(("body", "line"), [
    (bytes(range(256)) * 4, 1),  # not a journal at all: no newline, not even the torn kind
    (b'{"journal":1}\n\x00\x01garbage\n{"kind":"d","key":"a"}\n', 2),
    (b'{"journal":1}\n{"kind": 3, "key": "a"}\n', 2),
])
def test_a_journal_with_garbage(tmp_path: Path, portal: Portal, body: bytes, line: int,
                                capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal)
    journal = tmp_path / ".bulkport" / "job" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_bytes(body)
    code, lines = run(capsys, "run", str(job))
    assert code == 2 and len(lines) == 1
    assert lines[0] == (f"error: {journal}: line {line} is not a journal entry (the file is "
                        "damaged or not bulkport's); move it away to start over: the next run "
                        "reads the whole source again and finds its copies on the target, "
                        "nothing is lost")
    assert journal.read_bytes() == body and not portal.hits  # never truncated


def test_a_mirror_journal_entry_without_its_fields(tmp_path: Path, portal: Portal,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    job = job_file(tmp_path, portal, kind="mirror")
    journal = tmp_path / ".bulkport" / "job" / "journal.jsonl"
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b'{"journal":1}\n{"kind":"mirror","key":"a"}\n')
    code, lines = run(capsys, "run", str(job))
    assert code == 2
    assert (f"{journal}: a mirror entry for 'a' has no target or hash (the file is damaged); "
            f"{RECOVER}") in lines[0]


def test_a_journal_line_cut_before_its_newline_is_kept(tmp_path: Path) -> None:
    from bulkport.store import StateStore

    (tmp_path / "journal.jsonl").write_bytes(b'{"journal":1}\n{"kind":"d","key":"a"}')
    with StateStore(tmp_path) as store:
        assert store.journal.get("d", "a")
        store.journal.record("d", "b")
    with StateStore(tmp_path) as store:
        assert store.journal.count("d") == 2


# ---- the simulators' ports ----

def test_simulate_on_a_busy_port(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert simulate(["ckan", "--port", str(port), "--datasets", "0"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use; another "
                   "program is using it: pick another --port, or 0 for a free one\n")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--port", "70000"], "--port 70000: a port is 1 to 65535 (0 = any free one)"),
    (["--port", "-1"], "--port -1: a port is 1 to 65535 (0 = any free one)"),
    (["--file-size", "-1"], "--file-size -1: must be 0 or more"),
    (["--error-rate", "2"], "--error-rate 2.0: a share of the requests, 0 to 1"),
])
def test_simulate_with_an_impossible_number(argv: list[str], expected: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate(["ckan", "--datasets", "0", *argv]) == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
