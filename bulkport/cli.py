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

import anyio

from bulkport import __version__, watchdog
from bulkport.checkpoint import JOURNAL, check_state_dir
from bulkport.config import JobConfig, load_job
from bulkport.errors import ConfigError, abort_reason
from bulkport.jobs.migrate import migrate
from bulkport.jobs.mirror import mirror
from bulkport.jobs.mirror_state import REPORTS_DIR, STATE_FILE, prune_reports
from bulkport.jobs.mirror_state import report_path as run_report_path
from bulkport.jobs.revoke import revoke_tokens
from bulkport.outputs import check_directory, check_distinct, check_output
from bulkport.redact import RedactingFilter, redact
from bulkport.report import Report

EXIT_OK, EXIT_FAILED, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 130
REPORT_FILE = "report.json"  # in the state directory, unless --report says otherwise
VERIFY_KINDS = ("migrate", "mirror")  # the jobs with a source and a target to compare
GC_THRESHOLD = 10_000  # allocations between two young-generation collections
log = logging.getLogger("bulkport")


def _setup_logging(verbose: bool, log_file: str | None = None, quiet: bool = False) -> None:
    """Warnings to stderr (errors only when ``quiet``); with ``log_file``, also every run's
    summary, timestamped, appended to that file."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    handlers: list[logging.Handler] = [handler]
    if log_file:
        check_output(Path(log_file), "--log-file")
        try:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            to_file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: {exc.strerror}") from None
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        to_file.setLevel(logging.DEBUG if verbose else logging.INFO)
        handlers.append(to_file)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, logging.FileHandler):
            old.close()
    for new in handlers:
        new.addFilter(RedactingFilter())
    root.handlers[:] = handlers
    root.setLevel(min(h.level for h in handlers))


async def _watch_signals(stop: anyio.Event, cancel: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop taking work and drain. Second one: stop at once (the
    requests in flight are cancelled; what is journaled stays journaled)."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stop.is_set():
                print(f"{signal.Signals(signum).name} again: stopping now", file=sys.stderr)
                cancel.cancel()
                return
            print(f"\n{signal.Signals(signum).name}: finishing the work in flight "
                  "(again to stop now)…", file=sys.stderr)
            stop.set()


async def execute(job: JobConfig, *, state_dir: Path, report: Report, dry_run: bool,
                  progress: bool, quiet: bool = False, full: bool = False) -> bool:
    """Run ``job``; return True when it was interrupted by a signal.

    Raises:
        Stalled: nothing moved for ``[options] stall_timeout`` seconds; the run was
            cancelled as by a second Ctrl-C.
    """
    stop = anyio.Event()
    activity = watchdog.Activity()
    try:
        with watchdog.using(activity):
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, stop, tg.cancel_scope)
                tg.start_soon(watchdog.watch, activity, job.options.stall_timeout,
                              tg.cancel_scope)
                await _run_kind(job, state_dir=state_dir, report=report, dry_run=dry_run,
                                progress=progress, quiet=quiet, full=full, stop=stop)
                tg.cancel_scope.cancel()
    except Exception as exc:
        if activity.stalled is None:
            raise
        raise watchdog.Stalled(activity.stalled) from exc  # the stall caused what followed
    if activity.stalled is not None:
        raise watchdog.Stalled(activity.stalled)
    return stop.is_set()


async def _run_kind(job: JobConfig, *, state_dir: Path, report: Report, dry_run: bool,
                    progress: bool, quiet: bool, full: bool, stop: anyio.Event) -> None:
    if job.kind == "migrate":
        await migrate(job, state_dir=state_dir, report=report, dry_run=dry_run,
                      progress=progress, stop=stop)
    elif job.kind == "mirror":
        await mirror(job, state_dir=state_dir, report=report, dry_run=dry_run,
                     progress=progress, stop=stop, full=full, out=None if quiet else sys.stdout)
    elif job.kind == "revoke-tokens":
        await revoke_tokens(job, state_dir=state_dir, report=report, confirmed=not dry_run,
                            progress=progress, stop=stop)
    else:
        raise ConfigError(f"{job.path}: kind {job.kind!r} is not available in this version")


def run_job(job: JobConfig, *, state_dir: Path, report_path: Path | None, dry_run: bool,
            progress: bool, quiet: bool = False, csv_path: Path | None = None,
            full: bool = False) -> int:
    """Run a loaded job, write its report, print the summary; return the exit code.

    A mirror keeps one report per run in ``<state dir>/reports/`` (the newest
    ``keep_reports``) unless ``report_path`` is given.
    """
    rotate = job.kind == "mirror" and report_path is None
    check_paths(job, state_dir=state_dir, report_path=report_path, csv_path=csv_path,
                rotate=rotate)
    report = Report(job.name, job.kind, dry_run=dry_run)
    interrupted = False
    try:
        interrupted = anyio.run(lambda: execute(job, state_dir=state_dir, report=report,
                                                dry_run=dry_run, progress=progress,
                                                quiet=quiet, full=full))
    except Exception as exc:
        report.aborted = abort_reason(exc)
        if report.aborted is None:
            raise
    report.finish()
    if interrupted:
        report.aborted = "interrupted; run the same command again to resume"
    path = report_path or (run_report_path(state_dir, report.started) if rotate
                           else state_dir / REPORT_FILE)
    summary = report.summary()
    try:
        report.write(path, "--report" if report_path else "report")
        if rotate:
            prune_reports(state_dir, job.options.keep_reports)
        if csv_path is not None:
            report.write_csv(csv_path)
    except ConfigError:  # checked before the run, so a race or a full disk: say what was done
        print(summary, file=sys.stderr)
        raise
    log.info("%s (report: %s)", summary, path)
    if not quiet or not report.ok:
        print(summary, file=sys.stderr)
        print(f"report: {path}", file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    if report.aborted:
        return EXIT_ABORTED
    return EXIT_OK if report.ok else EXIT_FAILED


def check_paths(job: JobConfig, *, state_dir: Path, report_path: Path | None,
                csv_path: Path | None, rotate: bool) -> None:
    """Refuse, before any request, a state directory or output the run could not write.

    Raises:
        ConfigError: one line naming the path and what is wrong with it.
    """
    check_state_dir(state_dir)
    if report_path is not None:
        check_output(report_path, "--report")
    elif rotate:
        check_directory(state_dir / REPORTS_DIR, "mirror reports folder")
    else:
        check_output(state_dir / REPORT_FILE, "report")
    if csv_path is not None:
        check_output(csv_path, "--csv")
    check_distinct({"the job file": job.path, "the journal": state_dir / JOURNAL,
                    "the mirror state": state_dir / STATE_FILE,
                    "--report": report_path, "--csv": csv_path})


def _cmd_run(args: argparse.Namespace) -> int:
    job = load_job(Path(args.job), connections=args.concurrency, reason=args.reason,
                   max_delete_fraction=args.max_delete_fraction,
                   max_delete_count=args.max_delete_count)
    state_dir = Path(args.state_dir) if args.state_dir else Path.cwd() / ".bulkport" / job.name
    progress = not args.no_progress and sys.stderr.isatty()
    # Revocation cannot be undone: it stays a dry run until confirmed.
    dry_run = args.dry_run or (job.kind == "revoke-tokens" and not args.yes)
    report_path, csv_path = _path(args.report), _path(args.csv)
    check_distinct({"the job file": job.path, "--report": report_path, "--csv": csv_path,
                    "--log-file": _path(args.log_file)})
    return run_job(job, state_dir=state_dir, report_path=report_path, dry_run=dry_run,
                   progress=progress and not args.quiet, quiet=args.quiet, csv_path=csv_path,
                   full=args.full)


def _path(given: str | None) -> Path | None:
    return Path(given) if given else None


def _cmd_verify(args: argparse.Namespace) -> int:
    from bulkport.jobs.verify import run_verify

    job = load_job(Path(args.job), connections=args.concurrency)
    if job.kind not in VERIFY_KINDS:
        raise ConfigError(f"{job.path}: verify compares the source and target of a "
                          f"{' or '.join(VERIFY_KINDS)} job; this is a {job.kind} job")
    report_path = _path(args.report)
    if report_path is not None:
        check_output(report_path, "--report")
    check_distinct({"the job file": job.path, "--report": report_path,
                    "--log-file": _path(args.log_file)})
    return run_verify(job, report_path=report_path,
                      quiet=args.quiet, shown=args.show)


def _cmd_demo(args: argparse.Namespace) -> int:
    from bulkport.demo import run_demo

    return run_demo(datasets=args.datasets, progress=not args.no_progress)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from bulkport.testing.core.server import main as simulate

    return simulate(args.argv)


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
    run.add_argument("--yes", action="store_true",
                     help="revoke-tokens: really revoke (without it the job is a dry run)")
    run.add_argument("--reason", help="revoke-tokens: the reason recorded with each revocation")
    run.add_argument("--csv", help="also write the items acted on (e.g. tokens) as CSV")
    run.add_argument("--full", action="store_true",
                     help="mirror: read the whole source and compare every dataset, not only "
                          "what changed since the last run")
    run.add_argument("--max-delete-fraction", type=float, metavar="F",
                     help="mirror: allow this run to delete this fraction of the mirrored "
                          "datasets ([options] max_delete_fraction, default 0.1)")
    run.add_argument("--max-delete-count", type=int, metavar="N",
                     help="mirror: allow this run to delete this many datasets")
    _add_cron_arguments(run)
    run.set_defaults(func=_cmd_run)

    verify = commands.add_parser("verify", help="compare a job's source and target, "
                                                "independently of any state; exit 1 if they differ")
    verify.add_argument("job", help="the job file (TOML) of a migrate or mirror job")
    verify.add_argument("--report", help="also write the differences as a JSON report")
    verify.add_argument("--concurrency", type=int, help="connections per host")
    verify.add_argument("--show", type=int, default=50, help="differences printed (default 50)")
    _add_cron_arguments(verify)
    verify.set_defaults(func=_cmd_verify)

    demo = commands.add_parser("demo", help="migrate a simulated CKAN into a simulated "
                                            "Opendatasoft, no account needed")
    demo.add_argument("--datasets", type=int, default=300)
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_cmd_demo)

    # The simulators parse their own options (a job never loads them): with no option
    # prefix, every word after "simulate", --help included, is handed to them as it is.
    simulate = commands.add_parser("simulate", help="serve a simulated portal", add_help=False,
                                   prefix_chars="\0")
    simulate.add_argument("argv", nargs=argparse.REMAINDER)
    simulate.set_defaults(func=_cmd_simulate)
    return parser


def _add_cron_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true",
                        help="print nothing unless something failed (for cron)")
    parser.add_argument("--log-file", help="append the run's summary and warnings to this file")


def _tune_gc() -> None:
    # A run keeps tens of thousands of objects alive (listing pages, datasets and requests
    # in flight); at the default threshold (700) the cycle collector re-scans them hundreds
    # of times per run, up to a fifth of the CPU. Cycles are rare here, so collecting less
    # often costs no memory.
    if gc.get_threshold()[0] < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _tune_gc()
    try:
        _setup_logging(args.verbose, getattr(args, "log_file", None),
                       getattr(args, "quiet", False))
        return int(args.func(args))
    except ConfigError as error:
        print(f"error: {redact(str(error))}", file=sys.stderr)
        return EXIT_ABORTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
