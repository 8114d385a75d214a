"""The CKAN site ``bulkport simulate ckan`` serves: the synthetic catalog stored as CKAN
stores it, API tokens for ``revoke-tokens``, and the admin's own token in the banner."""

from __future__ import annotations

import argparse
import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web

from bulkport.testing.ckan.app import DEFAULT_USER, create_ckan_app
from bulkport.testing.ckan.model import munge_filename
from bulkport.testing.ckan.store import CkanStore
from bulkport.testing.ckan.tokens import seed_tokens
from bulkport.testing.ckan.validate import build_organization, build_package
from bulkport.testing.core.app import set_items
from bulkport.testing.core.catalog import EPOCH, ORGANIZATIONS, generate_packages
from bulkport.testing.core.faults import Faults


def seed_ckan(store: CkanStore, datasets: int = 100, resources: int = 2,
              file_size: int = 2048, seed: int = 0) -> list[str]:
    """Fill ``store`` directly (no HTTP) with the generated catalog; return the package ids.

    Ids and timestamps are deterministic too: ``metadata_modified`` spreads from 2024 on,
    so ``fq=metadata_modified:[... TO *]`` selects a predictable slice.
    """
    ids = random.Random(f"bulkport-ids:{seed}")

    def new_id() -> str:
        return str(uuid.UUID(int=ids.getrandbits(128), version=4))

    for org in ORGANIZATIONS:
        if org["name"] not in store.org_names:
            made = build_organization(org, name_taken=lambda _: False, new_id=new_id)
            made["created"] = EPOCH.isoformat(timespec="microseconds")
            store.save_org(made)
    created: list[str] = []
    for i, (pkg, files) in enumerate(generate_packages(datasets, resources, file_size, seed)):
        when = EPOCH + timedelta(hours=i, microseconds=i)
        modified = when + timedelta(days=ids.randint(0, 400), seconds=ids.randint(0, 86399))
        data = {**pkg, "id": new_id(), "metadata_modified": modified.isoformat()}
        # Stored as CKAN stores an upload: under the munged file name.
        data["resources"] = [{**res, "id": new_id(), "created": when.isoformat(),
                              **({"size": file.size, "url": munge_filename(res["url"])}
                                 if file else {})}
                             for res, file in zip(pkg["resources"], files, strict=True)]
        stored = build_package(data, store, existing=None, sysadmin=True, create_unowned=True,
                               creator_id=store.user_id("admin"))
        stored["metadata_created"] = when.isoformat(timespec="microseconds")
        store.save_package(stored)
        for res, file in zip(stored["resources"], files, strict=True):
            if file is not None:
                store.blobs.put_synthetic(res["id"], file)
        created.append(stored["id"])
    return created


def seed_admin_tokens(store: CkanStore, tokens: int, *, seed: int) -> list[str]:
    """The admin's own API token (a JWT ``api_token_list`` shows) and ``tokens`` more.

    Returns:
        The banner lines that say so.
    """
    jti, token = store.accounts.create_token(DEFAULT_USER, "simulator")
    lines = [f"the admin's API token (a JWT, id {jti} in api_token_list): {token}"]
    if tokens > 0:
        users = max(1, min(20, tokens))
        seed_tokens(store.accounts, users=users, tokens=tokens, seed=seed)
        lines.append(f"{tokens} more API tokens seeded over {users} users (user000…), "
                     "about half named datapusher: try jobs/revoke-datapusher-tokens.toml")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bulkport simulate ckan`` besides those every simulator takes."""
    parser.add_argument("--tokens", type=int, default=0,
                        help="API tokens to seed over up to 20 users, about half named "
                             "datapusher, for revoke-tokens (default %(default)s)")


def seeded_site(args: argparse.Namespace,
                create_app: Callable[[CkanStore, dict[str, str]], web.Application]
                ) -> web.Application:
    """``create_app(store, api_keys)`` over a store seeded as ``args`` say, with the
    admin's tokens in ``app["banner"]``: a CKAN site, or a site built on one."""
    store = CkanStore(seed=args.seed)
    seed_ckan(store, datasets=args.datasets, resources=args.resources,
              file_size=args.file_size, seed=args.seed)
    app = create_app(store, {args.api_key: DEFAULT_USER})
    set_items(app, banner=seed_admin_tokens(store, args.tokens, seed=args.seed))
    return app


def simulated_site(args: argparse.Namespace, faults: Faults | None) -> web.Application:
    """The app of ``bulkport simulate ckan``, from its parsed arguments."""
    return seeded_site(args, lambda store, keys: create_ckan_app(store, api_keys=keys,
                                                                 faults=faults))
