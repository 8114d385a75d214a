"""The ``bulkport`` command.

What a command finds or did (a run's summary, a dry run's plan, a history) goes to stdout;
diagnostics (warnings, errors, progress bars) go to stderr, so ``bulkport run job.toml >
log`` keeps the results. ``--json`` prints the summary as one JSON object instead.

Exit codes: 0 everything done; 1 some records failed (see the report); 2 the run was
aborted (bad job file, wrong key, another fatal error); 130 interrupted by a signal.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from pathlib import Path
from typing import Any

import argcomplete
import orjson
from argcomplete.shell_integration import shellcode

from bulkport import __version__
from bulkport.errors import ConfigError
from bulkport.redact import RedactingFilter, redact
from bulkport.results import EXIT_ABORTED, EXIT_INTERRUPTED, EXIT_OK, RunReport

# The portals, the HTTP layer and the state are imported by the commands that use them:
# completing a word in the shell starts ``bulkport`` each time, and must be quick.

GC_THRESHOLD = 10_000  # allocations between two young-generation collections
LOG_LEVELS = ("debug", "info", "warning", "error")
SHELLS = ("bash", "zsh", "fish")
log = logging.getLogger("bulkport")


def _setup_logging(level: str, log_file: str | None = None, quiet: bool = False) -> None:
    """Messages of ``level`` and above to stderr (errors only when ``quiet``); with
    ``log_file``, also every run's summary, timestamped, appended to that file."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    shown = logging.ERROR if quiet and level == "warning" else getattr(logging, level.upper())
    handler.setLevel(shown)
    handlers: list[logging.Handler] = [handler]
    if log_file:
        from bulkport.outputs import check_output

        check_output(Path(log_file), "--log-file")
        try:
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            to_file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--log-file {log_file}: {exc.strerror}") from None
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        to_file.setLevel(min(shown, logging.INFO))
        handlers.append(to_file)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, logging.FileHandler):
            old.close()
    for new in handlers:
        new.addFilter(RedactingFilter())
    root.handlers[:] = handlers
    root.setLevel(min(h.level for h in handlers))


def _print_result(result: RunReport, args: argparse.Namespace) -> None:
    """The run's summary on stdout (as JSON with ``--json``); nothing when ``--quiet`` and
    all went well."""
    log.info("%s (report: %s)", result.summary, result.path)  # the --log-file copy
    if args.json:
        print(orjson.dumps(result.brief()).decode())
    elif not args.quiet or not result.ok:
        print(result.text())


def _cmd_run(args: argparse.Namespace) -> int:
    from bulkport.config import load_job
    from bulkport.outputs import check_distinct
    from bulkport.runner import run_job

    job = load_job(Path(args.job), connections=args.concurrency, reason=args.reason,
                   max_delete_fraction=args.max_delete_fraction,
                   max_delete_count=args.max_delete_count)
    state_dir = Path(args.state_dir) if args.state_dir else Path.cwd() / ".bulkport" / job.name
    progress = not args.no_progress and not args.quiet and sys.stderr.isatty()
    # Revocation cannot be undone: it stays a dry run until confirmed.
    dry_run = args.dry_run or (job.kind == "revoke-tokens" and not args.yes)
    report_path, csv_path = _path(args.report), _path(args.csv)
    check_distinct({"the job file": job.path, "--report": report_path, "--csv": csv_path,
                    "--log-file": _path(args.log_file)})
    result = run_job(job, state_dir=state_dir, report_path=report_path, dry_run=dry_run,
                     progress=progress, out=None if args.quiet or args.json else sys.stdout,
                     csv_path=csv_path, full=args.full)
    _print_result(result, args)
    return result.exit_code


def _path(given: str | None) -> Path | None:
    return Path(given) if given else None


def _cmd_verify(args: argparse.Namespace) -> int:
    from bulkport.config import load_job
    from bulkport.jobs.verify import check_verifiable, run_verify
    from bulkport.outputs import check_distinct, check_output

    job = load_job(Path(args.job), connections=args.concurrency)
    check_verifiable(job)
    report_path = _path(args.report)
    if report_path is not None:
        check_output(report_path, "--report")
    check_distinct({"the job file": job.path, "--report": report_path,
                    "--log-file": _path(args.log_file)})
    return run_verify(job, report_path=report_path,
                      quiet=args.quiet, shown=args.show, as_json=args.json)


def _state_dir(args: argparse.Namespace) -> Path:
    """Where a job keeps its state: --state-dir, else ``.bulkport/<job name>``."""
    if args.state_dir:
        return Path(args.state_dir)
    from bulkport.config import job_name

    return Path.cwd() / ".bulkport" / job_name(Path(args.job))


