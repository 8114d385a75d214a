"""A DataPress key, and the team, mastheads and topics a job names, checked before any write.

A team or masthead the site lacks would fail every create; a key DataPress does not know
(``whoami`` answers null) would read as an anonymous visitor. Each is one line and exit 2,
dry run included, with nothing written. Every case runs ``bulkport run`` as a user would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datapress_sites import CKAN_KEY, DP_KEY, SiteFactory, Sites, dp_writes, run, write_job

OTHER_KEY = "datapress-editor-key-93b1"


@pytest.fixture
def sites() -> Iterator[SiteFactory]:
    make = SiteFactory()
    yield make
    make.close()


def to_datapress(tmp_path: Path, s: Sites, *, team: str | None = None,
                 masthead: str | None = None, extra: str = "", dp_key: str = "${T_DP_KEY}",
                 prefix: str = "/api/v3") -> Path:
    path = write_job(tmp_path, s, extra=extra, dp_key=dp_key, prefix=prefix)
    text = path.read_text()
    if team is not None:
        text = text.replace(f'team = "{s.team}"', f'team = "{team}"')
    if masthead is not None:
        text = text.replace('masthead = "simulator"', f'masthead = "{masthead}"')
    path.write_text(text)
    return path


def the_line(capsys: Any) -> str:
    """The one ABORTED line, on stdout with the run's summary; no traceback, no key in
    either stream."""
    output = capsys.readouterr()
    both = output.out + output.err
    assert "Traceback" not in both
    assert all(key not in both for key in (CKAN_KEY, DP_KEY, OTHER_KEY))
    assert "ABORTED" not in output.err
    [line] = [text for text in output.out.splitlines() if "ABORTED" in text]
    return line


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_team_the_site_lacks_is_one_line(sites: SiteFactory, tmp_path: Path, capsys: Any,
                                           args: tuple[str, ...]) -> None:
    s = sites(datasets=6)
    assert run(to_datapress(tmp_path, s, team="zz9zz"), tmp_path / "state", *args) == 2
    line = the_line(capsys)
    assert (f"[target] team = 'zz9zz': no such team on DataPress {s.dp_url} (its teams: "
            f"{s.team} (Migrated datasets)): use those ids") in line
    assert dp_writes(s.dp) == 0 and not s.dp.datasets
    assert s.ckan.stats["ckan:package_search"] == 0  # the source was never listed


def test_wrong_mastheads_and_topics_are_named_together(sites: SiteFactory, tmp_path: Path,
                                                       capsys: Any) -> None:
    s = sites(datasets=4)
    maps = ('[target.mastheads]\n"Stadt Zürich" = "zurich"\n'
            '[target.topics]\n"environment" = "environment"\n"budget" = "money"')
    path = to_datapress(tmp_path, s, masthead="nope", extra=maps)
    assert run(path, tmp_path / "state", "--dry-run") == 2
    line = the_line(capsys)
    assert (f"[target] masthead = 'nope', mastheads 'Stadt Zürich' = 'zurich': no such masthead "
            f"on DataPress {s.dp_url} (its mastheads: simulator (DataPress Simulator)); "
            "topics 'budget' = 'money': no such topic on") in line
    assert dp_writes(s.dp) == 0


def test_ids_the_site_has_run_with_three_reads(sites: SiteFactory, tmp_path: Path) -> None:
    s = sites(datasets=3)
    maps = '[target.topics]\n"environment" = "environment"'
    assert run(to_datapress(tmp_path, s, extra=maps), tmp_path / "state", "--dry-run") == 0
    # The target check of an admin key outside the team: whoami, site settings, teams.
    assert (s.dp.stats["datapress:whoami"], s.dp.stats["datapress:site"],
            s.dp.stats["datapress:teams"]) == (1, 1, 1)


def test_the_v4_generation_lists_teams_at_api_team(sites: SiteFactory, tmp_path: Path,
                                                   capsys: Any) -> None:
    s = sites(datasets=3, prefix="/api")
    assert run(to_datapress(tmp_path, s, prefix="/api"), tmp_path / "state", "--dry-run") == 0
    assert s.dp.stats["datapress:teams"] == 1
    assert run(to_datapress(tmp_path, s, team="zz9zz", prefix="/api"), tmp_path / "state") == 2
    assert "[target] team = 'zz9zz': no such team" in the_line(capsys)


def test_a_user_outside_the_team_is_stopped_and_a_member_is_not(sites: SiteFactory,
                                                                tmp_path: Path,
                                                                capsys: Any) -> None:
    s = sites(datasets=3)
    other = s.dp.add_team("Elsewhere")["id"]
    user = s.dp.add_user("Ed Itor", "ed@example.org", teams=[other], key=OTHER_KEY)
    path = to_datapress(tmp_path, s, dp_key=OTHER_KEY)
    assert run(path, tmp_path / "state") == 2
    line = the_line(capsys)
    assert (f"[target] api_key: user 'Ed Itor' is neither an admin nor a member of team(s) "
            f"'{s.team}' on DataPress {s.dp_url}, so it cannot create datasets there") in line
    assert dp_writes(s.dp) == 0
    s.dp.teams[s.team]["users"].append(user.id)
    s.reset_stats()
    assert run(path, tmp_path / "state", "--dry-run") == 0
    assert s.dp.stats["datapress:teams"] == 0  # a membership proves the team exists


@pytest.mark.parametrize("args", [(), ("--dry-run",)])
def test_a_wrong_key_on_either_side_is_one_line(sites: SiteFactory, tmp_path: Path,
                                                capsys: Any, args: tuple[str, ...]) -> None:
    s = sites(datasets=3)
    assert run(to_datapress(tmp_path, s, dp_key="not-a-key-7f3e"), tmp_path / "state",
               *args) == 2
    line = the_line(capsys)
    assert f"[target] api_key: DataPress {s.dp_url}: the API key was refused" in line
    assert "refuse every write" in line and dp_writes(s.dp) == 0

    back = sites(datasets=3, source="datapress")
    path = write_job(tmp_path, back, source="datapress", dp_key="not-a-key-7f3e")
    assert run(path, tmp_path / "back", *args) == 2
    line = the_line(capsys)
    assert f"[source] api_key: DataPress {back.dp_url}: the API key was refused" in line
    assert "list only the public datasets" in line and not back.ckan.packages
