"""Job files: every mistake is one clear line naming file, table and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulkport.config import load_job
from bulkport.errors import ConfigError
from bulkport.portals.ckan.settings import CkanSourceSettings
from bulkport.portals.ods.settings import OdsTargetSettings

GOOD = """
kind = "migrate"
[source]
type = "ckan"
url = "https://ckan.example.org/"
api_key = "${CKAN_KEY}"
fq = "organization:city"
[target]
type = "ods"
url = "https://city.opendatasoft.com"
api_key = "${ODS_KEY}"
[target.licenses]
cc-by = "38js5ao"
[options]
connections = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_good_job_reads_env_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKAN_KEY", "ck")
    monkeypatch.delenv("ODS_KEY", raising=False)
    (tmp_path / ".env").write_text("ODS_KEY=from-dotenv\nCKAN_KEY=ignored\n")
    job = load_job(write(tmp_path, GOOD))
    assert job.source and job.target
    assert job.source.api_key == "ck"  # the environment wins over .env
    assert job.target.api_key == "from-dotenv"
    assert job.source.url == "https://ckan.example.org"
    assert isinstance(job.source, CkanSourceSettings) and job.source.fq == "organization:city"
    assert isinstance(job.target, OdsTargetSettings)
    assert job.target.licenses == {"cc-by": "38js5ao"}
    assert job.options.connections == 8
    assert job.options.workers == 32


def test_command_line_overrides_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKAN_KEY", "ck")
    monkeypatch.setenv("ODS_KEY", "ok")
    assert load_job(write(tmp_path, GOOD), connections=3).options.connections == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("[options]", "[options"), "not valid TOML"),
        (GOOD, "environment variable CKAN_KEY is not set"),
        (GOOD.replace('type = "ods"', 'type = "ftp"'), r"\[target\] type must be one of"),
        (GOOD.replace("https://city", "city"), r"\[target\] url must be an http\(s\) URL"),
        (GOOD.replace("connections = 8", "conections = 8"), "did you mean 'connections'"),
        (GOOD.replace("connections = 8", 'connections = "8"'), "connections must be int, got '8'"),
        (GOOD.replace('kind = "migrate"', 'kind = "copy"'), "kind must be one of"),
        (GOOD.replace("connections = 8", 'on_delete = "purge"'), "on_delete must be one of"),
        (GOOD.replace("connections = 8", "max_delete_fraction = 10"),
         r"max_delete_fraction must be at most 1.0, got 10 \(mirror: most of the mirrored"),
        (GOOD.replace("connections = 8", "connections = 100000000"),
         r"\[options\] connections must be at most 1000, got 100000000 \(connections per host\)"),
    ],
)
def test_bad_job_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                       message: str) -> None:
    monkeypatch.delenv("CKAN_KEY", raising=False)
    if "CKAN_KEY is not set" not in message:
        monkeypatch.setenv("CKAN_KEY", "ck")
    monkeypatch.setenv("ODS_KEY", "ok")
    with pytest.raises(ConfigError, match=message) as caught:
        load_job(write(tmp_path, text))
    assert str(tmp_path / "job.toml") in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read job file"):
        load_job(tmp_path / "nope.toml")


def test_example_mirror_job_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_CKAN_KEY", "s")
    monkeypatch.setenv("TARGET_CKAN_KEY", "t")
    job = load_job(Path(__file__).parents[1] / "jobs" / "nightly-mirror.toml")
    assert job.kind == "mirror" and job.source and job.target
    assert job.options.on_delete == "delete" and job.options.max_delete_fraction == 0.1
