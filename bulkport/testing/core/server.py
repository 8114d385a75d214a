"""Run a simulator: in the current event loop, in a background thread, or from the shell.

:func:`main` is ``bulkport simulate``: it builds its own parser once it knows which
simulator is asked for, so that each adds its own options and no other is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType

from aiohttp import web

from bulkport.testing.core.faults import Faults
from bulkport.testing.core.simulator import Simulator, load, names

HOST = "127.0.0.1"
MAX_PORT = 65535


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    # No access log: it would cost more than the handlers at benchmark rates.
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return runner, f"http://{host}:{bound}"


@contextlib.asynccontextmanager
async def serve(app: web.Application, port: int = 0, host: str = HOST) -> AsyncIterator[str]:
    """Serve ``app`` on ``host`` (a free port when ``port`` is 0); yield its base URL."""
    runner, url = await _start(app, host, port)
    try:
        yield url
    finally:
        await runner.cleanup()


class ThreadedServer:
    """An app served from a background thread with its own event loop.

    ``factory`` builds the app inside that loop. Use as a context manager or call
    :meth:`start` / :meth:`stop`; ``url`` is the base URL, ``app`` the application (read its
    store once the server is stopped, or accept racing the server thread).
    """

    def __init__(self, factory: Callable[[], web.Application], port: int = 0,
                 host: str = HOST) -> None:
        self.factory = factory
        self.port = port
        self.host = host
        self.url = ""
        self.app: web.Application | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> ThreadedServer:
        self._thread = threading.Thread(target=self._run, name="bulkport-simulator",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.app = self.factory()
            self._runner, self.url = loop.run_until_complete(
                _start(self.app, self.host, self.port))
        except BaseException as error:  # reported to start()'s caller
            self._error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def build_parser(kind: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``bulkport simulate``, with simulator ``kind``'s own options if given."""
    simulator = load(kind) if kind is not None else None
    parser = argparse.ArgumentParser(
        prog="bulkport simulate",
        description=f"Serve {simulator.summary}. Ctrl-C stops it." if simulator
        else "Serve a simulated portal. Ctrl-C stops it.",
        epilog=None if simulator else "Each KIND has options of its own: see "
                                      "bulkport simulate KIND --help.")
    parser.add_argument("kind", choices=names(), help="which API to simulate")
    parser.add_argument("--host", default=HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--datasets", type=int, default=simulator.datasets if simulator else None,
                        help="synthetic datasets to serve (default %(default)s)" if simulator
                        else "synthetic datasets to serve (default: the simulator's own)")
    parser.add_argument("--resources", type=int, default=2,
                        help="resources per dataset (default %(default)s)")
    parser.add_argument("--file-size", type=int, default=2048,
                        help="bytes per hosted file (default %(default)s)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every request (default %(default)s)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of requests that fail: 5xx, 429 or a dropped connection")
    parser.add_argument("--retry-after", type=float, default=1.0,
                        help="Retry-After of injected 429s, seconds (default %(default)s)")
    parser.add_argument("--api-key", default="simulator-key",
                        help="the key clients must send (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the catalog and of the faults (default %(default)s)")
    if simulator is not None:
        simulator.add_arguments(parser)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``bulkport simulate``'s arguments: ``argv`` parsed with the options of its simulator."""
    argv = list(argv)
    known = names()
    # The simulator decides which options exist: take the first word that names one, and
    # parse again should an option's value have named one before the simulator did.
    kind = next((arg for arg in argv if arg in known), None)
    parser = build_parser(kind)
    if kind is not None:
        found: str = parser.parse_known_args(argv)[0].kind
        if found != kind:
            parser = build_parser(found)
    return parser.parse_args(argv)


def build_simulator(args: argparse.Namespace) -> web.Application:
    """The app ``bulkport simulate`` serves, from parsed arguments."""
    faults = None
    if args.latency > 0 or args.error_rate > 0:
        faults = Faults(latency=args.latency, error_rate=args.error_rate,
                        retry_after=args.retry_after, seed=args.seed)
    return load(args.kind).build(args, faults)


def _start_line(simulator: Simulator, app: web.Application, url: str, key: str) -> str:
    return (f"{simulator.name} simulator at {simulator.address(app, url)} — send "
            f"'{simulator.authorization}{key}' (Ctrl-C to stop)")


def _wrong_number(args: argparse.Namespace) -> str | None:
    """The first option whose value cannot serve, said in one line (None when all can)."""
    if not 0 <= args.port <= MAX_PORT:
        return f"--port {args.port}: a port is 1 to {MAX_PORT} (0 = any free one)"
    for name in ("datasets", "resources", "file_size", "latency", "retry_after"):
        value = getattr(args, name, None)
        if value is not None and value < 0:
            return f"--{name.replace('_', '-')} {value}: must be 0 or more"
    if not 0 <= args.error_rate <= 1:
        return f"--error-rate {args.error_rate}: a share of the requests, 0 to 1"
    return None


def run_simulator(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM; print the URL and the key first. Returns the exit code."""
    simulator = load(args.kind)
    wrong = _wrong_number(args)
    if wrong:
        print(f"error: {wrong}", file=sys.stderr)
        return 2
    app = build_simulator(args)

    async def run() -> None:
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            # SIGTERM (a benchmark ending its simulators) stops as cleanly as Ctrl-C.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with serve(app, port=args.port, host=args.host) as url:
            print(_start_line(simulator, app, url, args.api_key), flush=True)
            for line in app.get("banner", ()):  # a portal's ids a job file needs
                print(line, flush=True)
            await stop.wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except OSError as error:  # a port in use or not ours, an address not on this machine
        # asyncio words a bind error as a sentence of its own: the OS's words are shorter.
        reason = (os.strerror(error.errno) if error.errno and error.errno in errno.errorcode
                  else error.strerror or str(error))
        hint = ("; another program is using it: pick another --port, or 0 for a free one"
                if error.errno == errno.EADDRINUSE else "")
        print(f"error: cannot listen on {args.host}:{args.port}: {reason}{hint}",
              file=sys.stderr)
        return 2
    finally:
        store = app.get("store")
        if store is not None:
            store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``bulkport simulate [options] KIND [options]``; returns the exit code."""
    return run_simulator(parse_args(sys.argv[1:] if argv is None else argv))
