"""Locks per dataset name: one create of a name at a time, none kept once released."""

from __future__ import annotations

import anyio

from bulkport.portals.ckan.locks import KeyedLocks


async def test_one_holder_per_key_and_nothing_kept_afterwards() -> None:
    locks = KeyedLocks()
    inside: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    both = 0

    async def work(key: str) -> None:
        nonlocal both
        async with locks.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            both = max(both, sum(1 for n in inside.values() if n))
            await anyio.sleep(0.01)
            inside[key] -= 1

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(work, "ab"[n % 2])
        await anyio.sleep(0.005)
        assert len(locks) == 2  # held and waited for: kept
    assert most == {"a": 1, "b": 1} and both == 2  # one per key, keys side by side
    assert len(locks) == 0


async def test_a_failure_inside_releases_the_lock() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("x"):
            raise ValueError("boom")
    except ValueError:
        pass
    assert len(locks) == 0
    with anyio.fail_after(1):
        async with locks.hold("x"):
            pass
