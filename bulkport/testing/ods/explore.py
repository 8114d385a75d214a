"""Opendatasoft simulator: the Explore API v2.1 dataset export.

``GET /api/explore/v2.1/catalog/datasets/{dataset_id}/exports/{format}`` streams every
record of a published dataset (no row cap, unlike ``/records``), chunked, with no
Content-Length. The records are in ``store.records`` (dataset uid → records): what the
platform extracted from the dataset's sources, a generated :class:`RecordSet` for a seeded
domain, or the rows of the uploaded CSV files a publication read
(:class:`bulkport.testing.ods.extract.FileRecords`). The API is public: an anonymous caller
sees published datasets that are not restricted; a key must be valid.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from bulkport.testing.core.responses import CHUNK, DROP_AFTER_KEY, drop_connection
from bulkport.testing.ods.errors import OdsError
from bulkport.testing.ods.store import OdsStore

EXPLORE_PREFIX = "/api/explore/v2.1"
FORMATS = {"csv": "text/csv; charset=utf-8", "json": "application/json; charset=utf-8",
           "jsonl": "application/jsonl; charset=utf-8"}
DELIMITERS = (";", ",", "\t", "|")
_NAMES = ("Zoë", "Łukasz", "李雷", "Søren", "Chloé", "O'Brien", "Nguyễn", "Ayşe")
_PLACES = ("Paris", "Zürich", "São Paulo", "東京", "Reykjavík", "Montréal")
_NOTES = ("", "ok", "contains, a comma", 'quoted "word"', "line\nbreak", "🚲 vélo", "a;b")
_ROWS_PER_BLOCK = 500


class Records(Protocol):
    """The records of a dataset, as an export reads them."""

    @property
    def fields(self) -> tuple[str, ...]: ...

    @property
    def labels(self) -> tuple[str, ...]:
        """The label of each of :attr:`fields`."""
        ...

    def iter_records(self, limit: int = -1) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True)
class RecordSet:
    """``rows`` records, each a pure function of ``seed`` and its position."""

    rows: int
    seed: int = 0
    fields: tuple[str, ...] = ("id", "name", "place", "value", "date", "note")

    @property
    def labels(self) -> tuple[str, ...]:
        return self.fields  # generated fields are labelled by their names

    def iter_records(self, limit: int = -1) -> Iterator[dict[str, Any]]:
        """The records in order, the first ``limit`` only when it is not -1."""
        count = self.rows if limit < 0 else min(limit, self.rows)
        for n in range(count):
            rng = random.Random(self.seed * 1_000_003 + n)
            values = (n + 1, rng.choice(_NAMES), rng.choice(_PLACES),
                      round(rng.uniform(-1e4, 1e5), 2),
                      f"20{rng.randint(10, 26)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                      rng.choice(_NOTES))
            yield dict(zip(self.fields, values, strict=False))


def render(records: Records, fmt: str = "csv", *, delimiter: str = ";",
           with_bom: bool = True, limit: int = -1, use_labels: bool = False) -> Iterator[bytes]:
    """The export body in pieces, as the endpoint streams it (the v2.1 CSV defaults).

    Args:
        use_labels: a CSV's header row holds the fields' labels, not their names.
    """
    fields = records.fields
    rows = records.iter_records(limit)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter)
        writer.writerow(records.labels if use_labels else fields)
        head = ("\ufeff" if with_bom else "") + buffer.getvalue()
        yield head.encode()
        while True:
            buffer.seek(0)
            buffer.truncate()
            block = [[r.get(f) for f in fields]
                     for _, r in zip(range(_ROWS_PER_BLOCK), rows, strict=False)]
            if not block:
                return
            writer.writerows(block)
            yield buffer.getvalue().encode()
    elif fmt == "jsonl":
        for record in rows:
            yield orjson.dumps(record) + b"\n"
    else:
        yield b"["
        for n, record in enumerate(rows):
            yield (b"," if n else b"") + orjson.dumps(record)
        yield b"]"


def _no_dataset(dataset_id: str) -> OdsError:
    return OdsError(404, "NoSuchDatasetException", f"Unknown dataset: {dataset_id}")


def _bad(message: str) -> OdsError:
    return OdsError(400, "InvalidRESTParameterError", message)


def _flag(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() not in ("true", "false"):
        raise _bad(f"Invalid value for '{name}': expected true or false.")
    return raw.lower() == "true"


async def export_dataset(request: web.Request) -> web.StreamResponse:
    """``GET .../exports/{format}``: ``limit`` (-1 for all), ``use_labels``, and for CSV
    ``delimiter`` and ``with_bom``, as the v2.1 API takes them."""
    store: OdsStore = request.app["store"]
    dataset_id = request.match_info["dataset_id"]
    fmt = request.match_info["format"]
    dataset = store.by_dataset_id(dataset_id)
    anonymous = request.get("ods_user") is None
    if dataset is None or not dataset.is_published or (anonymous and dataset.is_restricted):
        raise _no_dataset(dataset_id)
    if fmt not in FORMATS:
        raise _bad(f"Export format '{fmt}' is not available on this simulator "
                   f"(available: {', '.join(FORMATS)}).")
    delimiter = request.query.get("delimiter", ";")
    if delimiter not in DELIMITERS:
        raise _bad(f"Invalid value for 'delimiter': {delimiter!r}.")
    try:
        limit = int(request.query.get("limit", "-1"))
    except ValueError:
        raise _bad("Invalid value for 'limit': a valid integer is required.") from None
    if limit < -1:
        raise _bad("Invalid value for 'limit': must be -1 or more.")
    records = store.records.get(dataset.uid) or RecordSet(rows=0)
    pieces = render(records, fmt, delimiter=delimiter, with_bom=_flag(request, "with_bom", True),
                    limit=limit, use_labels=_flag(request, "use_labels", False))
    response = web.StreamResponse(headers={
        "Content-Type": FORMATS[fmt],
        "Content-Disposition": f'attachment; filename="{dataset_id}.{fmt}"'})
    response.enable_chunked_encoding()
    await response.prepare(request)
    cut = request.get(DROP_AFTER_KEY)
    pending = b""
    for piece in pieces:
        pending += piece
        if len(pending) >= CHUNK:
            if cut:  # a fault asked for a broken reply: send a part, then hang up
                await response.write(pending[: len(pending) // 2])
                drop_connection(request)
                return response
            await response.write(pending)
            pending = b""
    if cut:
        await response.write(pending[: len(pending) // 2])
        drop_connection(request)
        return response
    await response.write(pending)
    await response.write_eof()
    return response


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("/catalog/datasets/{dataset_id}/exports/{format}", {"GET": export_dataset}),
]