def _cmd_history(args: argparse.Namespace) -> int:
    from bulkport.history import History
    from bulkport.views import open_history, print_history

    with open_history(_state_dir(args)) as store:
        print_history(History(store), sys.stdout, as_json=args.json)
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from bulkport.history import History
    from bulkport.views import chosen_run, open_history, print_run

    with open_history(_state_dir(args)) as store:
        history = History(store)
        print_run(history, chosen_run(history, args.run), sys.stdout,
                  actions=tuple(args.action or ()), entities=tuple(args.entity or ()),
                  as_json=args.json)
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from bulkport.history import History
    from bulkport.outputs import check_output
    from bulkport.views import open_history, redirect_format, write_redirects

    path = Path(args.redirects)
    fmt = redirect_format(path, args.format)
    check_output(path, "--redirects")
    with open_history(_state_dir(args)) as store:
        count = write_redirects(History(store), path, fmt)
    if args.json:
        print(orjson.dumps({"redirects": count, "path": str(path), "format": fmt}).decode())
    else:
        print(f"{count:,} redirects written to {path} ({fmt})")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from bulkport.demo import run_demo

    return run_demo(datasets=args.datasets, progress=not args.no_progress)


def _cmd_check(args: argparse.Namespace) -> int:
    from bulkport.config import load_job
    from bulkport.preflight import run_check

    job = load_job(Path(args.job), connections=args.concurrency)
    return run_check(job, sys.stdout, as_json=args.json)


def _cmd_completion(args: argparse.Namespace) -> int:
    # argcomplete's script asks ``bulkport`` itself what completes a word: the commands and
    # flags are always this version's.
    print(shellcode(["bulkport"], shell=args.shell), end="")
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from bulkport.testing.core.server import main as simulate

    return simulate(args.argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkport", description="Move, mirror and clean up open-data portal catalogs.")
    parser.add_argument("--version", action="version", version=f"bulkport {__version__}")
    _add_global_arguments(parser)
    # The same flags after the command (``bulkport run job.toml -v``): there they default to
    # "not given", so that they never undo what was given before it.
    globals_after = argparse.ArgumentParser(add_help=False)
    _add_global_arguments(globals_after, after=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[globals_after], **kwargs)

    run = command("run", help="run a job file")
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

    verify = command("verify", help="compare a job's source and target, "
                                       "independently of any state; exit 1 if they differ")
    verify.add_argument("job", help="the job file (TOML) of a migrate or mirror job")
    verify.add_argument("--report", help="also write the differences as a JSON report")
    verify.add_argument("--concurrency", type=int, help="connections per host")
    verify.add_argument("--show", type=int, default=50, help="differences printed (default 50)")
    _add_cron_arguments(verify)
    verify.set_defaults(func=_cmd_verify)

    check = command("check", help="ask each portal, read-only, whether the job can run: "
                                  "reachable, key valid and sufficient, targets present")
    check.add_argument("job", help="the job file (TOML)")
    check.add_argument("--concurrency", type=int, help="connections per host")
    check.set_defaults(func=_cmd_check)

    history = command("history", help="list a job's runs (dry and refused ones "
                                                   "included)")
    _add_state_arguments(history)
    history.set_defaults(func=_cmd_history)

    show = command("show", help="what one run did: each dataset, file and token "
                                             "it acted on")
    _add_state_arguments(show)
    show.add_argument("run", nargs="?", type=int, help="the run's number (default: the last)")
    show.add_argument("--action", action="append", metavar="A",
                      help="only these actions (created, updated, deleted, revoked, failed…); "
                           "repeat for several")
    show.add_argument("--entity", action="append", choices=("dataset", "file", "token"),
                      help="only datasets, files or tokens")
    show.set_defaults(func=_cmd_show)

    export = command("export", help="write what a job's migrations leave behind")
    _add_state_arguments(export)
    export.add_argument("--redirects", required=True, metavar="F",
                        help="the old → new URL of every dataset page and file, as CSV "
                             "(F.csv) or an nginx map (F.map or F.conf)")
    export.add_argument("--format", choices=("csv", "nginx"), help="the format of F")
    export.set_defaults(func=_cmd_export)

    demo = command("demo", help="migrate a simulated CKAN into a simulated "
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

    completion = command("completion", help="print the shell completion script: "
                                            "eval \"$(bulkport completion bash)\"")
    completion.add_argument("shell", choices=SHELLS)
    completion.set_defaults(func=_cmd_completion)
    return parser


def _add_global_arguments(parser: argparse.ArgumentParser, *, after: bool = False) -> None:
    unset: dict[str, Any] = {"default": argparse.SUPPRESS} if after else {}
    parser.add_argument("-v", "--verbose", action="store_true", **unset,
                        help="log every retry (--log-level debug)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, **unset,
                        help="the least severe message shown on stderr (default warning)")
    parser.add_argument("--json", action="store_true", **unset,
                        help="print the result as JSON on stdout (history, show: a JSON "
                             "object per line)")


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
    parser = build_parser()
    argcomplete.autocomplete(parser)  # only acts when the shell asks for completions
    args = parser.parse_args(argv)
    _tune_gc()
    try:
        _setup_logging(args.log_level or ("debug" if args.verbose else "warning"),
                       getattr(args, "log_file", None), getattr(args, "quiet", False))
        return int(args.func(args))
    except ConfigError as error:
        message = redact(str(error))
        print(f"error: {message}", file=sys.stderr)
        if args.json:
            print(orjson.dumps({"ok": False, "exit_code": EXIT_ABORTED, "error": message}).decode())
        return EXIT_ABORTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bulkport show … | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
