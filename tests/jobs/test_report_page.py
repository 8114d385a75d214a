"""The HTML report of real runs on the simulators: written where the JSON report is, and
showing its numbers, as a browser renders it (headless Chromium, marked ``browser``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from html_dom import Node, parse

import bulkport
from bulkport.cli import main
from bulkport.portals.ods.mapping import dataset_id_for
from bulkport.report_charts import FINISHED_FILL
from bulkport.report_html import FAILURE_BAND, failure_groups, number
from bulkport.testing import (
    CkanStore,
    Faults,
    OdsStore,
    ThreadedServer,
    create_ckan_app,
    create_ods_app,
    seed_ckan,
)

CKAN_KEY = "ckan-page-key-51c9e2"
ODS_KEY = "ods-page-key-7a3f0d"
SCREENSHOT = Path("/tmp/bulkport-report-screenshot.png")  # outside the repository, kept
WINDOW = (1280, 2400)
BROKEN, REFUSED = 2, 3  # datasets whose record cannot be mapped, whose create gets 503s


@dataclass
class Run:
    state: Path
    job: Path
    report: dict[str, Any]
    html: str
    ods_url: str


def _refuse_victims(victims: set[str]) -> Any:
    """A 503 (retry at once) for the victims' lookup and create, every time."""

    @web.middleware
    async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
        creating = request.method == "POST" and request.path.endswith("/datasets/")
        body = await request.text() if creating else ""
        if (request.query.get("dataset_id") in victims
                or any(f'"dataset_id":"{v}"' in body for v in victims)):
            return web.json_response({"error_code": "unavailable", "message": "busy"},
                                     status=503, headers={"Retry-After": "0"})
        return await handler(request)

    return refuse


def _job(tmp_path: Path, ckan_url: str, ods_url: str) -> Path:
    job = tmp_path / "job.toml"
    job.write_text(f"""
kind = "migrate"
name = "report-page"
[source]
type = "ckan"
url = "{ckan_url}"
api_key = "${{PAGE_CKAN_KEY}}"
include_private = true
[target]
type = "ods"
url = "{ods_url}"
api_key = "{ODS_KEY}"
[options]
connections = 8
retries = 6
status_poll = 0.02
keep_reports = 2
""")
    return job


@pytest.fixture
def migration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """A migration of 30 datasets, two failure groups among them, with a few retries."""
    monkeypatch.setenv("PAGE_CKAN_KEY", CKAN_KEY)
    ckan, ods = CkanStore(), OdsStore()
    seed_ckan(ckan, datasets=30, resources=2, file_size=3000, seed=5)
    packages = list(ckan.packages.values())
    for package in packages[:BROKEN]:
        ckan.save_package({**package, "extras": {"not": "a list"}})
    victims = {dataset_id_for(p["name"]) for p in packages[BROKEN:BROKEN + REFUSED]}
    # Transient 5xx and 429: retried, so they show as retries, not failures.
    faults = Faults(error_rate=0.05, retry_after=0, seed=7, latency=0.002,
                    kinds=("500", "503", "429"))

    def ods_app() -> web.Application:
        app = create_ods_app(ods, api_keys={ODS_KEY}, faults=faults, processing_time=0.01)
        app.middlewares.insert(0, _refuse_victims(victims))
        return app

    with ThreadedServer(lambda: create_ckan_app(ckan, api_keys={CKAN_KEY: "admin"},
                                                faults=faults)) as c, \
            ThreadedServer(ods_app) as o:
        job = _job(tmp_path, c.url, o.url)
        state = tmp_path / "state"
        code = main(["run", str(job), "--state-dir", str(state), "--no-progress"])
        assert code == 1
        yield Run(state, job, json.loads((state / "report.json").read_text()),
                  (state / "report.html").read_text(encoding="utf-8"), o.url)


def check_numbers(page: Node, report: dict[str, Any]) -> None:
    """The page's numbers are the JSON report's."""
    counts = report["counts"]
    for name, value in counts.items():
        card = page.find(data_count=name)
        assert card.find(class_="value").attrs["data-value"] == str(value)
    for name in ("datasets_created", "would_create"):
        if name in counts:
            shown = page.find(data_count=name).find(class_="value").text
            assert shown == number(counts[name])
    assert page.value(id="failed-total") == str(counts.get("failed", 0))
    groups = failure_groups(report["failures"])
    shown_groups = page.find_all(class_="group")
    assert [g.attrs["data-failures"] for g in shown_groups] == [str(len(g.failures)) for g in groups]
    for node, group in zip(shown_groups, groups, strict=True):
        assert group.reason in node.find(class_="group-head").text
    for host, stats in report["hosts"].items():
        row = page.find("tr", data_host=host)
        assert row.find(data_field="requests").attrs["data-value"] == str(stats["requests"])
        assert row.find(data_field="requests").text == number(stats["requests"])
        assert row.find(data_field="retries").attrs["data-value"] == str(stats["retries"])
        assert stats["requests"] == report["requests"]["per_host"][host]


