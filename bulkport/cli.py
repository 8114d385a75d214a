"""The ``bulkport`` command.

Exit codes: 0 everything done; 1 some records failed (see the report); 2 the run was
aborted (bad job file, wrong key, another fatal error); 130 interrupted by a signal.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from pathlib import Path

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

import anyio

from bulkport import __version__
from bulkport.config import JobConfig, load_job
from bulkport.errors import BulkportError, ConfigError, FatalError
from bulkport.migrate import migrate
from bulkport.redact import RedactingFilter, redact
from bulkport.report import Report

EXIT_OK, EXIT_FAILED, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 130
GC_THRESHOLD = 10_000  # allocations between two young-generation collections
log = logging.getLogger("bulkport")


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = next((e for e in exc.exceptions if isinstance(e, BulkportError)), exc.exceptions[0])
    return exc


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


async def _watch_signals(stop: anyio.Event, cancel: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop taking work and drain. Second one: stop at once."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                cancel.cancel()
                return
            print(f"\n{signal.Signals(signum).name}: finishing the work in flight "
                  "(again to stop now)…", file=sys.stderr)
            stop.set()


async def execute(job: JobConfig, *, state_dir: Path, report: Report, dry_run: bool,
                  progress: bool) -> bool:
    """Run ``job``; return True when it was interrupted by a signal."""
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, stop, tg.cancel_scope)
        if job.kind != "migrate":
            raise ConfigError(f"{job.path}: kind {job.kind!r} is not available in this version")
        await migrate(job, state_dir=state_dir, report=report, dry_run=dry_run,
                      progress=progress, stop=stop)
        tg.cancel_scope.cancel()
    return stop.is_set()


def run_job(job: JobConfig, *, state_dir: Path, report_path: Path | None, dry_run: bool,
            progress: bool, quiet: bool = False) -> int:
    """Run a loaded job, write its report, print the summary; return the exit code."""
    report = Report(job.name, job.kind, dry_run=dry_run)
    interrupted = False
    try:
        interrupted = anyio.run(lambda: execute(job, state_dir=state_dir, report=report,
                                                dry_run=dry_run, progress=progress))
    except Exception as exc:
        error = first_error(exc)
        if not isinstance(error, BulkportError):
            raise
        report.aborted = redact(str(error) if isinstance(error, (FatalError, ConfigError))
                                else f"{type(error).__name__}: {error}")
    report.finish()
    if interrupted:
        report.aborted = "interrupted; run the same command again to resume"
    path = report_path or state_dir / "report.json"
    report.write(path)
    if not quiet or not report.ok:
        print(report.summary(), file=sys.stderr)
        print(f"report: {path}", file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    if report.aborted:
        return EXIT_ABORTED
    return EXIT_OK if report.ok else EXIT_FAILED


def _cmd_run(args: argparse.Namespace) -> int:
    job = load_job(Path(args.job), connections=args.concurrency)
    state_dir = Path(args.state_dir) if args.state_dir else Path.cwd() / ".bulkport" / job.name
    progress = not args.no_progress and sys.stderr.isatty()
    return run_job(job, state_dir=state_dir, report_path=Path(args.report) if args.report else None,
                   dry_run=args.dry_run, progress=progress)


def _cmd_demo(args: argparse.Namespace) -> int:
    from bulkport.demo import run_demo

    return run_demo(datasets=args.datasets, progress=not args.no_progress)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from bulkport.testing.server import run_simulator

    return run_simulator(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkport", description="Move, mirror and clean up open-data portal catalogs.")
    parser.add_argument("--version", action="version", version=f"bulkport {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every retry")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a job file")
    run.add_argument("job", help="the job file (TOML)")
    run.add_argument("--dry-run", action="store_true", help="plan and count, write nothing")
    run.add_argument("--state-dir", help="journal and reports (default: .bulkport/<job name>)")
    run.add_argument("--report", help="where to write the JSON report")
    run.add_argument("--concurrency", type=int, help="connections per host")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_cmd_run)

    demo = commands.add_parser("demo", help="migrate a simulated CKAN into a simulated "
                                            "Opendatasoft, no account needed")
    demo.add_argument("--datasets", type=int, default=300)
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_cmd_demo)

    simulate = commands.add_parser("simulate", help="serve a simulated portal")
    from bulkport.testing.server import add_simulate_arguments

    add_simulate_arguments(simulate)
    simulate.set_defaults(func=_cmd_simulate)
    return parser


def _tune_gc() -> None:
    # A run keeps tens of thousands of objects alive (listing pages, datasets and requests
    # in flight); at the default threshold (700) the cycle collector re-scans them hundreds
    # of times per run, up to a fifth of the CPU. Cycles are rare here, so collecting less
    # often costs no memory.
    if gc.get_threshold()[0] < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    _tune_gc()
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"error: {redact(str(error))}", file=sys.stderr)
        return EXIT_ABORTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
