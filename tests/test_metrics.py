"""What the report measures on the way: a bounded timeline, latency and retries per host."""

from __future__ import annotations

import random

import orjson
from aioresponses import aioresponses

from bulkport import metrics
from bulkport.http import HttpClient, RetryPolicy
from bulkport.metrics import MAX_POINTS, HostStats, Latency, Timeline, series_of
from bulkport.report import Report

FAST = RetryPolicy(attempts=3, backoff_base=0.001, backoff_cap=0.002)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_counts_go_to_their_series() -> None:
    assert series_of("datasets_created") == series_of("would_update") == "finished"
    assert series_of("datasets_listed_by_source") is None  # a total, not a dataset done
    assert series_of("failed") == "failed"
    assert series_of("bytes_transferred") == "bytes"
    assert series_of("files_transferred") == "files"
    assert series_of("tokens_listed") is None


def test_a_long_run_keeps_a_bounded_timeline_and_every_count() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    for second in range(0, 100_000, 7):
        clock.now = second + 0.3
        timeline.count("datasets_created")
        timeline.count("bytes_transferred", 10)
    assert all(len(values) <= MAX_POINTS for values in timeline._series.values())
    data = timeline.to_json(100_000.0)
    assert data["points"] <= MAX_POINTS
    assert data["points"] * data["step_seconds"] >= 100_000
    assert sum(data["finished"]) == len(range(0, 100_000, 7))
    assert sum(data["bytes"]) == 10 * len(range(0, 100_000, 7))
    assert {len(data[name]) for name in metrics.SERIES} == {data["points"]}


def test_the_timeline_spans_the_run_and_puts_counts_in_their_bucket() -> None:
    clock = Clock()
    timeline = Timeline(clock=clock)
    clock.now = 0.3
    timeline.count("datasets_updated", 2)
    clock.now = 1.1
    timeline.count("failed")
    data = timeline.to_json(5.0)  # nothing finished after 1.1 s: zeros up to the end
    step = data["step_seconds"]
    assert data["points"] == round(5.0 / step)
    assert data["finished"][int(0.3 / step)] == 2 and sum(data["finished"]) == 2
    assert data["failed"][int(1.1 / step)] == 1


def test_latency_percentiles_come_close_from_a_fixed_histogram() -> None:
    latency = Latency()
    samples = [random.Random(4).uniform(1, 1000) for _ in range(5000)]
    for ms in samples:
        latency.observe(ms / 1000)
    ordered = sorted(samples)
    data = latency.to_json()
    assert data["count"] == 5000
    assert data["max"] == round(ordered[-1], 1)
    assert abs(data["mean"] - sum(samples) / 5000) < 0.1
    for key, q in (("p50", 0.5), ("p95", 0.95)):
        true = ordered[int(q * 5000) - 1]
        assert abs(data[key] - true) / true < 0.1, (key, data[key], true)
    assert len(latency.buckets) < 100  # fixed, whatever the number of samples


async def test_the_http_layer_records_latency_and_retries_per_host() -> None:
    stats = HostStats()
    with aioresponses() as m:
        m.get("http://a.test/x", status=503)
        m.get("http://a.test/x", payload={"ok": 1})
        m.get("http://b.test/y", payload={"ok": 1})
        with metrics.measuring(stats):
            client = HttpClient(retry=FAST)  # records to the run's stats
        async with client:
            await client.request("GET", "http://a.test/x")
            await client.request("GET", "http://b.test/y")
    hosts = stats.to_json(client.requests)
    assert hosts["a.test"]["requests"] == 2 and hosts["a.test"]["retries"] == 1
    assert hosts["a.test"]["latency_ms"]["count"] == 2
    assert hosts["b.test"] == {"requests": 1, "retries": 0,
                               "latency_ms": hosts["b.test"]["latency_ms"]}
    assert hosts["b.test"]["latency_ms"]["count"] == 1
    assert list(hosts) == ["a.test", "b.test"]  # the busiest first


def test_the_json_report_adds_hosts_and_timeline_and_keeps_requests() -> None:
    report = Report("job", "migrate")
    report.requests = {"a.test": 3}
    report.hosts.answered("a.test", 0.05)
    report.hosts.retried("a.test")
    report.count("datasets_created", 2)
    report.fail("dataset x", "boom")
    report.finish()
    data = orjson.loads(report.to_json())
    assert data["requests"] == {"total": 3, "per_host": {"a.test": 3}}
    assert data["hosts"]["a.test"]["requests"] == 3
    assert data["hosts"]["a.test"]["retries"] == 1
    assert data["hosts"]["a.test"]["latency_ms"]["max"] == 50.0
    assert sum(data["timeline"]["finished"]) == 2 and sum(data["timeline"]["failed"]) == 1
