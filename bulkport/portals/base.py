"""What a portal package provides, as Protocols a type checker holds, and how it declares it.

A migration reads from a :class:`Source` and writes into a :class:`Target`; both speak the
pivot model (:mod:`bulkport.model`). A mirror needs a little more of each
(:class:`MirrorSource`, :class:`MirrorTarget`), a revocation a :class:`TokenStore`. Each
portal package declares a :class:`Portal`: its type names, its settings classes, the
adapters for the roles it plays, and what it cannot do and why.

Every adapter's ``check()`` runs before a job reads or writes anything; it names each step
it takes to a :class:`CheckSteps` (a run passes the silent :data:`QUIET`; ``bulkport check``
one that prints a line per step).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from anyio.streams.memory import MemoryObjectSendStream

from bulkport.http import HttpClient, StreamResponse
from bulkport.model import Dataset, Resource, Token
from bulkport.settings import Options, SourceSettings, TargetSettings

if TYPE_CHECKING:
    from bulkport.checkpoint import Journal
    from bulkport.report import Report
    from bulkport.transfer import FileTransfer


class CheckSteps:
    """Where an adapter's ``check()`` says what it verified, one named step at a time.

    A step that fails raises, as it does in a run: the step :meth:`begin` named last is the
    one that failed. This class keeps quiet; ``bulkport check`` passes one that records.
    """

    #: True when no read follows the check (``bulkport check``): the adapter then also asks
    #: what a run learns from its first read (a listing's first page, a token list), which
    #: a run does not ask twice.
    standalone: bool = False

    def begin(self, step: str) -> None:
        """The next step: ``"api"``, ``"key"``, ``"permissions"``, ``"organizations"``..."""

    def passed(self, detail: str) -> None:
        """The step begun last passed; ``detail`` says what it found (never a secret)."""


QUIET = CheckSteps()  # what a run passes: every step checked, nothing said


class Source(Protocol):
    """Reads a catalog: raw records streamed out, mapped one by one, files opened as streams."""

    def describe(self) -> str: ...

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Fail fast (wrong URL or key, a key that cannot see what the job asks for) before
        the listing is read, so that a shorter listing is never taken for the catalog."""
        ...

    async def produce(self, send: MemoryObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None) -> int:
        """Send every raw record into ``send`` (then close it); return the announced total."""
        ...

    def to_pivot(self, raw: Any) -> Dataset:
        """Map one raw record. Raises MappingError when it cannot be mapped."""
        ...

    def page_url(self, ds: Dataset) -> str:
        """The public page of ``ds`` on this portal (the old URL of a redirect map)."""
        ...

    def file_url(self, ds: Dataset, resource: Resource) -> str:
        """The public URL a visitor downloads this hosted file from on the source (the old
        URL of a redirect map)."""
        ...

    def open_file(self, resource: Resource) -> AbstractAsyncContextManager[StreamResponse]:
        """Stream a hosted file's bytes."""
        ...


class Target(Protocol):
    """Writes datasets: idempotent upserts, found again by a name derived from the source."""

    def describe(self) -> str: ...

    async def check(self, steps: CheckSteps = QUIET) -> None:
        """Fail fast (wrong URL, a key that cannot write, settings that name things the
        portal does not have) before any write, dry runs included."""
        ...

    async def plan(self, ds: Dataset) -> str:
        """What :meth:`upsert` would return (``"create"``, ``"update"`` or ``"unchanged"``),
        reading only."""
        ...

    async def upsert(self, ds: Dataset, transfer: FileTransfer) -> Written:
        """Write ``ds`` with its files; say what became of it and where it is now."""
        ...


@dataclass(frozen=True)
class WrittenFile:
    """One hosted file of a dataset as an upsert left it on the target."""

    source_id: str  # the resource's id at the source
    action: str  # "created", "updated" or "unchanged"
    url: str  # where the target serves the file now


@dataclass(frozen=True)
class Written:
    """What :meth:`Target.upsert` did with one dataset."""

    outcome: str  # "created", "updated" or "unchanged"
    key: str  # the target's id of it (CKAN name, Opendatasoft dataset_id, DataPress id)
    url: str  # its public page on the target
    files: tuple[WrittenFile, ...] = ()


class Listing(Protocol):
    """Where a source's listing goes: record ids, each with its modified date as the portal
    states it (a mirror keeps them in its state store, not in memory)."""

    announced: int  # the total the portal announced (pages can shift while listed)

    def add(self, source_id: str, modified: str | None) -> None: ...

    def __len__(self) -> int: ...


@dataclass
class MemoryListing:
    """A :class:`Listing` in a dict, for the few ids a second look asks about."""

    modified: dict[str, str | None] = field(default_factory=dict)
    announced: int = 0

    def add(self, source_id: str, modified: str | None) -> None:
        self.modified[source_id] = modified

    def __len__(self) -> int:
        return len(self.modified)


