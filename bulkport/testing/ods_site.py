"""The Opendatasoft domain ``bulkport simulate ods`` serves, and its start banner.

Besides the synthetic catalog (``--datasets``), the domain holds what the shipped job files
need, so that each runs against it as its header says:

- the custom metadata templates they name (:data:`JOB_TEMPLATES`): ``bulkport``
  (``jobs/demo.toml``'s ``extras_template``), ``ckan`` (the one ``jobs/ckan-to-ods.toml``
  and ``jobs/ods-to-ckan.toml`` suggest) and ``custom`` with ``bulkport_source_id`` (the
  ``mark_field`` of ``jobs/ckan-to-ods.toml`` and ``jobs/nightly-mirror.toml``, which
  ``bulkport verify`` needs), plus any ``--template NAME:FIELD,FIELD`` given;
- the admin's API key as a listed key (``GET /apikeys/`` shows it, labelled
  ``simulator``, as a real domain does), and ``--tokens N`` more over up to 20 users, about
  half labelled ``datapusher``, for ``jobs/revoke-datapusher-tokens.toml``.
"""

from __future__ import annotations

import argparse
import re

from aiohttp import web

from bulkport.testing.apputil import set_items
from bulkport.testing.faults import Faults
from bulkport.testing.ods import create_ods_app
from bulkport.testing.ods_apikeys import seed_apikeys
from bulkport.testing.ods_catalog import seed_ods
from bulkport.testing.ods_http import ADMIN_USER
from bulkport.testing.ods_store import OdsStore

# Template → fields the shipped job files name (tests/oracles checks jobs/*.toml against it).
JOB_TEMPLATES: dict[str, list[str]] = {
    "bulkport": ["source_extras"],
    "ckan": ["source_extras"],
    "custom": ["bulkport_source_id"],
}
ADMIN_KEY_LABEL = "simulator"
_NAME = re.compile(r"^[a-z0-9_]+$")


def template_option(text: str) -> tuple[str, list[str]]:
    """``--template NAME:FIELD[,FIELD...]`` as (name, fields)."""
    name, _, fields = text.partition(":")
    names = [f.strip() for f in fields.split(",") if f.strip()]
    if not _NAME.match(name) or not names or not all(_NAME.match(f) for f in names):
        raise argparse.ArgumentTypeError(
            f"expected NAME:FIELD[,FIELD...] of lower-case letters, digits and _, got {text!r}")
    return name, names


def simulated_ods(*, datasets: int = 0, resources: int = 2, file_size: int = 2048,
                  seed: int = 0, api_key: str = "simulator-key", tokens: int = 0,
                  templates: list[tuple[str, list[str]]] | None = None,
                  faults: Faults | None = None) -> web.Application:
    """The app of ``bulkport simulate ods``.

    Args:
        datasets, resources, file_size, seed: the synthetic catalog (see
            :func:`~bulkport.testing.ods_catalog.seed_ods`); 0 datasets: an empty domain.
        api_key: the domain administrator's key, also listed by ``GET /apikeys/``.
        tokens: API keys to seed besides it, over up to 20 users.
        templates: custom metadata templates to add to :data:`JOB_TEMPLATES` (a name
            given again gets the union of both field lists).
        faults: latency and errors to inject.

    Returns:
        The application; ``app["banner"]`` holds the lines that name its templates and keys.
    """
    custom = {name: list(fields) for name, fields in JOB_TEMPLATES.items()}
    for name, fields in templates or []:
        custom[name] = list(dict.fromkeys([*custom.get(name, []), *fields]))
    store = OdsStore(seed=seed, custom_templates=custom)
    seed_ods(store, datasets=datasets, resources=resources, file_size=file_size, seed=seed)
    # A listed record, not a bare accepted key: revoke-tokens sees it and spares it as its own.
    store.apikeys.create(ADMIN_USER, ADMIN_KEY_LABEL, key=api_key)
    users = max(1, min(20, tokens))
    if tokens > 0:
        seed_apikeys(store.apikeys, users=users, count=tokens, seed=seed)
    app = create_ods_app(store, api_keys=set(), faults=faults)
    set_items(app, banner=banner(store, custom, tokens, users))
    return app


def banner(store: OdsStore, custom: dict[str, list[str]], tokens: int, users: int) -> list[str]:
    """Lines naming the domain's custom templates and seeded keys, for a job file."""
    listed = ", ".join(f"{name} ({', '.join(fields)})" for name, fields in custom.items())
    lines = [f"  custom metadata templates: {listed} — for [target] extras_template and "
             'mark_field (e.g. "custom.bulkport_source_id", which verify needs)',
             f"  {len(store.apikeys.keys)} API keys listed by GET /apikeys/ (the admin's own "
             f"labelled {ADMIN_KEY_LABEL!r})"]
    if tokens > 0:
        lines.append(f"  {tokens} of them seeded over {users} users (user000…), about half "
                     'labelled datapusher: try jobs/revoke-datapusher-tokens.toml with '
                     'type = "ods"')
    return lines
