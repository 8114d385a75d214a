"""The job queue: page fan-out, workers, drain on stop."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import anyio.lowlevel

from bulkport.errors import ServerError
from bulkport.queue import fan_out_pages, pipeline

CATALOG = list(range(2_345))


async def fetch_clamped(offset: int, limit: int) -> tuple[int, Sequence[int]]:
    limit = min(limit, 500)  # the server clamps rows, as CKAN does
    await anyio.lowlevel.checkpoint()
    return len(CATALOG), CATALOG[offset : offset + limit]


async def test_fan_out_gets_every_item_once_with_clamped_pages() -> None:
    got: list[int] = []

    async def handle(item: int) -> None:
        got.append(item)

    async def produce(send) -> None:  # type: ignore[no-untyped-def]
        await fan_out_pages(fetch_clamped, send, page_size=1000, concurrency=4)

    await pipeline(produce, handle, workers=8)
    assert sorted(got) == CATALOG


async def test_fan_out_reports_a_failed_page_and_goes_on() -> None:
    failed: list[int] = []
    got: list[int] = []

    async def flaky(offset: int, limit: int) -> tuple[int, Sequence[int]]:
        if offset == 1000:
            raise ServerError("boom", 500)
        return await fetch_clamped(offset, limit)

    async def produce(send) -> None:  # type: ignore[no-untyped-def]
        await fan_out_pages(flaky, send, page_size=500, concurrency=2,
                            on_page_error=lambda offset, error: failed.append(offset))

    async def handle(item: int) -> None:
        got.append(item)

    await pipeline(produce, handle, workers=4)
    assert failed == [1000]
    assert len(got) == len(CATALOG) - 500


async def test_workers_are_bounded() -> None:
    active = peak = 0

    async def handle(item: int) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await anyio.sleep(0.001)
        active -= 1

    async def produce(send) -> None:  # type: ignore[no-untyped-def]
        await fan_out_pages(fetch_clamped, send, page_size=500, concurrency=2)

    await pipeline(produce, handle, workers=5)
    assert peak == 5


async def test_stop_drains_in_flight_and_takes_nothing_new() -> None:
    stop = anyio.Event()
    started: list[int] = []
    finished: list[int] = []

    async def handle(item: int) -> None:
        started.append(item)
        if len(started) == 10:
            stop.set()
        await anyio.sleep(0.01)
        finished.append(item)

    async def produce(send) -> None:  # type: ignore[no-untyped-def]
        await fan_out_pages(fetch_clamped, send, page_size=500, concurrency=2)

    await pipeline(produce, handle, workers=4, stop=stop)
    assert sorted(started) == sorted(finished)  # nothing abandoned half-way
    assert len(started) < 20
