"""Helpers to assemble a simulator's aiohttp application."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bulkport.testing.core.faults import ErrorBody, Faults, accounting_middleware, fault_middleware


@web.middleware
async def client_gone_middleware(request: web.Request,
                                 handler: Handler) -> web.StreamResponse:
    """A client that hangs up mid-request (an upload it gave up) is routine, not an error."""
    try:
        return await handler(request)
    except ConnectionResetError:
        # Nobody is left to read it; aiohttp drops the reply quietly, like nginx's 499.
        return web.Response(status=499)


def build_app(label: Callable[[web.Request], str], *, faults: Faults | None,
              error_body: ErrorBody, extra_middlewares: tuple[Middleware, ...] = (),
              **items: Any) -> web.Application:
    """An application with accounting first, then faults, then ``extra_middlewares``.

    ``items`` are stored under plain string keys (``app["store"]``, ``app["stats"]``...),
    which is what tests and users reach for.
    """
    middlewares: list[Middleware] = [accounting_middleware(label), client_gone_middleware]
    if faults is not None:
        middlewares.append(fault_middleware(faults, error_body))
    middlewares.extend(extra_middlewares)
    # JSON bodies may exceed aiohttp's 1 MiB default; files are streamed and never read whole.
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 * 1024)
    set_items(app, **items)
    return app


def set_items(app: web.Application, **items: Any) -> None:
    """Store ``items`` in ``app`` under plain string keys (``app["banner"]``...)."""
    with warnings.catch_warnings():
        # Plain string keys are this API's contract; aiohttp would rather have AppKeys.
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        for key, value in items.items():
            app[key] = value
