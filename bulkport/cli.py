"""The ``bulkport`` command.

Exit codes: 0 everything done; 1 some records failed (see the report); 2 the run was
aborted (bad job file, wrong key, another fatal error); 130 interrupted by a signal.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec

from bulkport import __version__, watchdog
from bulkport.config import JobConfig, job_name, load_job
from bulkport.errors import ConfigError, abort_reason
from bulkport.history import History
from bulkport.jobs.migrate import migrate
from bulkport.jobs.mirror import mirror
from bulkport.jobs.revoke import revoke_tokens
from bulkport.outputs import check_directory, check_distinct, check_output
from bulkport.redact import RedactingFilter, redact
from bulkport.report import REPORTS_DIR, Report, run_report_path
from bulkport.store import DATABASE, StateStore, check_state_dir

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


async def execute(job: JobConfig, *, store: StateStore, report: Report, dry_run: bool,
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
                await _run_kind(job, store=store, report=report, dry_run=dry_run,
                                progress=progress, quiet=quiet, full=full, stop=stop)
                tg.cancel_scope.cancel()
    except Exception as exc:
        if activity.stalled is None:
            raise
        raise watchdog.Stalled(activity.stalled) from exc  # the stall caused what followed
    if activity.stalled is not None:
        raise watchdog.Stalled(activity.stalled)
    return stop.is_set()


async def _run_kind(job: JobConfig, *, store: StateStore, report: Report, dry_run: bool,
                    progress: bool, quiet: bool, full: bool, stop: anyio.Event) -> None:
    if job.kind == "migrate":
        await migrate(job, store=store, report=report, dry_run=dry_run,
                      progress=progress, stop=stop)
    elif job.kind == "mirror":
        await mirror(job, store=store, report=report, dry_run=dry_run,
                     progress=progress, stop=stop, full=full, out=None if quiet else sys.stdout)
    elif job.kind == "revoke-tokens":
        await revoke_tokens(job, store=store, report=report, confirmed=not dry_run,
                            progress=progress, stop=stop)
    else:
        raise ConfigError(f"{job.path}: kind {job.kind!r} is not available in this version")


def run_job(job: JobConfig, *, state_dir: Path, report_path: Path | None, dry_run: bool,
            progress: bool, quiet: bool = False, csv_path: Path | None = None,
            full: bool = False) -> int:
    """Run a loaded job, record it in the state's history, write its reports, print the
    summary; return the exit code.

    Every run, dry or refused, gets a row in the history and its own report in
    ``<state dir>/reports/`` (the newest also as ``<state dir>/report.json``, and at
    ``report_path`` when given); ``[options] keep_reports`` prunes the older ones.
    """
    check_paths(job, state_dir=state_dir, report_path=report_path, csv_path=csv_path)
    report = Report(job.name, job.kind, dry_run=dry_run)
    interrupted = False
    try:
        with StateStore(state_dir) as store:
            history = History(store)
            report.bind(history, history.begin(**_described(job), dry_run=dry_run,
                                               started=report.started))
            try:
                interrupted = anyio.run(lambda: execute(
                    job, store=store, report=report, dry_run=dry_run, progress=progress,
                    quiet=quiet, full=full))
            except Exception as exc:
                report.aborted = abort_reason(exc)
                if report.aborted is None:
                    raise
            finally:
                report.finish()
            if interrupted:
                report.aborted = "interrupted; run the same command again to resume"
            code = _exit_code(report, interrupted)
            path = _write_reports(report, state_dir, report_path, csv_path, history, code,
                                  keep=job.options.keep_reports)
    except ConfigError as error:
        if report.run is not None:
            raise
        _record_refused(job, state_dir, report, error, dry_run=dry_run)
        raise
    summary = report.summary()
    log.info("%s (report: %s)", summary, path)
    if not quiet or not report.ok:
        print(summary, file=sys.stderr)
        print(f"report: {path}", file=sys.stderr)
    return code


def _exit_code(report: Report, interrupted: bool) -> int:
    if interrupted:
        return EXIT_INTERRUPTED
    if report.aborted:
        return EXIT_ABORTED
    return EXIT_OK if report.ok else EXIT_FAILED


def _described(job: JobConfig) -> dict[str, Any]:
    """What the history keeps of a job: where it came from, what it joins, its options."""
    return {"job": str(job.path.resolve()), "name": job.name, "kind": job.kind,
            "source": job.source.url if job.source else None,
            "target": job.target.url if job.target else None,
            "options": msgspec.to_builtins(job.options)}


def _write_reports(report: Report, state_dir: Path, report_path: Path | None,
                   csv_path: Path | None, history: History, code: int, *, keep: int) -> Path:
    """Write the run's report (per run, as the latest, and where --report says), end its
    history row, prune; return the path to show."""
    assert report.run is not None
    own = run_report_path(state_dir, report.started, report.run)
    history.end(report.run, exit_code=code, aborted=report.aborted, counts=report.counts,
                failures=report.counts["failed"], report=str(own))
    try:
        report.write(own, "report")
        report.write(state_dir / REPORT_FILE, "report")
        if report_path is not None:
            report.write(report_path, "--report")
        for old in history.prune(keep):
            Path(old).unlink(missing_ok=True)
        if csv_path is not None:
            report.write_csv(csv_path)
    except ConfigError:  # checked before the run, so a race or a full disk: say what was done
        print(report.summary(), file=sys.stderr)
        raise
    return report_path or own


def _record_refused(job: JobConfig, state_dir: Path, report: Report, error: ConfigError, *,
                    dry_run: bool) -> None:
    """A run refused before it started (another run holds the state) still gets its row."""
    try:
        with StateStore(state_dir, shared=True) as store:
            history = History(store)
            run = history.begin(**_described(job), dry_run=dry_run, started=report.started)
            history.end(run, exit_code=EXIT_ABORTED, aborted=str(error), counts={},
                        failures=0, report=None)
    except (ConfigError, sqlite3.Error):
        pass  # the state itself is what is wrong: the error already says so


def check_paths(job: JobConfig, *, state_dir: Path, report_path: Path | None,
                csv_path: Path | None) -> None:
    """Refuse, before any request, a state directory or output the run could not write.

    Raises:
        ConfigError: one line naming the path and what is wrong with it.
    """
    check_state_dir(state_dir)
    check_directory(state_dir / REPORTS_DIR, "reports folder")
    check_output(state_dir / REPORT_FILE, "report")
    if report_path is not None:
        check_output(report_path, "--report")
    if csv_path is not None:
        check_output(csv_path, "--csv")
    check_distinct({"the job file": job.path, "the state database": state_dir / DATABASE,
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


def _state_dir(args: argparse.Namespace) -> Path:
    """Where a job keeps its state: --state-dir, else ``.bulkport/<job name>``."""
    if args.state_dir:
        return Path(args.state_dir)
    return Path.cwd() / ".bulkport" / job_name(Path(args.job))


def _cmd_history(args: argparse.Namespace) -> int:
    from bulkport.views import open_history, print_history

    with open_history(_state_dir(args)) as store:
        print_history(History(store), sys.stdout)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from bulkport.views import chosen_run, open_history, print_run

    with open_history(_state_dir(args)) as store:
        history = History(store)
        print_run(history, chosen_run(history, args.run), sys.stdout,
                  actions=tuple(args.action or ()), entities=tuple(args.entity or ()))
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from bulkport.views import open_history, redirect_format, write_redirects

    path = Path(args.redirects)
    fmt = redirect_format(path, args.format)
    check_output(path, "--redirects")
    with open_history(_state_dir(args)) as store:
        count = write_redirects(History(store), path, fmt)
    print(f"{count:,} redirects written to {path} ({fmt})", file=sys.stderr)
    return EXIT_OK


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

    history = commands.add_parser("history", help="list a job's runs (dry and refused ones "
                                                   "included)")
    _add_state_arguments(history)
    history.set_defaults(func=_cmd_history)

    show = commands.add_parser("show", help="what one run did: each dataset, file and token "
                                             "it acted on")
    _add_state_arguments(show)
    show.add_argument("run", nargs="?", type=int, help="the run's number (default: the last)")
    show.add_argument("--action", action="append", metavar="A",
                      help="only these actions (created, updated, deleted, revoked, failed…); "
                           "repeat for several")
    show.add_argument("--entity", action="append", choices=("dataset", "file", "token"),
                      help="only datasets, files or tokens")
    show.set_defaults(func=_cmd_show)

    export = commands.add_parser("export", help="write what a job's migrations leave behind")
    _add_state_arguments(export)
    export.add_argument("--redirects", required=True, metavar="F",
                        help="the old → new URL of every dataset page and file, as CSV "
                             "(F.csv) or an nginx map (F.map or F.conf)")
    export.add_argument("--format", choices=("csv", "nginx"), help="the format of F")
    export.set_defaults(func=_cmd_export)

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


def _add_state_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="the job file (TOML); its ${VARS} need not be set")
    parser.add_argument("--state-dir", help="the state the job ran with (default: "
                                            ".bulkport/<job name>)")


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
    except BrokenPipeError:  # `bulkport show … | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
