"""Fault injection and request accounting for the simulators.

Two aiohttp middlewares:

- :func:`accounting_middleware` counts every request in ``app["stats"]`` under a route
  label (``"GET /datasets/"``, ``"ckan:package_search"``, ...), faulted ones included;
- :func:`fault_middleware` adds latency, then with probability ``error_rate`` injects one
  fault: a 500, a 503, a 429 with ``Retry-After``, a connection dropped before the handler
  runs, or one dropped after it ran (the side effect happened, the reply is lost).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from bulkport.testing.core.responses import DROP_AFTER_KEY, drop_connection, json_response

ErrorBody = Callable[[int, str], dict[str, Any]]

FAULT_KINDS = ("500", "503", "429", "drop_before", "drop_after")
_MESSAGES = {500: "Internal Server Error", 503: "Service Unavailable",
             429: "Too Many Requests"}


@dataclass
class Faults:
    """What to inject: ``latency`` seconds on every request, faults at ``error_rate``.

    ``kinds`` narrows the faults drawn (any of :data:`FAULT_KINDS`), e.g. ``("429",)``.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    retry_after: float = 1.0
    seed: int | None = None
    kinds: tuple[str, ...] = FAULT_KINDS


class RequestStats(Counter[str]):
    """Requests by route label; ``faults`` and ``faults:<kind>`` count injected faults.

    ``requests`` is the total number of requests received (faults do not add to it).
    """

    requests: int = 0

    def count_request(self, label: str) -> None:
        self.requests += 1
        self[label] += 1

    def count_fault(self, kind: str) -> None:
        self["faults"] += 1
        self["faults:" + kind] += 1


def format_retry_after(seconds: float) -> str:
    """``Retry-After`` value: whole seconds as an integer, else a decimal."""
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def accounting_middleware(label: Callable[[web.Request], str]) -> Middleware:
    """Count each request in ``request.app["stats"]`` under ``label(request)``."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request.app["stats"].count_request(label(request))
        return await handler(request)

    return middleware


def fault_middleware(faults: Faults, error_body: ErrorBody) -> Middleware:
    """Build the middleware that injects ``faults``; error replies use ``error_body``."""
    unknown = set(faults.kinds) - set(FAULT_KINDS)
    if unknown or not faults.kinds:
        raise ValueError(f"fault kinds must be among {FAULT_KINDS}, got {faults.kinds}")
    rng = random.Random(faults.seed)
    kinds = tuple(faults.kinds)
    retry_after = format_retry_after(faults.retry_after)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if faults.latency > 0:
            await asyncio.sleep(faults.latency)
        if faults.error_rate <= 0 or rng.random() >= faults.error_rate:
            return await handler(request)
        kind = rng.choice(kinds)
        request.app["stats"].count_fault(kind)
        if kind == "drop_before":
            drop_connection(request)
            # Nothing can be written any more; aiohttp discards this reply quietly.
            return web.Response(status=500)
        if kind == "drop_after":
            request[DROP_AFTER_KEY] = True
            response = await handler(request)
            drop_connection(request)
            return response
        status = int(kind)
        headers = {"Retry-After": retry_after} if status == 429 else None
        return json_response(error_body(status, _MESSAGES[status]), status, headers=headers)

    return middleware