class MirrorSource(Source, Protocol):
    """A source a mirror can read incrementally and list cheaply."""

    async def produce(self, send: MemoryObjectSendStream[Any], *, page_concurrency: int,
                      on_total: Callable[[int], None] | None = None,
                      on_page_error: Callable[[int, Exception], None] | None = None,
                      since: datetime | None = None) -> int:
        """As :meth:`Source.produce`; with ``since``, only records modified at or after it
        (CKAN ``metadata_modified`` or ``indexed_ts``, Opendatasoft the later of
        ``updated_at`` and ``modified``, DataPress ``updatedAt``)."""
        ...

    async def list_ids(self, listing: Listing, *, page_concurrency: int,
                       ids: Collection[str] | None = None) -> None:
        """Add every record id with its modified date to ``listing``, without the full
        records; with ``ids``, only those of them the catalog still holds. Raises rather
        than leave a partial listing."""
        ...

    async def produce_ids(self, send: MemoryObjectSendStream[Any], ids: Collection[str]) -> None:
        """Send the raw records of ``ids`` (those that still exist), then close ``send``."""
        ...


class MirrorTarget(Target, Protocol):
    """A target a mirror can also delete from, only ever what it wrote itself."""

    def key_for(self, ds: Dataset) -> str:
        """The target's key (name, dataset id) of ``ds`` once upserted."""
        ...

    async def delete(self, source_id: str, key: str) -> str:
        """Delete the copy of ``source_id`` held under ``key`` if it carries the ownership
        mark; return ``"deleted"``, ``"absent"`` or ``"not_owned"`` (left alone)."""
        ...

    async def hide(self, source_id: str, key: str) -> str:
        """Make that copy private (unpublish it); ``"hidden"``, ``"absent"`` or
        ``"not_owned"``."""
        ...

    async def owned_records(self) -> list[tuple[str, Any]]:
        """Every target record that carries the ownership mark, as (source id, record)."""
        ...

    def differences(self, ds: Dataset, record: Any) -> list[str]:
        """What differs between ``ds`` and its copy ``record`` (empty when they match)."""
        ...

    def is_hidden(self, record: Any) -> bool:
        """Whether ``record`` is hidden the way :meth:`hide` hides one."""
        ...


class TokenStore(Protocol):
    """A portal's API tokens, as a revocation lists and revokes them."""

    def describe(self) -> str: ...

    def own_token_id(self) -> str | None:
        """The id of the token this run authenticates with (never revoked by it)."""
        ...

    async def check(self, wanted: tuple[str, ...] | None, steps: CheckSteps = QUIET) -> None:
        """Fail fast, before anything is listed or revoked: a wrong key, or one that may not
        list the tokens of the ``wanted`` users (None: every user's)."""
        ...

    async def collect(self, wanted: tuple[str, ...] | None, *, concurrency: int,
                      on_error: Callable[[str, Exception], None]) -> list[Token]:
        """The tokens of the ``wanted`` users (None: every user the key can see)."""
        ...

    async def revoke(self, token: Token, reason: str) -> str:
        """Revoke ``token``; ``"revoked"`` or ``"already_gone"``."""
        ...


class Role(enum.Enum):
    """What a portal can be in a job."""

    SOURCE = "source"
    TARGET = "target"
    MIRROR_SOURCE = "mirror source"
    MIRROR_TARGET = "mirror target"
    TOKENS = "token store"


class Limit(enum.Enum):
    """Something a portal that plays a role still cannot do (each with its reason)."""

    DELETE = "delete"  # a mirror target that can only hide or keep what the source dropped
    TOKEN_LAST_ACCESS = "token last access"  # tokens listed without a last-use date


SS = TypeVar("SS", bound=SourceSettings)
TS = TypeVar("TS", bound=TargetSettings)


@dataclass(frozen=True, kw_only=True)
class Portal(Generic[SS, TS]):
    """One portal type as a package declares it to the registry."""

    name: str  # the ``type`` in a job file
    title: str  # how messages name it ("CKAN")
    source_settings: type[SS]
    target_settings: type[TS]
    source: Callable[[SS, HttpClient, Options], Source] | None = None
    mirror_source: Callable[[SS, HttpClient, Options], MirrorSource] | None = None
    target: Callable[[TS, HttpClient, Options, Journal, Report], Target] | None = None
    mirror_target: Callable[[TS, HttpClient, Options, Journal, Report], MirrorTarget] | None = None
    tokens: Callable[[TS, HttpClient], TokenStore] | None = None
    limits: Mapping[Limit, str] = field(default_factory=dict)  # what it cannot do, and why
    # Connections a source's listing holds open for the whole run (a streamed export).
    held_connections: int = 0

    @property
    def roles(self) -> frozenset[Role]:
        factories = {Role.SOURCE: self.source, Role.MIRROR_SOURCE: self.mirror_source,
                     Role.TARGET: self.target, Role.MIRROR_TARGET: self.mirror_target,
                     Role.TOKENS: self.tokens}
        return frozenset(role for role, factory in factories.items() if factory is not None)
