"""Portal simulators for the demo, the tests and the benchmarks.

aiohttp.web applications that implement the CKAN Action API (and PortalJS Cloud's flavour
of it, with presigned uploads to an S3-like store), the Opendatasoft Automation API v1.0
and the DataPress API over in-memory stores, with a synthetic catalog and fault injection::

    store = CkanStore()
    seed_ckan(store, datasets=50)
    async with serve(create_ckan_app(store, faults=Faults(error_rate=0.1))) as url:
        ...

or, from a script or a notebook, the site ``bulkport simulate`` serves::

    with simulate("ckan", datasets=100) as portal:
        ...  # portal.url, portal.api_key

One package per simulator (``ckan``, ``portaljs``, ``ods``, ``datapress``), each with the
same modules: ``app`` (the application), ``store`` (its content), ``errors`` (its error
replies), ``seed`` (the site ``bulkport simulate`` serves); ``core`` holds what they
share. The names below are imported on first use, so importing this package loads no
simulator.
"""

from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

# The public names, where they live. At run time __getattr__ reads this block (one list
# for type checkers and for the imports) and imports a name's module when it is first used.
if TYPE_CHECKING:
    from bulkport.testing.ckan.app import create_ckan_app
    from bulkport.testing.ckan.seed import seed_ckan
    from bulkport.testing.ckan.store import CkanStore
    from bulkport.testing.core.catalog import generate_packages
    from bulkport.testing.core.faults import FAULT_KINDS, Faults, RequestStats
    from bulkport.testing.core.files import Blob, BlobStore, SyntheticFile
    from bulkport.testing.core.server import ThreadedServer, serve
    from bulkport.testing.core.simulate import SimulatedPortal, simulate
    from bulkport.testing.datapress.app import create_datapress_app
    from bulkport.testing.datapress.seed import seed_datapress
    from bulkport.testing.datapress.store import DataPressStore
    from bulkport.testing.ods.app import create_ods_app
    from bulkport.testing.ods.explore import RecordSet
    from bulkport.testing.ods.seed import seed_ods
    from bulkport.testing.ods.store import OdsStore
    from bulkport.testing.portaljs.app import create_portaljs_app

__all__ = [
    "FAULT_KINDS",
    "Blob",
    "BlobStore",
    "CkanStore",
    "DataPressStore",
    "Faults",
    "OdsStore",
    "RecordSet",
    "RequestStats",
    "SimulatedPortal",
    "SyntheticFile",
    "ThreadedServer",
    "create_ckan_app",
    "create_datapress_app",
    "create_ods_app",
    "create_portaljs_app",
    "generate_packages",
    "seed_ckan",
    "seed_datapress",
    "seed_ods",
    "serve",
    "simulate",
]


@functools.cache
def _modules() -> dict[str, str]:
    """Public name → its module, from the ``if TYPE_CHECKING:`` imports above."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    guard = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    return {alias.asname or alias.name: statement.module for statement in guard.body
            if isinstance(statement, ast.ImportFrom) and statement.module
            for alias in statement.names}


def __getattr__(name: str) -> object:
    module = _modules().get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(importlib.import_module(module), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
