"""What ``bulkport simulate`` knows of a simulator, and how it finds them.

Every package of :mod:`bulkport.testing` but ``core`` is a simulator, named after its
package, whose ``__init__`` declares ``SIMULATOR``, a :class:`Simulator`. Listing the
simulators reads package names only; a simulator is imported once it is asked for.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

import bulkport.testing
from bulkport.testing.core.faults import Faults

SHARED = "core"  # the one package of bulkport.testing that is no simulator


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A simulator that takes only the options every simulator takes."""


def _at_url(app: web.Application, url: str) -> str:
    return url


@dataclass(frozen=True)
class Simulator:
    """One simulated portal, as ``bulkport simulate NAME`` serves it.

    Attributes:
        name: its package's name, what ``bulkport simulate`` takes.
        summary: what it simulates, for ``--help`` (a phrase: "a CKAN site, ...").
        build: the seeded app, from the parsed arguments and the faults they ask for.
        add_arguments: adds its own options to the parser (``--tokens``...).
        datasets: synthetic datasets served when ``--datasets`` is not given.
        authorization: what a client sends before the key, as the start line shows it.
        address: where its API is, for an app served at a URL (a path under it...).
        api_url: the URL a job file's ``url`` takes, for an app served at a URL.
    """

    name: str
    summary: str
    build: Callable[[argparse.Namespace, Faults | None], web.Application]
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    datasets: int = 100
    authorization: str = "Authorization: "
    address: Callable[[web.Application, str], str] = _at_url
    api_url: Callable[[web.Application, str], str] = _at_url


def names() -> list[str]:
    """The simulators' names, found without importing any."""
    return sorted(module.name for module in pkgutil.iter_modules(bulkport.testing.__path__)
                  if module.ispkg and module.name != SHARED)


def load(name: str) -> Simulator:
    """The simulator ``name``, imported now if it was not yet.

    Raises:
        LookupError: no simulator has that name.
        TypeError: its package declares no proper ``SIMULATOR``.
    """
    if name not in names():
        raise LookupError(f"no simulator {name!r}: expected one of {', '.join(names())}")
    package = importlib.import_module(f"{bulkport.testing.__name__}.{name}")
    simulator = getattr(package, "SIMULATOR", None)
    if not isinstance(simulator, Simulator) or simulator.name != name:
        raise TypeError(f"{package.__name__}.SIMULATOR must be a Simulator named {name!r}")
    return simulator
