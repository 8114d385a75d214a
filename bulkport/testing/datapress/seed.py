"""The DataPress site ``bulkport simulate datapress`` serves, and its start banner.

:func:`seed_datapress` fills a store with the synthetic catalogue, as DataPress holds it.

Besides the synthetic catalogue (a team and a masthead per generated organization), the
site holds the ids the shipped job files name, so that ``jobs/ckan-to-datapress.toml``
runs against it as it is: team ``ab12x`` and masthead ``main``. Team ``main`` and masthead
``simulator`` stay too (the benchmarks' job files use them). The banner lists every team
and masthead id, for a job file's ``team`` / ``masthead`` and ``[target.teams]`` maps.
"""

from __future__ import annotations

import argparse
import html
import random
from collections.abc import Container
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from bulkport.testing.core.app import set_items
from bulkport.testing.core.catalog import EPOCH, ORGANIZATIONS, UNKNOWN_LICENSE, generate_packages
from bulkport.testing.core.faults import Faults
from bulkport.testing.core.files import SyntheticFile
from bulkport.testing.datapress.app import create_datapress_app
from bulkport.testing.datapress.schema import EMPTY_QA, build_dataset, file_format
from bulkport.testing.datapress.store import (
    DEFAULT_MASTHEADS,
    ID_ALPHABET,
    ITEM_ALPHABET,
    DataPressStore,
    iso,
)

# What jobs/ckan-to-datapress.toml's [target] names.
JOB_TEAM, JOB_MASTHEAD = "ab12x", "main"
# Team and masthead id → title, made before the catalogue so its ids cannot take them.
TEAMS = {JOB_TEAM: "Main team", "main": "Simulator team"}
MASTHEADS = {JOB_MASTHEAD: "Main", **DEFAULT_MASTHEADS}

# DataPress licences are {url, title}; "notspecified" has none, the unknown one no URL.
_LICENCES: dict[str, dict[str, Any] | None] = {
    "cc-by": {"url": "https://creativecommons.org/licenses/by/4.0/", "title": "CC BY 4.0"},
    "cc-by-sa": {"url": "https://creativecommons.org/licenses/by-sa/4.0/",
                 "title": "CC BY-SA 4.0"},
    "cc-zero": {"url": "https://creativecommons.org/publicdomain/zero/1.0/",
                "title": "CC0 1.0"},
    "odc-odbl": {"url": "https://opendatacommons.org/licenses/odbl/", "title": "ODC ODbL"},
    "odc-by": {"url": "https://opendatacommons.org/licenses/by/", "title": "ODC-By"},
    "odc-pddl": {"url": "https://opendatacommons.org/licenses/pddl/", "title": "ODC PDDL"},
    "other-open": {"url": None, "title": "Other (Open)"},
    "other-closed": {"url": None, "title": "Other (Not Open)"},
    "notspecified": None,
    "gfdl": {"url": "https://www.gnu.org/licenses/fdl-1.3.html", "title": "GNU FDL"},
    UNKNOWN_LICENSE: {"url": None, "title": "Creative Commons Attribution 4.0"},
}


def _html(notes: str | None) -> str:
    """CKAN notes as a DataPress page body: escaped paragraphs (empty stays empty)."""
    if not notes:
        return ""
    paragraphs = (html.escape(part).replace("\n", "<br>") for part in notes.split("\n\n"))
    return "".join(f"<p>{part}</p>" for part in paragraphs)


def _stamp(when: datetime) -> str:
    return iso(when.replace(tzinfo=timezone.utc).timestamp())


