"""Run a simulator: in the current event loop, in a background thread, or from the shell."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING

from aiohttp import web

from bulkport.testing.apputil import set_items
from bulkport.testing.faults import Faults

if TYPE_CHECKING:
    from bulkport.testing.ckan import CkanStore

HOST = "127.0.0.1"


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


def _ods_template(text: str) -> tuple[str, list[str]]:
    from bulkport.testing.ods_site import template_option  # only once --template is given

    return template_option(text)


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bulkport simulate ckan|portaljs|ods|datapress``."""
    parser.add_argument("portal", choices=("ckan", "portaljs", "ods", "datapress"),
                        help="which API to simulate")
    parser.add_argument("--host", default=HOST, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--datasets", type=int, default=None,
                        help="synthetic datasets to serve (default 100 for ckan and "
                             "datapress, 0 for ods: an empty domain to migrate into)")
    parser.add_argument("--resources", type=int, default=2,
                        help="resources per dataset (default %(default)s)")
    parser.add_argument("--file-size", type=int, default=2048,
                        help="bytes per hosted file (default %(default)s)")
    parser.add_argument("--prefix", default="/api/v3",
                        help="datapress: API path prefix, /api/v3 or /api (default %(default)s)")
    parser.add_argument("--portal", dest="portal_name", default="demo",
                        help="portaljs: the portal's name, API at /@NAME (default %(default)s)")
    parser.add_argument("--url-ttl", type=int, default=3600,
                        help="portaljs: presigned URL lifetime, seconds (default %(default)s)")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="seconds added to every request (default %(default)s)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of requests that fail: 5xx, 429 or a dropped connection")
    parser.add_argument("--retry-after", type=float, default=1.0,
                        help="Retry-After of injected 429s, seconds (default %(default)s)")
    parser.add_argument("--tokens", type=int, default=0,
                        help="ckan/portaljs: API tokens (ods: API keys) to seed over up to 20 "
                             "users, about half named datapusher, for revoke-tokens "
                             "(default %(default)s)")
    parser.add_argument("--template", dest="templates", type=_ods_template, action="append",
                        metavar="NAME:FIELD[,FIELD...]", default=[],
                        help="ods: a custom metadata template with these fields (repeatable), "
                             "besides those the shipped job files name")
    parser.add_argument("--api-key", default="simulator-key",
                        help="the key clients must send (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the catalog and of the faults (default %(default)s)")


def object_host_for(host: str) -> str:
    """The PortalJS object store's host name for an API served on ``host``.

    Both names must reach the listening socket and differ, so that they are two origins:
    ``localhost`` for an API on 127.0.0.1 (or any address), ``127.0.0.1`` for one on
    ``localhost``.
    """
    return "127.0.0.1" if host == "localhost" else "localhost"


def seed_ckan_tokens(store: CkanStore, tokens: int, *, seed: int) -> list[str]:
    """The admin's own API token (a JWT ``api_token_list`` shows) and ``tokens`` more.

    Returns:
        The banner lines that say so.
    """
    from bulkport.testing.ckan_tokens import seed_tokens

    jti, token = store.accounts.create_token("admin", "simulator")
    lines = [f"the admin's API token (a JWT, id {jti} in api_token_list): {token}"]
    if tokens > 0:
        users = max(1, min(20, tokens))
        seed_tokens(store.accounts, users=users, tokens=tokens, seed=seed)
        lines.append(f"{tokens} more API tokens seeded over {users} users (user000…), "
                     "about half named datapusher: try jobs/revoke-datapusher-tokens.toml")
    return lines


def build_simulator(args: argparse.Namespace) -> web.Application:
    """The app ``bulkport simulate`` serves, from parsed arguments."""
    faults = None
    if args.latency > 0 or args.error_rate > 0:
        faults = Faults(latency=args.latency, error_rate=args.error_rate,
                        retry_after=args.retry_after, seed=args.seed)
    datasets = args.datasets if args.datasets is not None else (0 if args.portal == "ods" else 100)
    if args.portal in ("ckan", "portaljs"):
        from bulkport.testing.catalog import seed_ckan
        from bulkport.testing.ckan import CkanStore, create_ckan_app

        store = CkanStore(seed=args.seed)
        seed_ckan(store, datasets=datasets, resources=args.resources,
                  file_size=args.file_size, seed=args.seed)
        if args.portal == "ckan":
            app = create_ckan_app(store, api_keys={args.api_key: "admin"}, faults=faults)
        else:
            from bulkport.testing.portaljs import create_portaljs_app

            app = create_portaljs_app(store, portal=args.portal_name,
                                      api_keys={args.api_key: "admin"}, faults=faults,
                                      url_ttl=args.url_ttl, object_host=object_host_for(args.host))
        set_items(app, banner=seed_ckan_tokens(store, args.tokens, seed=args.seed))
        return app
    if args.portal == "datapress":
        from bulkport.testing.datapress_site import simulated_datapress

        return simulated_datapress(datasets=datasets, resources=args.resources,
                                   file_size=args.file_size, seed=args.seed,
                                   api_key=args.api_key, prefix=args.prefix, faults=faults)
    from bulkport.testing.ods_site import simulated_ods

    return simulated_ods(datasets=datasets, resources=args.resources, file_size=args.file_size,
                         seed=args.seed, api_key=args.api_key, tokens=args.tokens,
                         templates=args.templates, faults=faults)


def run_simulator(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C; print the URL and the key first. Returns the exit code."""
    app = build_simulator(args)

    async def main() -> None:
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            # SIGTERM (a benchmark ending its simulators) stops as cleanly as Ctrl-C.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with serve(app, port=args.port, host=args.host) as url:
            header = ("Authorization: apikey " if args.portal == "ods" else "Authorization: ")
            where = url
            if args.portal == "portaljs":  # the API lives under the portal's name
                where = (f"{url}/@{args.portal_name} (object store at "
                         f"{app['config'].object_origin(url)})")
            print(f"{args.portal} simulator at {where} — send '{header}{args.api_key}' "
                  "(Ctrl-C to stop)", flush=True)
            for line in app.get("banner", ()):  # a portal's ids a job file needs
                print(line, flush=True)
            await stop.wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        store = app.get("store")
        if store is not None:
            store.close()
    return 0
