"""Typed settings: the ``[options]`` table and each portal's ``[source]``/``[target]`` table.

Each table is a frozen, keyword-only dataclass whose fields say their type, default and
meaning (``setting(default, "what it does")``). :func:`from_table` builds one from TOML:
an unknown key is refused with a "did you mean", a wrong type is named with the key.
msgspec does the type conversion; this module only words its errors for a job file.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal, TypeVar, cast, get_args, get_type_hints

import msgspec

from bulkport.errors import ConfigError

T = TypeVar("T")

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]
Seconds = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


def setting(default: Any = dataclasses.MISSING, doc: str = "", *,
            factory: Callable[[], Any] | None = None) -> Any:
    """A settings field with its meaning (shown in error hints and the key reference)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"doc": doc})
    return dataclasses.field(default=default, metadata={"doc": doc})


def keys(cls: type) -> list[str]:
    """The keys a settings class accepts."""
    return [f.name for f in fields(cls) if f.init]


_ERROR = re.compile(r"^(?P<what>.*?) - at `\$\.?(?P<key>[A-Za-z_][\w]*)?(?P<sub>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<key>\w+)`")
_BOUND = re.compile(r"^Expected `\w+` (?P<op>[<>]=?) (?P<limit>\S+)$")
_BOUNDS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}


def from_table(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Build ``cls`` from a TOML table.

    Args:
        where: how the error names the table, e.g. ``"job.toml: [source]"``.

    Raises:
        ConfigError: one line naming the table and the key.
    """
    known = keys(cls)
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            also = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where} unknown key {key!r}{also}")
    for f in fields(cast(Any, cls)):
        # Checked here: msgspec takes a default an overridden field's base class had.
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.init and f.name not in table:
            doc = f.metadata.get("doc")
            raise ConfigError(f"{where} {f.name} is required" + (f" ({doc})" if doc else ""))
    try:
        return msgspec.convert(dict(table), cls, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where} {_explain(cls, str(exc), table)}") from None


def _explain(cls: type, message: str, table: Mapping[str, Any]) -> str:
    missing = _MISSING.match(message)
    if missing:
        return f"{missing['key']} is required"
    found = _ERROR.match(message)
    if not found or not found["key"]:
        return message
    key, what = found["key"], found["what"]
    value = table.get(key)
    if what.startswith("Invalid enum value"):
        choices = get_args(get_type_hints(cls)[key])
        return f"{key} must be one of {', '.join(map(str, choices))}, got {value!r}"
    bound = _BOUND.match(what)
    if bound:  # "Expected `int` <= 1000": the type was right, the value is out of bounds
        what = f"must be {_BOUNDS[bound['op']]} {bound['limit']}"
    what = re.sub(r"^Expected `([^`]+)`(?:, got `[^`]+`)?", r"must be \1", what).replace("`", "")
    inside = f" at {key}{found['sub']}" if found["sub"] else ""
    doc = next((f.metadata.get("doc") for f in fields(cls) if f.name == key), None)
    return f"{key} {what}, got {value!r}{inside}" + (f" ({doc})" if doc else "")


@dataclass(frozen=True, kw_only=True)
class Options:
    """The ``[options]`` table: how hard and how long a run works, and what a mirror may do."""

    connections: Annotated[int, msgspec.Meta(ge=1, le=1000)] = setting(16, "connections per host")
    dataset_workers: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = setting(
        0, "datasets handled at once; 0 = four per connection (most of a dataset's time is "
           "latency)")
    transfers: Annotated[int, msgspec.Meta(ge=0, le=256)] = setting(8, "files streamed at once")
    rate_limit: Annotated[float, msgspec.Meta(ge=0, le=100_000)] = setting(
        0.0, "requests per second per host; 0 = unlimited")
    retries: Annotated[int, msgspec.Meta(ge=0, le=100)] = setting(
        6, "attempts per request before it counts as failed")
    connect_timeout: Annotated[float, msgspec.Meta(gt=0, le=600)] = setting(
        30.0, "seconds to wait for a connection to a portal to open")
    read_timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] = setting(
        120.0, "seconds to wait for the next bytes of a reply before the attempt fails")
    stall_timeout: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = setting(
        300.0, "stop the run (exit 2, resumable) when nothing moved for this many seconds: "
               "no reply, no bytes, no record finished; 0 = never")
    page_size: Annotated[int, msgspec.Meta(ge=1, le=1000)] = setting(
        1000, "records per listing page (the portals serve at most 1000)")
    page_concurrency: Annotated[int, msgspec.Meta(ge=1, le=100)] = setting(
        2, "listing pages read at once")
    publish: bool = setting(True, "publish what is written (Opendatasoft-style targets)")
    status_timeout: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = setting(
        600.0, "seconds to wait for a target to finish processing")
    status_poll: Annotated[float, msgspec.Meta(ge=0.01, le=3600)] = setting(
        0.1, "seconds between two looks at a processing status")
    reason: str = setting("revoked with bulkport",
                          "sent with each revocation where the API keeps one")
    on_delete: Literal["delete", "private", "keep"] = setting(
        "delete", "mirror: what a record the source dropped becomes")
    max_delete_fraction: Fraction = setting(
        0.10, "mirror: most of the mirrored records one run may remove (0.1 = 10 %)")
    max_delete_count: NonNegative = setting(0, "mirror: most records one run may remove; 0 = "
                                               "no limit by count")
    safety_margin: Seconds = setting(
        3600.0, "mirror: seconds re-read before the watermark ([source] may override)")
    keep_reports: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = setting(
        0, "runs whose report (<state dir>/reports/) and actions are kept, the newest; older "
           "runs keep their history line only; 0 = keep every run's, forever")
    max_repeated_failures: NonNegative = setting(
        20, "stop the run when this many records in a row fail with the same error; 0 = never")

    @property
    def workers(self) -> int:
        return self.dataset_workers or 4 * self.connections


@dataclass(frozen=True, kw_only=True)
class PortalSettings:
    """What every ``[source]`` and ``[target]`` table holds."""

    type: str = setting(doc="the portal's type")
    url: str = setting(doc="the portal's base URL")
    api_key: str | None = setting(None, "the API key or token (use ${VAR})")
    auth_header: str = setting("Authorization", "the header the key is sent in")


@dataclass(frozen=True, kw_only=True)
class SourceSettings(PortalSettings):
    """A ``[source]`` table."""

    safety_margin: Seconds | None = setting(
        None, "mirror: seconds re-read before the watermark, instead of [options]'s")


@dataclass(frozen=True, kw_only=True)
class TargetSettings(PortalSettings):
    """A ``[target]`` table."""
