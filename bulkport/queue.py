"""The job queue: stages joined by bounded memory streams inside one anyio task group.

A producer (usually :func:`fan_out_pages`) sends items into a zero-buffer stream; a fixed
number of workers take them. The zero buffer is the backpressure that keeps memory flat
whatever the catalog size: a page is only fetched when workers are ready for its items.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bulkport.errors import RetriableError, SkippableError

T = TypeVar("T")

PageFetcher = Callable[[int, int], Awaitable[tuple[int, Sequence[T]]]]


async def fan_out_pages(
    fetch: PageFetcher[T],
    send: MemoryObjectSendStream[T],
    *,
    page_size: int,
    concurrency: int,
    on_total: Callable[[int], None] | None = None,
    on_page_error: Callable[[int, Exception], None] | None = None,
) -> int:
    """Send every item of a paginated listing into ``send``, then close it.

    The first page gives the total count and the page size the server really honours (a
    server may clamp it); the other pages are then fetched concurrently, ``concurrency``
    at a time.

    Args:
        fetch: ``fetch(offset, limit)`` returns ``(total, items)``.
        on_total: told the total once the first page is in.
        on_page_error: told about a later page that failed (its items are then missing);
            without it the error propagates. A failed first page always propagates.

    Returns:
        The total the server announced.
    """
    async with send:
        total, first = await fetch(0, page_size)
        if on_total is not None:
            on_total(total)
        got, pending = len(first), _last_first(first)
        del first  # the page is let go of item by item as it is sent
        await _drain(pending, send)
        step = min(page_size, got) if got < total else page_size
        if step <= 0 or got >= total:
            return total
        offsets = iter(range(step, total, step))

        async def page_worker(out: MemoryObjectSendStream[T]) -> None:
            async with out:
                for offset in offsets:  # shared iterator: each offset is taken once
                    try:
                        _, items = await fetch(offset, step)
                    except (SkippableError, RetriableError) as error:
                        if on_page_error is None:
                            raise
                        on_page_error(offset, error)
                        continue
                    pending = _last_first(items)
                    del items
                    await _drain(pending, out)

        async with anyio.create_task_group() as tg:
            for _ in range(max(1, concurrency)):
                tg.start_soon(page_worker, send.clone())
    return total


def _last_first(items: Sequence[T]) -> list[T]:
    return list(reversed(items))


async def _drain(pending: list[T], send: MemoryObjectSendStream[T]) -> None:
    """Send the items of ``pending`` (last one first), letting go of each as it is taken: a
    page held whole until its last item is taken keeps all of them in memory."""
    while pending:
        await send.send(pending.pop())


async def run_workers(
    receive: MemoryObjectReceiveStream[T],
    handle: Callable[[T], Awaitable[None]],
    *,
    workers: int,
) -> None:
    """Run ``handle`` on each item of ``receive`` with ``workers`` concurrent workers.

    ``handle`` owns its errors: one that escapes cancels the whole stage.
    """

    async def worker(items: MemoryObjectReceiveStream[T]) -> None:
        async with items:
            async for item in items:
                await handle(item)

    async with receive, anyio.create_task_group() as tg:
        for _ in range(max(1, workers)):
            tg.start_soon(worker, receive.clone())


async def pipeline(
    produce: Callable[[MemoryObjectSendStream[T]], Awaitable[object]],
    handle: Callable[[T], Awaitable[None]],
    *,
    workers: int,
    stop: anyio.Event | None = None,
) -> None:
    """Connect a producer to ``workers`` handlers through a zero-buffer stream.

    When ``stop`` is set the producer is cancelled; items already taken by workers finish
    (drain), nothing new starts.
    """
    send, receive = anyio.create_memory_object_stream[T](0)
    async with anyio.create_task_group() as tg:
        producer_scope = anyio.CancelScope()

        async def run_producer() -> None:
            with producer_scope:
                await produce(send)
            send.close()  # a cancelled producer still ends the stream

        async def watch_stop() -> None:
            assert stop is not None
            await stop.wait()
            producer_scope.cancel()

        if stop is not None:
            tg.start_soon(watch_stop)
        tg.start_soon(run_producer)
        await run_workers(receive, handle, workers=workers)
        tg.cancel_scope.cancel()  # the stop watcher is no longer needed