def test_a_run_writes_its_html_report_next_to_the_json(migration: Run) -> None:
    report = migration.report
    assert report["counts"]["datasets_created"] == 30 - BROKEN - REFUSED
    assert report["counts"]["failed"] == BROKEN + REFUSED
    groups = failure_groups(report["failures"])
    assert sorted(len(g.failures) for g in groups) == [BROKEN, REFUSED]
    assert sum(h["retries"] for h in report["hosts"].values()) >= REFUSED * 5
    ods_host = migration.ods_url.split("//", 1)[1]
    assert report["hosts"][ods_host]["latency_ms"]["count"] > 0

    [own] = (migration.state / "reports").glob("*.json")
    assert own.with_suffix(".html").read_text(encoding="utf-8") == migration.html
    check_numbers(parse(migration.html), report)
    assert CKAN_KEY not in migration.html and ODS_KEY not in migration.html


def test_every_run_writes_it_and_old_ones_go_with_their_json(migration: Run) -> None:
    result = bulkport.run(migration.job, dry_run=True, state_dir=migration.state)
    assert result.html == result.path.with_suffix(".html")  # this run's own, not the latest
    assert result.html.read_bytes() == (migration.state / "report.html").read_bytes()
    page = parse(result.html.read_text(encoding="utf-8"))
    assert page.find(id="dry-run") and page.find(id="plan")
    check_numbers(page, dict(result.data))
    bulkport.run(migration.job, dry_run=True, state_dir=migration.state)  # keep_reports = 2
    reports = migration.state / "reports"
    assert len(list(reports.glob("*.json"))) == 2
    assert sorted(p.stem for p in reports.glob("*.html")) == sorted(
        p.stem for p in reports.glob("*.json"))


def test_an_html_report_that_cannot_be_written_stops_the_run_before_it_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PAGE_CKAN_KEY", CKAN_KEY)
    state = tmp_path / "state"
    (state / "report.html").mkdir(parents=True)
    job = _job(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:10")  # never asked
    assert main(["run", str(job), "--state-dir", str(state), "--no-progress"]) == 2
    assert "report.html: is a directory" in capsys.readouterr().err
    assert not (state / "report.json").exists()


def test_an_aborted_run_writes_it_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGE_CKAN_KEY", CKAN_KEY)
    job = _job(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:10")  # nothing listens
    job.write_text(job.read_text().replace("retries = 6", "retries = 1"))
    state = tmp_path / "state"
    assert main(["run", str(job), "--state-dir", str(state), "--no-progress"]) == 2
    report = json.loads((state / "report.json").read_text())
    page = parse((state / "report.html").read_text(encoding="utf-8"))
    assert page.find(id="status").text == "ABORTED"
    assert page.find(id="aborted").text == f"Stopped: {report['aborted']}"
    check_numbers(page, report)


# ---- in a browser ----

def _chromium_run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
         "--force-device-scale-factor=1", *args],
        capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Paint:
    """Where a colour shows in a screenshot."""

    pixels: int = 0
    widest: int = 0  # the longest horizontal run of it
    box: tuple[int, int, int, int] = (1 << 30, 1 << 30, -1, -1)  # left, top, right, bottom


def _paint(image: Any, colour: str, tolerance: int = 6) -> Paint:
    """Where ``colour`` (``#rrggbb``) covers runs of 3 pixels or more (anti-aliased edges
    and text are left out)."""
    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    width, height = image.size
    pixels = image.load()
    found = Paint()
    for y in range(height):
        run = 0
        for x in range(width + 1):
            if x < width and all(abs(a - b) <= tolerance
                                 for a, b in zip(pixels[x, y], want, strict=True)):
                run += 1
                continue
            if run >= 3:
                left, top, right, bottom = found.box
                found.box = (min(left, x - run), min(top, y), max(right, x - 1), max(bottom, y))
                found.pixels += run
                found.widest = max(found.widest, run)
            run = 0
    return found


@pytest.mark.browser
def test_the_report_renders_in_chromium(chromium: str, migration: Run, tmp_path: Path) -> None:
    from PIL import Image

    url = (migration.state / "report.html").resolve().as_uri()
    dom = _chromium_run(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    check_numbers(parse(dom.stdout), migration.report)

    shot = tmp_path / "report.png"
    taken = _chromium_run(chromium, tmp_path / "profile-shot", f"--screenshot={shot}",
                          f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    shutil.copyfile(shot, SCREENSHOT)
    print(f"screenshot: {SCREENSHOT}")

    with Image.open(shot) as opened:
        assert opened.format == "PNG" and opened.size == WINDOW
        image = opened.convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # not blank
    chart, failures = _paint(image, FINISHED_FILL), _paint(image, FAILURE_BAND)
    # The throughput chart's area: drawn, inside the page's column, one chart high.
    assert chart.pixels > 5000, f"throughput chart not drawn: {chart}"
    assert 40 < chart.box[0] and chart.box[2] < WINDOW[0] - 40, chart
    assert chart.box[3] - chart.box[1] < 300, chart
    # The failure groups' headings: across the column, below the chart, on the first screen.
    assert failures.widest > WINDOW[0] // 2, f"failure groups not drawn: {failures}"
    assert chart.box[3] < failures.box[1] < WINDOW[1], (chart, failures)
