"""The run report: counts, notes and failures, never a secret."""

from __future__ import annotations

from bulkport.redact import register_secret
from bulkport.report import Report


def test_notes_and_failures_leave_redacted() -> None:
    secret = "rep0rt-secret-value"
    register_secret(secret)
    report = Report("job", "migrate")
    report.note(f"field 'x' kept: {secret}")
    report.note(f"field 'x' kept: {secret}")
    report.fail("dataset a", f"refused {secret}")
    report.finish()
    text = report.to_json().decode() + report.summary()
    assert secret not in text and "(2×)" in report.summary()
