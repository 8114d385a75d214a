"""The PortalJS Cloud portal ``bulkport simulate portaljs`` serves: the CKAN site of
``bulkport simulate ckan`` under ``/@NAME``, its object store on a second host name."""

from __future__ import annotations

import argparse

from aiohttp import web

from bulkport.testing.ckan import seed as ckan_seed
from bulkport.testing.core.faults import Faults
from bulkport.testing.portaljs.app import create_portaljs_app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``bulkport simulate portaljs`` besides those every simulator takes."""
    ckan_seed.add_arguments(parser)
    parser.add_argument("--portal", dest="portal_name", default="demo",
                        help="the portal's name, API at /@NAME (default %(default)s)")
    parser.add_argument("--url-ttl", type=int, default=3600,
                        help="presigned URL lifetime, seconds (default %(default)s)")


def object_host_for(host: str) -> str:
    """The object store's host name for an API served on ``host``.

    Both names must reach the listening socket and differ, so that they are two origins:
    ``localhost`` for an API on 127.0.0.1 (or any address), ``127.0.0.1`` for one on
    ``localhost``.
    """
    return "127.0.0.1" if host == "localhost" else "localhost"


def simulated_site(args: argparse.Namespace, faults: Faults | None) -> web.Application:
    """The app of ``bulkport simulate portaljs``, from its parsed arguments."""
    return ckan_seed.seeded_site(args, lambda store, keys: create_portaljs_app(
        store, portal=args.portal_name, api_keys=keys, faults=faults, url_ttl=args.url_ttl,
        object_host=object_host_for(args.host)))


def api_url(app: web.Application, url: str) -> str:
    """The portal's URL, as a job file's ``url`` names it, for a server at ``url``."""
    return f"{url}/@{app['config'].portal}"


def address(app: web.Application, url: str) -> str:
    """Where the portal's API is for a server at ``url``, and its object store."""
    return f"{api_url(app, url)} (object store at {app['config'].object_origin(url)})"
