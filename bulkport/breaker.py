"""Stop a run whose records keep failing the same way.

When the first twenty datasets all fail with "organization 'x' does not exist", the cause
is the job or the portal, not the records: going on would only make a thousand failures
of one mistake. :class:`Breaker` counts the failures in a row that say the same thing once
what is particular to a record (quoted names, ids, numbers) is masked; a success resets it.
"""

from __future__ import annotations

import re

from bulkport.errors import FatalError
from bulkport.redact import redact

# What differs from one record to the next in a message of the same cause.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_WITH_DIGIT = re.compile(r"[\w.~-]*\d[\w.~-]*")


class RepeatedFailure(FatalError):
    """Many records in a row failed with one error: the run stops with that error."""


def shape(error: BaseException) -> str:
    """The error's type and message with the parts that name one record masked."""
    message = _WITH_DIGIT.sub("#", _QUOTED.sub("'…'", str(error)))
    return f"{type(error).__name__}: {message}"


class Breaker:
    """Counts the failures in a row that share one :func:`shape`.

    Args:
        limit: failures in a row that stop the run; 0 never stops it.
        what: what the records are, for the message ("datasets", "tokens").
    """

    def __init__(self, limit: int, what: str = "datasets") -> None:
        self.limit = limit
        self.what = what
        self._shape: str | None = None
        self._count = 0

    def success(self) -> None:
        """A record went through: the failures before it were not one cause."""
        self._shape, self._count = None, 0

    def failure(self, error: BaseException) -> None:
        """Count a failed record.

        Raises:
            RepeatedFailure: the last ``limit`` records all failed with this error.
        """
        found = shape(error)
        self._count = self._count + 1 if found == self._shape else 1
        self._shape = found
        if self.limit and self._count >= self.limit:
            message = " ".join(str(error).split())  # one line, whatever the portal wrote
            raise RepeatedFailure(redact(
                f"stopped after {self._count} {self.what} in a row failed with the same error "
                f"(finished work is kept; fix the cause and run again): "
                f"{type(error).__name__}: {message}"))
