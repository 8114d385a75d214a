"""The HTML report (bulkport.report_html): the report's numbers, nothing loaded, all escaped."""

from __future__ import annotations

import re
from typing import Any

import orjson
from html_dom import Node, attribute_values, parse

from bulkport.metrics import Timeline
from bulkport.report import Report
from bulkport.report_html import failure_groups, number, reason_key, render

SERVER_ERROR = "ServerError: http://ods.test/api/automation/v1.0/datasets/{uid}/: HTTP 503: busy"
EVIL = "ValidationError: <script>alert('x')</script> refused"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def migration_report() -> Report:
    clock = Clock()
    report = Report("nightly <copy> & more", "migrate")
    report.timeline = Timeline(clock=clock)
    for second in range(12):
        clock.now = second + 0.5
        report.count("datasets_created", 3)
        report.count("files_transferred", 2)
        report.count("bytes_transferred", 1_500_000)
    clock.now = 4.2
    report.count("datasets_unchanged", 5)
    report.count("datasets_listed_by_source", 48)
    report.fail("dataset roads-2020", SERVER_ERROR.format(uid="da_abc123"))
    report.fail("dataset parks-2021", SERVER_ERROR.format(uid="da_xyz789"))
    report.fail("dataset lakes-01", "MappingError: package lakes-01: 'extras' is not a list",
                source_id="src-1")
    report.fail("dataset evil", EVIL)
    for _ in range(3):
        report.note("licence 'x' has no entry in [target.licenses]")
    report.note("language 'ja' not offered: used 'en'")
    report.requests = {"ods.test": 40, "ckan.test:8443": 12}
    for i in range(40):
        report.hosts.answered("ods.test", 0.010 + i / 1000)
    for _ in range(4):
        report.hosts.retried("ods.test")
    for i in range(12):
        report.hosts.answered("ckan.test:8443", 0.2 + i / 100)
    report.seconds = 12.0
    return report


def page_of(report: Report) -> tuple[Node, str, dict[str, Any]]:
    data = orjson.loads(report.to_json())
    html = render(data)
    return parse(html), html, data


def test_the_page_shows_the_reports_numbers() -> None:
    page, _, data = page_of(migration_report())
    counts = data["counts"]
    for name, value in counts.items():
        card = page.find(data_count=name)
        assert card.find(class_="value").attrs["data-value"] == str(value)
    assert page.find(data_count="datasets_created").find(class_="value").text == "36"
    bytes_card = page.find(data_count="bytes_transferred")
    assert "18.0 MB" in bytes_card.text and f"{number(18_000_000)} bytes" in bytes_card.text
    assert page.value(id="failed-total") == "4"
    assert page.find(id="status").text == "FAILED"
    assert page.value(id="duration") == "12.0"
    assert page.value(id="requests-total") == "52"

    groups = failure_groups(data["failures"])
    assert [len(g.failures) for g in groups] == [2, 1, 1]
    shown = page.find_all(class_="group")
    assert [g.attrs["data-failures"] for g in shown] == ["2", "1", "1"]
    assert groups[0].reason in shown[0].find(class_="group-head").text
    assert "src-1" in page.find(id="failures").text  # a record's context is shown

    for host, stats in data["hosts"].items():
        row = page.find("tr", data_host=host)
        for field in ("requests", "retries"):
            assert row.find(data_field=field).attrs["data-value"] == str(stats[field])
        for key in ("p50", "p95", "max", "mean"):
            cell = row.find(data_field=f"latency_{key}")
            assert cell.attrs["data-value"] == str(stats["latency_ms"][key])
    assert data["hosts"]["ods.test"]["retries"] == 4

    assert page.value(id="timeline-finished") == str(sum(data["timeline"]["finished"]))
    assert sum(data["timeline"]["finished"]) == 36 + 5
    assert page.find(id="throughput-chart").tag == "svg"
    assert page.find(id="transfer-chart").tag == "svg"
    assert page.find(id="hosts-chart").tag == "svg"

    notes = page.find(id="notes").find_all("tr", class_="note")
    assert [(n.find(class_="value").attrs["data-value"], n.find_all("td")[1].text)
            for n in notes] == [(str(v), k) for k, v in data["notes"].items()]


def test_a_failure_group_shows_its_first_records_and_how_many_more() -> None:
    report = Report("job", "migrate")
    for i in range(23):
        report.fail(f"dataset d-{i:05d}", f"MappingError: package d-{i:05d}: bad 'extras'")
    page, _, _ = page_of(report)
    [group] = page.find_all(class_="group")
    assert group.attrs["data-failures"] == "23"
    assert len(group.find_all("tr", class_="failure")) == 5
    assert "18 more" in group.find(class_="more").text


