"""Opendatasoft simulator: the records a publication extracts from uploaded CSV files.

Publishing a dataset makes the platform read its resources into records, which the explore
API then exports (:mod:`bulkport.testing.ods.explore`). The simulator does so for the
``csvfile`` resources of uploaded files, with their ``separator``, ``encoding`` and
``headers_first_row`` parameters; other extractors (spreadsheets, JSON, shapes...) give no
records here. The files are read again at each export, a block at a time, never held whole.
Column names become field names as the platform makes them: lower case, ASCII, ``_`` for
anything else (``Zoë Name`` → ``zoe_name``); a file without a header row has ``column_1``...
"""

from __future__ import annotations

import codecs
import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from bulkport.testing.core.files import Blob

_BLOCK = 65536


def field_name(label: str, n: int) -> str:
    """The field name the platform gives a column labelled ``label`` (the ``n``-th, from 1)."""
    text = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    return name or f"column_{n}"


def _lines(blob: Blob, encoding: str) -> Iterator[str]:
    """The lines of ``blob`` as text, newlines kept (what :mod:`csv` reads quoted line
    breaks from)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    pending = ""
    for chunk in blob.iter_chunks(_BLOCK):
        pending += decoder.decode(chunk)
        lines = pending.splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        yield from lines
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending


@dataclass(frozen=True)
class CsvSource:
    """One uploaded CSV file and how its resource says to read it."""

    blob: Blob
    separator: str = ","
    encoding: str = "utf-8"
    headers_first_row: bool = True

    @classmethod
    def of(cls, blob: Blob, params: dict[str, Any]) -> CsvSource:
        separator = params.get("separator")
        encoding = params.get("encoding")
        try:
            codecs.lookup(encoding if isinstance(encoding, str) else "utf-8")
        except LookupError:
            encoding = "utf-8"
        return cls(blob, separator if isinstance(separator, str) and len(separator) == 1
                   else ",", encoding if isinstance(encoding, str) else "utf-8",
                   params.get("headers_first_row", True) is not False)

    def rows(self) -> Iterator[list[str]]:
        # A byte order mark is no part of the first column's name.
        encoding = "utf-8-sig" if codecs.lookup(self.encoding).name == "utf-8" else self.encoding
        return csv.reader(_lines(self.blob, encoding), delimiter=self.separator)

    def labelled(self) -> list[tuple[str, str]]:
        """Each column's field name and label (its header, or the name when none)."""
        first = next(self.rows(), [])
        if self.headers_first_row:
            return [(field_name(label, n), label) for n, label in enumerate(first, 1)]
        return [(f"column_{n}", f"column_{n}") for n in range(1, len(first) + 1)]

    def fields(self) -> list[str]:
        return [name for name, _ in self.labelled()]


@dataclass(frozen=True)
class FileRecords:
    """The records of a dataset's CSV resources, in resource order (the interface of
    :class:`bulkport.testing.ods.explore.RecordSet`)."""

    sources: tuple[CsvSource, ...]

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field of every file, in the order first met."""
        return tuple(self._labels())

    @property
    def labels(self) -> tuple[str, ...]:
        """The label of each of :attr:`fields`: the header it was first met under."""
        return tuple(self._labels().values())

    def _labels(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for source in self.sources:
            for name, label in source.labelled():
                found.setdefault(name, label)
        return found

    def iter_records(self, limit: int = -1) -> Iterator[dict[str, Any]]:
        """The records in order, the first ``limit`` only when it is not -1."""
        count = 0
        every = dict.fromkeys(self.fields)  # a field a file lacks is null in its records
        for source in self.sources:
            names = source.fields()
            rows: Iterable[list[str]] = source.rows()
            if source.headers_first_row:
                next(iter(rows), None)
            for row in rows:
                if 0 <= limit <= count:
                    return
                if not any(cell.strip() for cell in row):
                    continue  # a blank line is no record
                yield {**every, **dict(zip(names, row, strict=False))}
                count += 1
