"""bulkport from Python: run, verify and check jobs from a script or a notebook.

Each call runs the job exactly as ``bulkport run`` does — same state directory, history,
reports and resume — and hands back the report instead of printing it. Inside a running
event loop (a Jupyter cell, an async script) the blocking calls run the job in a worker
thread, so they never fail with "this event loop is already running"; ``await
run_async(...)`` does the same without blocking the loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio

from bulkport import progress as progress_bar
from bulkport.config import JobConfig, JobSource, load_any
from bulkport.errors import ConfigError
from bulkport.preflight import Check, check_job
from bulkport.results import RunReport

T = TypeVar("T")
Progress = Callable[[int, int | None], None]  # (units done, total when known)


def run(job: JobSource, *, dry_run: bool = False, confirm: bool = False,
        state_dir: str | Path | None = None, report: str | Path | None = None,
        csv: str | Path | None = None, full: bool = False,
        progress: bool | Progress | None = None, **options: Any) -> RunReport:
    """Run a job; return its report.

    Args:
        job: a job file's path, TOML text, or a dict of its tables (text and dicts say
            their ``name``).
        dry_run: plan and count, write nothing.
        confirm: revoke-tokens: really revoke (without it the job is a dry run).
        state_dir: journal, history and reports (default ``.bulkport/<job name>``).
        report: also write the JSON report here.
        csv: also write the items acted on as CSV.
        full: mirror: compare every dataset, not only what changed.
        progress: True for a bar on stderr, a callable told ``(done, total)`` as units
            finish, None for a notebook bar in Jupyter and nothing elsewhere.
        options: ``[options]`` values that override the job file's (``connections=4``).

    Raises:
        ConfigError: the job is invalid or cannot start (one line: what and where). A run
            that starts and then stops (wrong key, stall) returns a report whose
            ``aborted`` says why.
    """
    loaded = load_any(job, **options)
    return _blocking(partial(_run_loaded, loaded, dry_run=dry_run, confirm=confirm,
                             state_dir=state_dir, report=report, csv=csv, full=full,
                             progress=progress))


async def run_async(job: JobSource, **kwargs: Any) -> RunReport:
    """:func:`run`, awaited: the event loop goes on while the job runs in a worker thread."""
    return await anyio.to_thread.run_sync(partial(run, job, **kwargs))


@dataclass(frozen=True)
class Comparison:
    """What :func:`verify` found: whether the target holds exactly what the source holds."""

    matches: bool
    at_source: int
    on_target: int
    hidden: int
    differences: list[str]


def verify(job: JobSource, **options: Any) -> Comparison:
    """Compare a migrate or mirror job's source and target, independently of any state.

    Raises:
        ConfigError: the job is invalid, or not a migrate or mirror job.
        Exception: the comparison could not run (e.g. a wrong key): as the portal said.
    """
    from bulkport.jobs.verify import check_verifiable
    from bulkport.jobs.verify import verify as compare

    loaded = load_any(job, **options)
    check_verifiable(loaded)
    verdict = _blocking(partial(anyio.run, compare, loaded))
    return Comparison(matches=verdict.matches, at_source=verdict.at_source,
                      on_target=verdict.on_target, hidden=verdict.hidden,
                      differences=verdict.lines())


async def verify_async(job: JobSource, **options: Any) -> Comparison:
    """:func:`verify`, awaited in a worker thread."""
    return await anyio.to_thread.run_sync(partial(verify, job, **options))


def check(job: JobSource, **options: Any) -> list[Check]:
    """Ask the job's portals, read-only, what its run needs (``bulkport check``): a
    :class:`~bulkport.preflight.Check` per step; all passed when every ``ok`` is True.

    Raises:
        ConfigError: the job file itself is invalid.
    """
    loaded = load_any(job, **options)
    return _blocking(partial(anyio.run, check_job, loaded))


async def check_async(job: JobSource, **options: Any) -> list[Check]:
    """:func:`check`, awaited in a worker thread."""
    return await anyio.to_thread.run_sync(partial(check, job, **options))


def _run_loaded(job: JobConfig, *, dry_run: bool, confirm: bool, state_dir: str | Path | None,
                report: str | Path | None, csv: str | Path | None, full: bool,
                progress: bool | Progress | None) -> RunReport:
    from bulkport.runner import run_job

    if job.kind == "revoke-tokens" and not confirm:
        dry_run = True  # revocation cannot be undone: it stays a dry run until confirmed
    where = Path(state_dir) if state_dir else Path.cwd() / ".bulkport" / job.name
    with _told(None if isinstance(progress, bool) else progress or _notebook_bar()):
        return run_job(job, state_dir=where, report_path=Path(report) if report else None,
                       dry_run=dry_run, progress=progress is True, out=None,
                       csv_path=Path(csv) if csv else None, full=full, signals=False)


def _blocking(call: Callable[[], T]) -> T:
    """``call()``, in a worker thread when this thread runs an event loop already."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return call()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulkport") as pool:
        return pool.submit(call).result()


@contextmanager
def _told(listener: Progress | None) -> Iterator[None]:
    token = progress_bar.listener.set(listener)
    try:
        yield
    finally:
        progress_bar.listener.reset(token)


def _notebook_bar() -> Progress | None:
    """A tqdm notebook bar when running in Jupyter (its kernel is loaded), else None."""
    if "ipykernel" not in sys.modules:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(unit="dataset")

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update


__all__ = ["Check", "Comparison", "ConfigError", "RunReport", "check", "check_async", "run",
           "run_async", "verify", "verify_async"]
