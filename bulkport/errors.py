"""Errors, classed by how a run handles them.

    BulkportError
    ├── ConfigError        bad job file or missing variable: stop before any request
    ├── FatalError         stop the whole run at once
    │   └── AuthError      401/403: the run's own key is wrong or lacks rights
    ├── RetriableError     transient; raised only once retries are used up
    │   ├── ServerError    5xx
    │   ├── RateLimited    429
    │   └── TransportError connection refused or dropped, timeout
    └── SkippableError     this record fails, the run goes on
        ├── NotFound       404
        ├── ValidationError  the portal refused the content (field paths attached)
        ├── PayloadTooLarge  413 or a size limit
        ├── FilesRefused   the dataset was written without some of its files
        ├── BadResponse    the reply is not what the API documents (e.g. not JSON)
        └── MappingError   a source record that cannot be mapped

Every message is redacted before it is built: no API key or presigned URL in it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence

from bulkport.redact import redact

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup


class BulkportError(Exception):
    """Base of every error bulkport raises on purpose."""


class ConfigError(BulkportError):
    """The job file or the command line is wrong; nothing was sent."""


class FatalError(BulkportError):
    """The run cannot go on."""


class MirrorRefused(FatalError):
    """A mirror's guard stopped the run before it deleted anything."""


class HttpStatusMixin:
    status: int | None = None


class AuthError(FatalError, HttpStatusMixin):
    """The portal refused the run's credentials (401/403)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetriableError(BulkportError, HttpStatusMixin):
    """A transient failure; retried by the HTTP layer, raised when retries run out."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ServerError(RetriableError):
    """The portal answered 5xx."""


class RateLimited(RetriableError):
    """The portal answered 429."""


class TransportError(RetriableError):
    """The connection failed, dropped or timed out."""


class SkippableError(BulkportError, HttpStatusMixin):
    """This record cannot be handled; report it and go on."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(SkippableError):
    """The portal answered 404."""


class ValidationError(SkippableError):
    """The portal refused the content; ``fields`` maps field paths to messages, ``code`` is
    the portal's own error code (Opendatasoft's ``error_code``, CKAN's ``__type``)."""

    def __init__(
        self, message: str, status: int | None = None, fields: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, status)
        self.fields = fields or {}
        self.code = code


class Conflict(ValidationError):
    """The portal answered 409: the record already exists, or is busy."""


class PayloadTooLarge(SkippableError):
    """The portal refused a file for its size."""


class FilesRefused(SkippableError):
    """A dataset was written but the target refused some of its files (for their size).

    It is not marked done, so the next run tries those files again (the rest is unchanged
    by then and costs no write).
    """

    @classmethod
    def check(cls, refused: list[str]) -> None:
        """Raise one error naming every refused file, if any."""
        if refused:
            raise cls("; ".join(refused))


class BadResponse(SkippableError):
    """The reply does not follow the documented API (e.g. HTML instead of JSON)."""


class MappingError(SkippableError):
    """A source record cannot be mapped to the target."""


def first_few(items: Sequence[str], most: int) -> str:
    """Items for a one-line message: the first ``most``, then how many more ("none": none)."""
    more = f" … and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more if items else "none"


def abort_reason(exc: BaseException) -> str | None:
    """The one redacted line a run that stopped on ``exc`` reports, or None when the error
    is not one bulkport raises on purpose (a bug: the caller lets it propagate)."""
    error = first_error(exc)
    if not isinstance(error, BulkportError):
        return None
    return redact(str(error) if isinstance(error, (FatalError, ConfigError))
                  else f"{type(error).__name__}: {error}")


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = next((e for e in exc.exceptions if isinstance(e, BulkportError)), exc.exceptions[0])
    return exc


@contextlib.contextmanager
def as_one_error() -> Iterator[None]:
    """Around a task group doing the parts of one unit (a dataset's files): the first part's
    error raised as itself, not in an exception group, so that the unit fails as it would on
    any other error and the run goes on. Cancellations and interrupts pass untouched."""
    try:
        yield
    except BaseExceptionGroup as group:
        error = first_error(group)
        if isinstance(error, Exception) and not isinstance(error, BaseExceptionGroup):
            raise error from None
        raise
