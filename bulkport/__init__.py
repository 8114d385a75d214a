"""bulkport: move, mirror and clean up open-data portal catalogs at high speed.

From Python::

    import bulkport

    report = bulkport.run("jobs/ckan-to-ods.toml", dry_run=True)
    report.counts["would_create"], report.failures, report.html

See :mod:`bulkport.api` (``run``, ``run_async``, ``verify``, ``check``) and
:func:`bulkport.testing.simulate` for portals to try them on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from bulkport.api import (
        Check,
        Comparison,
        check,
        check_async,
        run,
        run_async,
        verify,
        verify_async,
    )
    from bulkport.errors import ConfigError
    from bulkport.results import RunReport

__all__ = ["Check", "Comparison", "ConfigError", "RunReport", "__version__", "check",
           "check_async", "run", "run_async", "verify", "verify_async"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: ``bulkport.cli`` and the portals import this package too, and
    # need none of it.
    if name in __all__:
        from bulkport import api

        return getattr(api, name)
    raise AttributeError(f"module 'bulkport' has no attribute {name!r}")
