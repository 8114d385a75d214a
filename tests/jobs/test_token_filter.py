"""The [filter] table of revoke-tokens jobs: parsing, matching, keep_newest."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bulkport.config import load_job
from bulkport.errors import ConfigError
from bulkport.jobs.token_filter import name_matcher, parse_filter, parse_moment
from bulkport.model import Token

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
JOB = Path("job.toml")


def tok(id: str, name: str = "datapusher", user: str = "admin", created: str = "2026-01-01",
        used: str | None = None) -> Token:
    return Token(id=id, name=name, user=user, created_at=created, last_access=used)


def test_moments_iso_and_relative() -> None:
    assert parse_moment("90d", NOW) == datetime(2026, 3, 3, tzinfo=timezone.utc)
    assert parse_moment("2w", NOW) == datetime(2026, 5, 18, tzinfo=timezone.utc)
    assert parse_moment("2024-03-06T00:43:54.909777") == datetime(
        2024, 3, 6, 0, 43, 54, 909777, tzinfo=timezone.utc)  # CKAN's naive UTC
    assert parse_moment("2024-03-06T01:43:54Z").hour == 1
    with pytest.raises(ValueError):
        parse_moment("last tuesday")


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("datapusher", "datapusher", True),
    ("datapusher", "datapusher-2", False),
    ("data*", "datapusher-2", True),
    ("re:datapusher(-\\d+)?", "datapusher-12", True),
    ("re:datapusher", "datapusher-12", False),  # the whole name must match
])
def test_name_patterns(pattern: str, name: str, expected: bool) -> None:
    assert name_matcher(pattern)(name) is expected


def test_conditions_combine() -> None:
    f = parse_filter({"name": "datapusher", "created_before": "2026-02-01",
                      "last_access_before": "30d"}, JOB, NOW)
    assert f.matches(tok("a", created="2026-01-01"))  # never used: stale too
    assert f.matches(tok("b", used="2026-03-01"))
    assert not f.matches(tok("c", used="2026-05-20"))  # used recently
    assert not f.matches(tok("d", created="2026-03-01"))
    assert not f.matches(tok("e", name="harvest"))
    assert parse_filter({"never_used": True}, JOB).matches(tok("f"))
    assert not parse_filter({"never_used": True}, JOB).matches(tok("g", used="2026-01-02"))
    assert not parse_filter({"users": ["bob"]}, JOB).matches(tok("h"))


def test_keep_newest_spares_the_newest_of_each_user_and_name() -> None:
    tokens = [tok("old", created="2025-01-01"), tok("mid", created="2025-06-01"),
              tok("new", created="2026-01-01"), tok("other", name="harvest"),
              tok("bob1", user="bob", created="2025-01-01")]
    f = parse_filter({"name": "datapusher", "keep_newest": 1}, JOB)
    selected, spared = f.select(tokens)
    assert [t.id for t in selected] == ["old", "mid"]
    assert spared == 2  # admin's newest and bob's only token
    assert [t.id for t in parse_filter({}, JOB).select(tokens)[0]] == [
        "old", "mid", "new", "other", "bob1"]  # by user, name, then age


def test_keep_newest_counts_tokens_the_other_conditions_leave_out() -> None:
    # The newest token is recent, so it does not match created_before, yet it is the one
    # keep_newest spares: the older ones all go.
    tokens = [tok("old", created="2025-01-01"), tok("new", created="2026-05-30")]
    f = parse_filter({"created_before": "2026-05-01", "keep_newest": 1}, JOB)
    assert [t.id for t in f.select(tokens)[0]] == ["old"]


@pytest.mark.parametrize(("table", "message"), [
    ({"nmae": "x"}, "unknown key 'nmae' (did you mean 'name'?)"),
    ({"created_before": "soon"}, "created_before: expected an ISO 8601 date"),
    ({"name": "re:("}, "bad regular expression"),
    ({"keep_newest": -1}, "keep_newest must be a whole number"),
    ({"users": []}, "users must be a non-empty string or list"),
    ({"never_used": "yes"}, "never_used must be true or false"),
])
def test_bad_filters(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_filter(table, JOB)


def test_job_file_checks(tmp_path: Path) -> None:
    job = tmp_path / "job.toml"
    job.write_text('kind = "revoke-tokens"\n[target]\ntype = "ods"\nurl = "https://x.org"\n'
                   'api_key = "k"\n[filter]\nnever_used = true\n')
    with pytest.raises(ConfigError, match="Opendatasoft API keys carry no last-access date"):
        load_job(job)
    job.write_text('kind = "revoke-tokens"\n[target]\ntype = "datapress"\n'
                   'url = "https://x.org"\napi_key = "k"\n')
    with pytest.raises(ConfigError, match=r"type 'datapress' cannot be a token store"):
        load_job(job)
    job.write_text('kind = "revoke-tokens"\n[target]\ntype = "ckan"\nurl = "https://x.org"\n'
                   '[filter]\nname = "datapusher"\n[options]\nreason = "leak"\n')
    with pytest.raises(ConfigError, match="api_key is required"):
        load_job(job)
    job.write_text(job.read_text().replace('[filter]', 'api_key = "k"\n[filter]'))
    loaded = load_job(job, reason="rotation")
    assert loaded.token_filter is not None and loaded.token_filter.names == ("datapusher",)
    assert loaded.options.reason == "rotation"
