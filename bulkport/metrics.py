"""Cheap measurements for the run report: units finished over time, latency per host.

Both stay small however long the run: a :class:`Timeline` keeps at most :data:`MAX_POINTS`
buckets (merged two by two when the run outgrows them), a :class:`Latency` a fixed set of
log-spaced buckets. Recording is a clock read and a counter bump, nothing is allocated per
request.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

MAX_POINTS = 300  # timeline buckets at most; a longer run gets wider buckets
FINISHED, FAILED, FILES, BYTES = "finished", "failed", "files", "bytes"
SERIES = (FINISHED, FAILED, FILES, BYTES)
# datasets_* counts that are totals of a listing, not datasets done
_NOT_FINISHED = frozenset({"datasets_listed", "datasets_listed_by_source", "datasets_read_by_id"})
_PER_DOUBLING = 4  # latency buckets per doubling: a bucket spans ~19%
_LATENCY_BOUNDS_MS = tuple(2 ** (i / _PER_DOUBLING) for i in range(18 * _PER_DOUBLING + 1))


def series_of(count: str) -> str | None:
    """The timeline series a report count adds to (None: not one the timeline shows)."""
    if count == "failed":
        return FAILED
    if count == "files_transferred":
        return FILES
    if count == "bytes_transferred":
        return BYTES
    if count.startswith("would_") or (count.startswith("datasets_")
                                       and count not in _NOT_FINISHED):
        return FINISHED
    return None


def _merged(values: list[int], factor: int) -> list[int]:
    return [sum(values[i:i + factor]) for i in range(0, len(values), factor)]


class Timeline:
    """How many units finished (and failed, files and bytes moved) per time bucket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_points: int = MAX_POINTS) -> None:
        self._clock = clock
        self._t0 = clock()
        # Seconds per bucket: an eighth, so a short run still draws a curve; doubles
        # (a power of two seconds, round to read) each time the buckets run out.
        self.step = 0.125
        self.max_points = max_points
        self._series: dict[str, list[int]] = {name: [] for name in SERIES}

    def count(self, name: str, n: int = 1) -> None:
        """Add a report count (see :func:`series_of`) at the current moment."""
        series = series_of(name)
        if series is not None:
            self.add(series, n)

    def add(self, series: str, n: int = 1) -> None:
        index = int((self._clock() - self._t0) / self.step)
        while index >= self.max_points:
            self._coarsen()
            index //= 2
        values = self._series[series]
        if index >= len(values):
            values.extend([0] * (index + 1 - len(values)))
        values[index] += n

    def _coarsen(self) -> None:
        self.step *= 2
        for name, values in self._series.items():
            self._series[name] = _merged(values, 2)

    def to_json(self, seconds: float) -> dict[str, Any]:
        """The buckets up to ``seconds`` after the start (the run's duration), every series
        the same length; the last bucket may be partial."""
        step, factor = self.step, 1
        points = max([math.ceil(seconds / step), *(len(v) for v in self._series.values()), 1])
        while math.ceil(points / factor) > self.max_points:
            factor *= 2
        points = math.ceil(points / factor)
        data: dict[str, Any] = {"step_seconds": step * factor, "points": points}
        for name, values in self._series.items():
            merged = _merged(values, factor) if factor > 1 else list(values)
            data[name] = merged + [0] * (points - len(merged))
        return data


def _bucket(ms: float) -> int:
    if ms <= 1.0:
        return 0
    return min(len(_LATENCY_BOUNDS_MS), math.ceil(_PER_DOUBLING * math.log2(ms)))


class Latency:
    """A latency histogram: bucket ``i`` counts samples up to ``2**(i/4)`` ms (the last
    one, everything longer); percentiles are interpolated within their bucket."""

    __slots__ = ("buckets", "count", "max_ms", "total_ms")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_LATENCY_BOUNDS_MS) + 1)
        self.count = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def observe(self, seconds: float) -> None:
        ms = seconds * 1000
        self.buckets[_bucket(ms)] += 1
        self.count += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0 < q <= 1) in ms, within a bucket's width of the truth."""
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.buckets):
            if n and seen + n >= rank:
                high = _LATENCY_BOUNDS_MS[i] if i < len(_LATENCY_BOUNDS_MS) else self.max_ms
                high = min(high, self.max_ms)
                low = min(_LATENCY_BOUNDS_MS[i - 1] if i else 0.0, high)
                return low + (high - low) * (rank - seen) / n
            seen += n
        return self.max_ms

    def to_json(self) -> dict[str, Any]:
        if not self.count:
            return {"count": 0}
        return {"count": self.count, "mean": round(self.total_ms / self.count, 1),
                "p50": round(self.percentile(0.5), 1), "p95": round(self.percentile(0.95), 1),
                "max": round(self.max_ms, 1)}


class HostStats:
    """Per host (as the report counts requests: the URL's netloc): the latency of each
    answered attempt (sent until the reply's status and headers) and the retries."""

    def __init__(self) -> None:
        self.latency: dict[str, Latency] = {}
        self.retries: Counter[str] = Counter()

    def answered(self, host: str, seconds: float) -> None:
        found = self.latency.get(host)
        if found is None:
            found = self.latency[host] = Latency()
        found.observe(seconds)

    def retried(self, host: str) -> None:
        self.retries[host] += 1

    def to_json(self, requests: Mapping[str, int]) -> dict[str, Any]:
        """``{host: {requests, retries, latency_ms}}``, the busiest host first."""
        hosts = set(requests) | set(self.latency) | set(self.retries)
        ordered = sorted(hosts, key=lambda host: (-requests.get(host, 0), host))
        return {host: {"requests": requests.get(host, 0), "retries": self.retries[host],
                       "latency_ms": (self.latency[host].to_json() if host in self.latency
                                      else {"count": 0})}
                for host in ordered}


_current: contextvars.ContextVar[HostStats | None] = contextvars.ContextVar(
    "bulkport_host_stats", default=None)


def current() -> HostStats | None:
    """The :class:`HostStats` an :class:`~bulkport.http.HttpClient` made here records to."""
    return _current.get()


@contextlib.contextmanager
def measuring(stats: HostStats) -> Iterator[HostStats]:
    """Make every HTTP client created within this block (and the tasks started from it)
    record to ``stats`` (the run's report holds it)."""
    token = _current.set(stats)
    try:
        yield stats
    finally:
        _current.reset(token)