def test_reasons_group_without_the_records_own_names_and_ids() -> None:
    def key(unit: str, reason: str) -> str:
        return reason_key({"unit": unit, "reason": reason})

    assert key("dataset a-2020", SERVER_ERROR.format(uid="da_abc123")) == \
        key("dataset b-2021", SERVER_ERROR.format(uid="da_q1w2e3"))
    assert key("dataset a-01", "MappingError: package a-01: bad") == \
        key("dataset bb-02", "MappingError: package bb-02: bad")
    assert key("dataset a", "HTTP 503") != key("dataset a", "HTTP 500")
    assert "/api/3/action/package_create" in key(
        "dataset a", "Conflict: http://c.test/api/3/action/package_create: HTTP 409: taken")


def test_nothing_is_loaded_from_anywhere() -> None:
    page, html, _ = page_of(migration_report())
    tags = {node.tag for node in page.iter()}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "image", "use",
                       "video", "audio", "source", "form", "base"}
    assert "<script src" not in html.lower()
    for tag, name, value in attribute_values(page):
        assert name not in ("src", "srcset", "action", "formaction", "poster", "xlink:href")
        if name == "href":
            assert value.startswith("#"), (tag, value)  # an anchor on the page itself
        assert "http://" not in value and "https://" not in value, (tag, name, value)
        assert "url(" not in value, (tag, name, value)
    styles = "".join(node.text for node in page.find_all("style"))
    assert "url(" not in styles and "@import" not in styles and "@font-face" not in styles
    # URLs appear only as text (a failed record's reason), never as a reference.
    texts = "".join(c for node in page.iter() for c in node.children if isinstance(c, str))
    assert html.count("http://") == texts.count("http://") > 0
    assert "https://" not in html
    csp = page.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp


def test_everything_from_the_report_is_escaped() -> None:
    page, html, _ = page_of(migration_report())
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert not page.find_all("script")
    assert EVIL in page.find(id="failures").text  # shown as the text it is
    assert page.find(id="job").text == "nightly <copy> & more"
    assert "nightly <copy> & more" in page.find("head").find("title").text


def test_a_dry_run_shows_its_plan_by_action() -> None:
    report = Report("job", "migrate", dry_run=True)
    for i in range(3):
        report.planned("create", f"dataset new-{i}", files=2)
    report.planned("update", "dataset old-1", files=0)
    report.count("datasets_unchanged", 7)
    page, _, _ = page_of(report)
    assert page.find(id="dry-run").text == "DRY RUN"
    create = page.find(data_action="create")
    assert create.find(class_="value").attrs["data-value"] == "3"
    assert "dataset new-2" in create.text
    assert page.find(data_action="update").find(class_="value").attrs["data-value"] == "1"
    assert page.find(data_count="would_create").find(class_="value").text == "3"


def test_a_mirror_shows_what_it_deleted_or_refused_and_why() -> None:
    report = Report("m", "mirror")
    report.count("datasets_deleted", 3)
    report.count("datasets_not_owned", 1)
    report.fail("removing dataset gone-1", "ServerError: http://t.test/x: HTTP 500")
    report.details.update(watermark_before="2026-01-01T00:00:00Z", held_before=40)
    report.aborted = "refused: 30 of 40 datasets would go (75% > max_delete_fraction 50%)"
    page, _, _ = page_of(report)
    mirror = page.find(id="mirror")
    assert mirror.find("tr", data_removal="deleted").find(class_="value").text == "3"
    assert "ownership mark" in mirror.find("tr", data_removal="not_owned").text
    assert "max_delete_fraction" in mirror.find(id="mirror-refused").text
    assert "removing dataset gone-1" in mirror.text
    assert "2026-01-01T00:00:00Z" in page.find(id="details").text
    assert page.find(id="status").text == "ABORTED"
    assert "max_delete_fraction" in page.find(id="aborted").text


def test_revoke_tokens_lists_the_tokens_acted_on() -> None:
    report = Report("r", "revoke-tokens")
    for i in range(2):
        report.acted("revoked", id=f"jti-{i}", user="ann", name=f"ci-{i}")
    report.fail("token jti-9", "ServerError: HTTP 500", user="bob", name="old")
    report.acted("revoke_failed", id="jti-9", user="bob", name="old")
    page, _, data = page_of(report)
    actions = page.find(id="actions")
    assert "Tokens acted on" in actions.find("h2").text
    assert page.value(id="actions-total") == "3"
    assert actions.find(data_outcome="revoked").find(class_="value").text == "2"
    assert len(actions.find("tbody").find_all("tr")) == 3 and "jti-9" in actions.text
    assert sum(data["timeline"]["finished"]) == 2 and sum(data["timeline"]["failed"]) == 1


def test_an_empty_run_renders() -> None:
    report = Report("empty", "migrate")
    report.finish()
    page, html, _ = page_of(report)
    assert page.find(id="status").text == "OK"
    assert "Nothing failed" in page.find(id="failures").text
    assert re.search(r'id="throughput"', html)
