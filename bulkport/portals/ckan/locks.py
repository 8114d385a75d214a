"""One lock per key, kept only while someone holds or waits for it.

A ``defaultdict(anyio.Lock)`` keyed by dataset name would keep a lock for every name a run
ever created: memory that grows with the catalog. These are dropped as they are released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass
class _Held:
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    users: int = 0  # tasks holding or waiting for the lock


class KeyedLocks:
    """``async with locks.hold(key):`` one task at a time per key."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        held = self._held.setdefault(key, _Held())
        held.users += 1
        try:
            async with held.lock:
                yield
        finally:
            held.users -= 1
            if not held.users:
                del self._held[key]

    def __len__(self) -> int:
        return len(self._held)
