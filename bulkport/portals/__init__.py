"""One adapter per portal API. A migration reads from a :class:`Source` and writes into a
:class:`Target`; both speak the pivot model (:mod:`bulkport.model`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from anyio.abc import ObjectSendStream

from bulkport.http import StreamResponse
from bulkport.model import Dataset, Resource

if TYPE_CHECKING:
    from bulkport.transfer import FileTransfer


class Source(Protocol):
    """Reads a catalog: raw records streamed out, mapped one by one, files opened as streams."""

    def describe(self) -> str: ...

    async def produce(self, send: ObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None) -> int:
        """Send every raw record into ``send`` (then close it); return the announced total."""
        ...

    def to_pivot(self, raw: Any) -> Dataset:
        """Map one raw record. Raises MappingError when it cannot be mapped."""
        ...

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        """Stream a hosted file's bytes."""
        ...


class Target(Protocol):
    """Writes datasets: idempotent upserts, found again by a name derived from the source."""

    def describe(self) -> str: ...

    async def check(self) -> None:
        """Fail fast (wrong URL, key or configuration) before any write."""
        ...

    async def plan(self, ds: Dataset) -> str:
        """What :meth:`upsert` would do (``"create"`` or ``"update"``), writing nothing."""
        ...

    async def upsert(self, ds: Dataset, transfer: FileTransfer) -> str:
        """Write ``ds`` with its files; return ``"created"``, ``"updated"`` or ``"unchanged"``."""
        ...
