"""Notice a run that no longer moves, and say which host it waits for.

The HTTP layer tells an :class:`Activity` about every request it sends (in flight, per
host), every reply and every chunk of a body that goes in or out, and every retry with the
wait before it; the progress bar tells it about every unit that finished. :func:`watch`
looks at it a few times per stall limit: when nothing moved for that long, it records one
line naming the host(s) that did not answer and cancels the run, through the same cancel
scope as a second Ctrl-C, so the journal is closed and the report written as after an
interrupt. A failed connection or a timeout is no progress; an error reply is (the portal
answered), and so is a wait the retry policy or a ``Retry-After`` asked for, until it ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator

import anyio

from bulkport.errors import FatalError
from bulkport.redact import redact

SLOW_REPLY = 5.0  # seconds without an answer after which the progress bar names the host
_current: contextvars.ContextVar[Activity | None] = contextvars.ContextVar(
    "bulkport_activity", default=None)


class Stalled(FatalError):
    """Nothing moved for ``stall_timeout`` seconds: the run stopped."""


class Flight:
    """One request on the wire: its host and when it last sent or received anything."""

    __slots__ = ("host", "since")

    def __init__(self, host: str, since: float) -> None:
        self.host = host
        self.since = since


class Activity:
    """What the run is doing right now, as the HTTP layer and the jobs report it.

    Every method is a few attribute writes: they are called for each request and chunk.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last = clock()  # the last moment anything moved
        self.retries = 0
        self.stalled: str | None = None  # why the watchdog stopped the run
        self._flights: set[Flight] = set()
        self._waits: dict[str, float] = {}  # host → when its latest retry wait ends
        self._displays: set[Callable[[], None]] = set()

    def begin(self, host: str) -> Flight:
        """A request to ``host`` goes out; pass what this returns to :meth:`end`."""
        flight = Flight(host, self.clock())
        self._flights.add(flight)
        return flight

    def received(self, flight: Flight) -> None:
        """A reply, or a chunk of one, came in (or a chunk of a body went out)."""
        flight.since = self.last = self.clock()

    def end(self, flight: Flight) -> None:
        """The request is over, answered or not (an answer was reported by :meth:`received`)."""
        self._flights.discard(flight)

    def progressed(self) -> None:
        """Something finished (a unit, a chunk of an upload)."""
        self.last = self.clock()

    def retrying(self, host: str | None, delay: float) -> None:
        """A retry waits ``delay`` seconds first: the wait is planned, so no stall."""
        self.retries += 1
        until = self.clock() + delay
        self.last = max(self.last, until)
        if host is not None:
            self._waits[host] = max(self._waits.get(host, 0.0), until)

    def show(self, refresh: Callable[[], None]) -> None:
        """Call ``refresh`` at every look of the watchdog, so a display moves while the
        run waits (until :meth:`hide`)."""
        self._displays.add(refresh)

    def hide(self, refresh: Callable[[], None]) -> None:
        self._displays.discard(refresh)

    def refresh(self) -> None:
        for display in list(self._displays):
            display()

    def silent_hosts(self) -> list[tuple[str, int, float]]:
        """``(host, requests in flight, seconds since it last sent anything)`` for every
        host with requests in flight, the longest silent first."""
        now = self.clock()
        hosts: dict[str, tuple[int, float]] = {}
        for flight in list(self._flights):
            count, since = hosts.get(flight.host, (0, now))
            hosts[flight.host] = (count + 1, min(since, flight.since))
        return sorted(((host, count, now - since) for host, (count, since) in hosts.items()),
                      key=lambda found: -found[2])

    def summary(self) -> str:
        """What a progress bar adds: retries so far, the longest wait under way, or the
        host that has not answered for a while ("" while all is well)."""
        parts = [f"retries {self.retries}"] if self.retries else []
        now = self.clock()
        waits = [(until - now, host) for host, until in self._waits.items() if until > now]
        if waits:
            left, host = max(waits)
            parts.append(f"waiting {left:.0f}s on {host}")
        elif now - self.last >= SLOW_REPLY:  # an upload under way sends, so moves
            silent = self.silent_hosts()
            if silent and silent[0][2] >= SLOW_REPLY:
                host, _, seconds = silent[0]
                parts.append(f"no reply for {seconds:.0f}s from {host}")
        return redact(", ".join(parts))

    def stall(self, limit: float) -> str | None:
        """The one line that says why the run stopped, when nothing moved for ``limit``
        seconds; None otherwise."""
        idle = self.clock() - self.last
        if idle < limit:
            return None
        silent = self.silent_hosts()
        if not silent:
            where = "no request was waiting for a reply"
        else:
            where = "no reply from " + ", ".join(
                f"{host} for {seconds:.1f}s ({count} request{'s' if count > 1 else ''})"
                for host, count, seconds in silent[:5])
        return redact(f"stalled: nothing moved for {idle:.1f}s, {where}; stopped after "
                      f"[options] stall_timeout = {limit:g} (raise it if the portal is only "
                      "slow); run the same command again to resume")


@contextlib.contextmanager
def using(activity: Activity) -> Iterator[Activity]:
    """Make ``activity`` the one :func:`current` returns within this block (and the tasks
    started from it)."""
    token = _current.set(activity)
    try:
        yield activity
    finally:
        _current.reset(token)


def current() -> Activity | None:
    """The run's :class:`Activity`, when a runner set one with :func:`using`."""
    return _current.get()


async def watch(activity: Activity, limit: float, cancel: anyio.CancelScope) -> None:
    """Refresh the displays every second; when nothing moved for ``limit`` seconds (0:
    never), set ``activity.stalled`` to the reason and cancel ``cancel``.

    Runs until cancelled. The event loop being busy is no stall: when a look comes late
    (a long synchronous step), that counts as progress.
    """
    interval = min(1.0, limit / 4) if limit > 0 else 1.0
    expected = activity.clock() + interval
    while True:
        await anyio.sleep(interval)
        now = activity.clock()
        if now - expected > interval:  # the loop was blocked by work, not waiting
            activity.progressed()
        expected = now + interval
        activity.refresh()
        if limit > 0 and (reason := activity.stall(limit)) is not None:
            activity.stalled = reason
            cancel.cancel()
            return
