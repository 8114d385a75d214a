"""The DataPress site ``bulkport simulate datapress`` serves, and its start banner.

Besides the synthetic catalogue (a team and a masthead per generated organization), the
site holds the ids the shipped job files name, so that ``jobs/ckan-to-datapress.toml``
runs against it as it is: team ``ab12x`` and masthead ``main``. Team ``main`` and masthead
``simulator`` stay too (the benchmarks' job files use them). The banner lists every team
and masthead id, for a job file's ``team`` / ``masthead`` and ``[target.teams]`` maps.
"""

from __future__ import annotations

from aiohttp import web

from bulkport.testing.apputil import set_items
from bulkport.testing.catalog import seed_datapress
from bulkport.testing.datapress import create_datapress_app
from bulkport.testing.datapress_store import DEFAULT_MASTHEADS, DataPressStore
from bulkport.testing.faults import Faults

# What jobs/ckan-to-datapress.toml's [target] names.
JOB_TEAM, JOB_MASTHEAD = "ab12x", "main"
# Team and masthead id → title, made before the catalogue so its ids cannot take them.
TEAMS = {JOB_TEAM: "Main team", "main": "Simulator team"}
MASTHEADS = {JOB_MASTHEAD: "Main", **DEFAULT_MASTHEADS}


def simulated_datapress(*, datasets: int = 100, resources: int = 2, file_size: int = 2048,
                        seed: int = 0, api_key: str = "simulator-key", prefix: str = "/api/v3",
                        faults: Faults | None = None) -> web.Application:
    """The app of ``bulkport simulate datapress``: a seeded site and an admin's key.

    Args:
        datasets, resources, file_size, seed: the synthetic catalogue (see
            :func:`~bulkport.testing.catalog.seed_datapress`).
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
