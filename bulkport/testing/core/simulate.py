"""A seeded simulated portal in a background thread, for scripts, notebooks and tests::

    with bulkport.testing.simulate("ckan", datasets=100) as portal:
        print(portal.url)  # what a job file's url takes; portal.api_key is an admin's key

The portal is the one ``bulkport simulate KIND`` serves, built from the same arguments.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bulkport.testing.core.server import ThreadedServer, _wrong_number, build_parser, build_simulator
from bulkport.testing.core.simulator import load


@dataclass(frozen=True)
class SimulatedPortal:
    """A running simulated portal; ``str()`` of it is its URL.

    Attributes:
        kind: the simulator's name, which is also the job file's ``type`` of the portal.
        url: where the portal is, as a job file's ``url`` names it.
        api_key: a key the portal accepts with an administrator's rights.
        app: the application served (its content is ``app["store"]``).
        banner: what ``bulkport simulate`` prints besides the URL: ids a job file needs.
    """

    kind: str
    url: str
    api_key: str = field(repr=False)
    app: web.Application = field(repr=False)
    banner: tuple[str, ...] = field(default=(), repr=False)  # may hold a token

    def __str__(self) -> str:
        return self.url


def simulation_arguments(kind: str, datasets: int | None = None,
                         **options: Any) -> argparse.Namespace:
    """The arguments ``bulkport simulate KIND`` would parse, defaults overridden by ``options``.

    Raises:
        LookupError: no simulator is called ``kind``.
        TypeError: an option that simulator does not take.
        ValueError: a value it cannot serve (a negative count, a port out of range...).
    """
    args = build_parser(kind).parse_args([kind])
    known = sorted(set(vars(args)) - {"kind"})
    for name, value in {**options, "datasets": datasets}.items():
        if name not in known:
            raise TypeError(f"simulate({kind!r}) takes no option {name!r} (it takes "
                            f"{', '.join(known)})")
        if value is not None:
            setattr(args, name, value)
    wrong = _wrong_number(args)
    if wrong:
        raise ValueError(wrong)
    return args


@contextlib.contextmanager
def simulate(kind: str, *, datasets: int | None = None,
             **options: Any) -> Iterator[SimulatedPortal]:
    """Serve simulated portal ``kind`` from a background thread for the ``with`` block.

    Args:
        kind: which simulator, a KIND of ``bulkport simulate``.
        datasets: synthetic datasets to seed, with their files where the simulator hosts
            files (default: the simulator's own, as ``bulkport simulate``).
        options: any other option of ``bulkport simulate KIND``, named as its dest
            (``resources``, ``file_size``, ``latency``, ``error_rate``, ``seed``,
            ``api_key``, ``host``, ``port``, and the simulator's own, e.g. ``tokens``).

    Yields:
        The running portal; it stops when the block ends, however it ends.

    Raises:
        LookupError, TypeError, ValueError: see :func:`simulation_arguments`.
        RuntimeError: the server could not start (a port in use...).
    """
    args = simulation_arguments(kind, datasets, **options)
    simulator = load(kind)
    # The app is built in the server's own loop, as ThreadedServer wants.
    server = ThreadedServer(lambda: build_simulator(args), port=args.port, host=args.host)
    try:
        server.start()
        app = server.app
        assert app is not None  # set before start() returns
        yield SimulatedPortal(kind=kind, url=simulator.api_url(app, server.url),
                              api_key=args.api_key, app=app,
                              banner=tuple(app.get("banner", ())))
    finally:
        server.stop()
        store = server.app.get("store") if server.app is not None else None
        if store is not None:
            store.close()