def seed_datapress(store: DataPressStore, datasets: int = 100, resources: int = 2,
                   file_size: int = 2048, seed: int = 0) -> list[str]:
    """Fill ``store`` directly (no HTTP) with the generated catalog; return the dataset ids.

    Organizations become teams and mastheads; hosted files become file resources (their
    MD5 ``hash`` computed when first shown), bare links become ``links``; private datasets
    are ``sharing: "private"``; extras go to ``custom``. Ids and timestamps are a function
    of ``seed``: ``updatedAt`` spreads from 2024 on.
    """
    ids = random.Random(f"bulkport-datapress-ids:{seed}")

    def new_id(alphabet: str, length: int, taken: Container[str]) -> str:
        while True:
            made = "".join(ids.choices(alphabet, k=length))
            if made not in taken:
                return made

    team_ids = {team["title"]: team_id for team_id, team in store.teams.items()}
    for org in ORGANIZATIONS:
        store.mastheads.setdefault(org["name"], org["title"])
        if org["title"] not in team_ids:
            team_id = new_id(ID_ALPHABET, 5, {*store.teams, *store.datasets})
            team_ids[org["title"]] = store.add_team(org["title"], team_id)["id"]
    titles = {org["name"]: org["title"] for org in ORGANIZATIONS}
    created: list[str] = []
    for i, (pkg, files) in enumerate(generate_packages(datasets, resources, file_size, seed)):
        dataset_id = new_id(ID_ALPHABET, 5, {*store.teams, *store.datasets})
        when = EPOCH + timedelta(hours=i, microseconds=i * 1000)
        modified = when + timedelta(days=ids.randint(0, 400), seconds=ids.randint(0, 86399))
        year = 2015 + i % 12
        links: dict[str, Any] = {}
        hosted: list[tuple[dict[str, Any], SyntheticFile]] = []
        for res, file in zip(pkg["resources"], files, strict=True):
            if file is None:
                links[new_id(ITEM_ALPHABET, 3, links)] = {
                    "url": res["url"], "title": res["name"], "order": len(links),
                    "description": res["description"], "qa": dict(EMPTY_QA)}
            else:
                hosted.append(({**res, "order": len(hosted)}, file))
        data = {
            "title": pkg["title"], "description": _html(pkg.get("notes")),
            "masthead": pkg["owner_org"], "team": team_ids[titles[pkg["owner_org"]]],
            "tags": [tag["name"] for tag in pkg["tags"]],
            "topics": ids.sample(sorted(store.topics), min(len(store.topics),
                                                            ids.randint(0, 2))),
            "nextReviewDate": f"{year + 1}-01-15" if ids.random() < 0.5 else None,
            "licence": _LICENCES.get(pkg["license_id"]),
            "contact": {"name": pkg["maintainer"], "email": pkg["maintainer_email"]}
            if pkg["maintainer"] else None,
            "sharing": "private" if pkg["private"] else "public",
            "custom": {extra["key"]: extra["value"] for extra in pkg["extras"]},
            "links": links,
        }
        document, issues = build_dataset(store, data, None, dataset_id=dataset_id,
                                         now=_stamp(when))
        if issues:
            raise ValueError(f"generated dataset {i} is invalid: {issues}")
        document["updatedAt"] = _stamp(modified)
        for res, file in hosted:
            resource_id = new_id(ITEM_ALPHABET, 3, document["resources"])
            origin = f"{store.site}/dataset/{dataset_id}/{resource_id}/{res['url']}"
            store.blobs.put_synthetic(origin, file)
            document["resources"][resource_id] = {
                "title": res["name"], "description": res["description"],
                "timeframe": {"from": f"{year}-01", "to": f"{year}-12"}
                if ids.random() < 0.3 else None,
                "order": res["order"], "origin": origin, "format": file_format(res["url"]),
                "hash": None, "size": file.size}
        store.datasets[dataset_id] = document
        created.append(dataset_id)
    return created


def simulated_datapress(*, datasets: int = 100, resources: int = 2, file_size: int = 2048,
                        seed: int = 0, api_key: str = "simulator-key", prefix: str = "/api/v3",
                        faults: Faults | None = None) -> web.Application:
    """The app of ``bulkport simulate datapress``: a seeded site and an admin's key.

    Args:
        datasets, resources, file_size, seed: the synthetic catalogue (see
            :func:`seed_datapress`).
        api_key: the admin's key (sent raw in ``Authorization``).
        prefix: ``"/api/v3"`` or ``"/api"``.
        faults: latency and errors to inject.

    Returns:
        The application; ``app["banner"]`` holds the lines that name its teams and mastheads.
    """
    store = DataPressStore(seed=seed, mastheads=MASTHEADS)
    for team_id, title in TEAMS.items():
        store.add_team(title, team_id=team_id)
    seed_datapress(store, datasets=datasets, resources=resources, file_size=file_size,
                   seed=seed)
    store.add_user("Simulator Admin", "admin@example.org", admin=True, key=api_key)
    app = create_datapress_app(store, prefix=prefix, faults=faults)
    set_items(app, banner=banner(store))
    return app


def banner(store: DataPressStore) -> list[str]:
    """Lines naming the site's team and masthead ids (with titles), for a job file."""
    teams = ", ".join(f"{team_id} ({team['title']})" for team_id, team in store.teams.items())
    mastheads = ", ".join(store.mastheads)
    return [f"  teams: {teams}",
            f"  mastheads: {mastheads}",
            f'  jobs/ckan-to-datapress.toml works here as shipped (team = "{JOB_TEAM}", '
            f'masthead = "{JOB_MASTHEAD}"): point its [target] url at this address']


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bulkport simulate datapress`` besides those every simulator takes."""
    parser.add_argument("--prefix", default="/api/v3",
                        help="API path prefix, /api/v3 or /api (default %(default)s)")


def simulated_site(args: argparse.Namespace, faults: Faults | None) -> web.Application:
    """The app of ``bulkport simulate datapress``, from its parsed arguments."""
    return simulated_datapress(datasets=args.datasets, resources=args.resources,
                               file_size=args.file_size, seed=args.seed,
                               api_key=args.api_key, prefix=args.prefix, faults=faults)
