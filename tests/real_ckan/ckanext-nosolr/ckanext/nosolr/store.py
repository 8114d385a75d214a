"""The search documents CKAN sends to Solr, kept in a PostgreSQL table and queried in SQL.

Field types, stored-ness and copy fields are read from the ``schema.xml`` that CKAN ships, so
``fl`` returns what Solr would store and a range compares dates as dates, numbers as numbers
and strings (``num_resources`` is one, through the ``*`` dynamic field) as strings. Text
fields match whole words, case-insensitively, with no stemming and no ranking.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psycopg2
from dateutil.relativedelta import relativedelta

from ckanext.nosolr.query import (
    MUST,
    MUST_NOT,
    SHOULD,
    Boolean,
    MatchAll,
    Node,
    QuerySyntaxError,
    Range,
    Term,
    parse,
)

TEXT_TYPES = {"text", "text_general", "text_ngram"}
DATE_TYPES = {"date", "pdate", "pdates"}
NUMBER_TYPES = {"int", "float", "long", "double", "pint", "pfloat", "plong", "pdouble",
                "pints", "pfloats", "plongs", "pdoubles"}
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z")
_MATH = re.compile(r"([+-])(\d+)([A-Z]+)|/([A-Z]+)")
_UNITS = {"YEAR": "years", "MONTH": "months", "DAY": "days", "DATE": "days", "HOUR": "hours",
          "MINUTE": "minutes", "SECOND": "seconds", "MILLI": "microseconds",
          "MILLISECOND": "microseconds"}


class SearchFailure(Exception):
    """A query Solr would refuse; the plugin turns it into ``pysolr.SolrError``."""


@dataclass(frozen=True)
class FieldType:
    kind: str  # "text", "string", "date" or "number"
    stored: bool
    multi: bool


class Schema:
    """Solr's schema for CKAN, from the ``schema.xml`` in CKAN's package."""

    def __init__(self, path: str) -> None:
        root = ET.parse(path).getroot()
        types = {t.get("name"): t for t in root.iter("fieldType")}
        self.fields: dict[str, FieldType] = {}
        self.dynamic: list[tuple[str, FieldType]] = []
        for tag, target in (("field", None), ("dynamicField", self.dynamic)):
            for f in root.iter(tag):
                ftype = types.get(f.get("type"))
                multi = (f.get("multiValued") or (ftype.get("multiValued") if ftype is not None else "")
                         or "false") == "true"
                info = FieldType(_kind(f.get("type") or ""), f.get("stored", "true") == "true", multi)
                if target is None:
                    self.fields[f.get("name") or ""] = info
                else:
                    target.append((f.get("name") or "", info))
        self.copies: dict[str, list[str]] = {}
        for copy in root.iter("copyField"):
            self.copies.setdefault(copy.get("dest") or "", []).append(copy.get("source") or "")

    def type_of(self, name: str) -> FieldType:
        if name in self.fields:
            return self.fields[name]
        for pattern, info in sorted(self.dynamic, key=lambda d: -len(d[0])):  # longest first, as Solr
            if fnmatch.fnmatchcase(name, pattern):
                return info
        return FieldType("string", False, False)

    def sources(self, name: str) -> list[str]:
        """The document keys (globs allowed) whose values a field holds, copy fields included."""
        out, todo = [], [name]
        while todo:
            current = todo.pop()
            if current in out:
                continue
            out.append(current)
            todo.extend(self.copies.get(current, []))
        return out


def _kind(type_name: str) -> str:
    if type_name in TEXT_TYPES:
        return "text"
    if type_name in DATE_TYPES:
        return "date"
    if type_name in NUMBER_TYPES:
        return "number"
    return "string"


def solr_date(text: str, now: datetime) -> datetime:
    """A Solr date with its date math: ``NOW-1DAY``, ``2026-01-01T00:00:00Z/DAY``."""
    match = _DATE.match(text)
    if text.startswith("NOW"):
        moment, rest = now, text[3:]
    elif match:
        moment = datetime.fromisoformat(match.group(1)).replace(tzinfo=timezone.utc)
        rest = text[match.end():]
    else:
        raise SearchFailure(f"Invalid Date String:'{text}'")
    while rest:
        step = _MATH.match(rest)
        if not step:
            raise SearchFailure(f"Invalid Date in Date Math String:'{text}'")
        unit = (step.group(3) or step.group(4)).removesuffix("S")
        if unit not in _UNITS:
            raise SearchFailure(f"Invalid Date Math String:'{text}'")
        if step.group(4):
            moment = _round_down(moment, unit)
        else:
            amount = int(step.group(2)) * (1000 if unit.startswith("MILLI") else 1)
            delta = relativedelta(**{_UNITS[unit]: amount})
            moment = moment + delta if step.group(1) == "+" else moment - delta
        rest = rest[step.end():]
    return moment


def _round_down(moment: datetime, unit: str) -> datetime:
    order = ["YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND"]
    unit = "DAY" if unit == "DATE" else unit
    if unit not in order:
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    keep = order.index(unit)
    parts = {"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
    names = ["month", "day", "hour", "minute", "second"]
    return moment.replace(microsecond=0, **{n: parts[n] for n in names[keep:]})


def stored_date(value: Any) -> Any:
    """A date as Solr returns it: UTC, milliseconds only when not zero, a trailing ``Z``."""
    if not isinstance(value, str):
        return value
    match = _DATE.match(value)
    if not match:
        return value
    moment = datetime.fromisoformat(match.group(1))
    millis = moment.microsecond // 1000
    text = moment.replace(microsecond=0).isoformat()
    return text + (f".{millis:03d}Z" if millis else "Z")


class Compiler:
    """One query tree into a SQL condition over the ``doc`` column, with its parameters."""

    def __init__(self, schema: Schema, now: datetime, default_field: str) -> None:
        self.schema = schema
        self.now = now
        self.default_field = default_field
        self.params: list[Any] = []

    def condition(self, node: Node) -> str:
        if isinstance(node, MatchAll):
            return "TRUE"
        if isinstance(node, Boolean):
            return self._boolean(node)
        name = node.field or self.default_field
        ftype = self.schema.type_of(name)
        values = self.values(name)  # first: its parameters come first in the SQL
        test = self._range(node, ftype.kind) if isinstance(node, Range) else self._term(node, ftype.kind)
        return f"EXISTS (SELECT 1 FROM {values} WHERE {test})"

    def _boolean(self, node: Boolean) -> str:
        must = [self.condition(n) for occur, n in node.clauses if occur == MUST]
        should = [self.condition(n) for occur, n in node.clauses if occur == SHOULD]
        must_not = [self.condition(n) for occur, n in node.clauses if occur == MUST_NOT]
        parts = [f"({c})" for c in must] + [f"NOT ({c})" for c in must_not]
        if should and not must:
            parts.append("(" + " OR ".join(f"({c})" for c in should) + ")")
        if not must and not should and not must_not:
            return "FALSE"  # "()" matches nothing
        return " AND ".join(parts)

    def values(self, name: str) -> str:
        """A set of rows ``v(x)``: every value (as text) the field holds in one document."""
        keys = self.schema.sources(name)
        if len(keys) == 1 and "*" not in keys[0]:
            self.params += [keys[0]] * 3
            return ("jsonb_array_elements_text(CASE jsonb_typeof(doc->%s) WHEN 'array' "
                    "THEN doc->%s ELSE jsonb_build_array(doc->%s) END) v(x)")
        self.params.append([_like(k) for k in keys])
        return ("(SELECT a.x FROM jsonb_each(doc) e(k, j) CROSS JOIN LATERAL jsonb_array_elements_text("
                "CASE jsonb_typeof(e.j) WHEN 'array' THEN e.j ELSE jsonb_build_array(e.j) END) a(x) "
                "WHERE e.k LIKE ANY(%s)) v")

    def _term(self, term: Term, kind: str) -> str:
        if term.wildcard and term.value == "*":
            return "v.x IS NOT NULL"
        if kind == "text":
            if term.wildcard:
                self.params.append(_like(term.value.lower()))
                return ("EXISTS (SELECT 1 FROM regexp_split_to_table(lower(v.x), '\\W+') w "
                        "WHERE w LIKE %s)")
            self.params.append(term.value)
            return "to_tsvector('simple', v.x) @@ phraseto_tsquery('simple', %s)"
        if term.wildcard:
            self.params.append(_like(term.value))
            return "v.x LIKE %s"
        if kind == "date":
            self.params.append(solr_date(term.value, self.now))
            return "v.x::timestamptz = %s"
        if kind == "number":
            self.params.append(_number(term.value))
            return "v.x::numeric = %s"
        self.params.append(term.value)
        return "v.x = %s"

    def _range(self, node: Range, kind: str) -> str:
        tests = ["v.x IS NOT NULL"]
        cast = {"date": "v.x::timestamptz", "number": "v.x::numeric"}.get(kind, 'v.x COLLATE "C"')
        for bound, inclusive, op in ((node.low, node.include_low, ">"), (node.high, node.include_high, "<")):
            if bound is None:
                continue
            value: Any = bound
            if kind == "date":
                value = solr_date(bound, self.now)
            elif kind == "number":
                value = _number(bound)
            self.params.append(value)
            tests.append(f"{cast} {op}{'=' if inclusive else ''} %s")
        return " AND ".join(tests)


def _like(glob: str) -> str:
    """A Solr wildcard term (or a schema glob) as a LIKE pattern; ``\\x`` stays literal."""
    out, escaped = [], False
    for char in glob:
        if escaped:
            out.append("\\" + char if char in "%_\\" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        else:
            out.append("\\" + char if char in "%_" else char)
    return "".join(out)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SearchFailure(f"Invalid Number: {text}") from None


class DocumentStore:
    """The ``nosolr_doc`` table: one row per indexed document, in the order Solr would add them."""

    def __init__(self, url: str, schema: Schema) -> None:
        self.url = url
        self.schema = schema
        self._connection: Any = None
        self._pid = 0

    def connection(self) -> Any:
        # gunicorn forks its workers: each process needs its own connection.
        if self._connection is None or self._connection.closed or self._pid != os.getpid():
            self._connection = psycopg2.connect(self.url)
            self._connection.autocommit = True
            self._pid = os.getpid()
        return self._connection

    def create(self) -> None:
        with self.connection().cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(4242)")
            try:
                cur.execute("CREATE SEQUENCE IF NOT EXISTS nosolr_seq")
                cur.execute("CREATE TABLE IF NOT EXISTS nosolr_doc (index_id text PRIMARY KEY, "
                            "seq bigint NOT NULL, doc jsonb NOT NULL)")
            finally:
                cur.execute("SELECT pg_advisory_unlock(4242)")

    def add(self, docs: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        with self.connection().cursor() as cur:
            for doc in docs:
                doc = {**doc, "indexed_ts": now}  # schema.xml: default="NOW"
                cur.execute("INSERT INTO nosolr_doc (index_id, seq, doc) VALUES (%s, nextval('nosolr_seq'), "
                            "%s) ON CONFLICT (index_id) DO UPDATE SET seq = EXCLUDED.seq, doc = EXCLUDED.doc",
                            (doc["index_id"], json.dumps(doc, default=str)))

    def delete(self, query: str) -> None:
        where, params = self.where([query], default_field="text", default_and=False)
        with self.connection().cursor() as cur:
            cur.execute(f"DELETE FROM nosolr_doc WHERE {where}", params)

    def where(self, queries: list[str], *, default_field: str,
              default_and: bool) -> tuple[str, list[Any]]:
        compiler = Compiler(self.schema, datetime.now(timezone.utc), default_field)
        try:
            parts = [compiler.condition(parse(q, default_and=default_and)) for q in queries if q.strip()]
        except QuerySyntaxError as error:
            raise SearchFailure(str(error)) from None
        return " AND ".join(f"({p})" for p in parts) or "TRUE", compiler.params

    def search(self, q: str, fq: list[str], *, sort: str, start: int, rows: int, fl: str,
               default_field: str, default_and: bool) -> tuple[int, list[dict[str, Any]]]:
        where, params = self.where([q, *fq], default_field=default_field, default_and=default_and)
        order = self.order_by(sort)
        with self.connection().cursor() as cur:
            cur.execute(f"SELECT count(*) FROM nosolr_doc WHERE {where}", params)
            count = cur.fetchone()[0]
            docs: list[dict[str, Any]] = []
            if rows > 0:
                cur.execute(f"SELECT doc FROM nosolr_doc WHERE {where} ORDER BY {order} "
                            "LIMIT %s OFFSET %s", [*params, rows, start])
                docs = [self.stored(row[0], fl) for row in cur.fetchall()]
        return count, docs

    def facets(self, q: str, fq: list[str], fields: list[str], *, limit: int, mincount: int,
               default_field: str, default_and: bool) -> dict[str, list[Any]]:
        """Solr's ``facet_fields``: per field, ``[value, count, value, count, …]``, most first."""
        out: dict[str, list[Any]] = {}
        where, params = self.where([q, *fq], default_field=default_field, default_and=default_and)
        for name in fields:
            compiler = Compiler(self.schema, datetime.now(timezone.utc), default_field)
            values = compiler.values(name)
            sql = (f"SELECT v.x, count(*) FROM nosolr_doc, {values} WHERE ({where}) AND v.x IS NOT NULL "
                   "GROUP BY v.x HAVING count(*) >= %s ORDER BY count(*) DESC, v.x")
            with self.connection().cursor() as cur:
                cur.execute(sql + (" LIMIT %s" if limit >= 0 else ""),
                            [*compiler.params, *params, mincount, *([limit] if limit >= 0 else [])])
                out[name] = [item for row in cur.fetchall() for item in row]
        return out

    def order_by(self, sort: str) -> str:
        terms = []
        for spec in filter(None, (s.strip() for s in (sort or "").split(","))):
            parts = spec.split()
            if len(parts) != 2 or parts[1].lower() not in ("asc", "desc"):
                raise SearchFailure(f"Can't determine a Sort Order (asc or desc) in sort spec '{spec}'")
            name, direction = parts[0], parts[1].upper()
            if name == "score":
                continue  # no ranking here: every match scores the same
            ftype = self.schema.type_of(name)
            if ftype.multi:
                raise SearchFailure(f"can not sort on multivalued field: {name}")
            if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
                raise SearchFailure(f"sort param field can't be found: {name}")
            key = name.replace("'", "")
            expr = {"date": f"(doc->>'{key}')::timestamptz", "number": f"(doc->>'{key}')::numeric"}.get(
                ftype.kind, f"(doc->>'{key}') COLLATE \"C\"")
            terms.append(f"{expr} {direction} NULLS LAST")
        return ", ".join([*terms, "seq ASC"])  # ties: index order, as Solr's internal doc ids

    def stored(self, doc: dict[str, Any], fl: str) -> dict[str, Any]:
        wanted = [f for f in re.split(r"[\s,]+", fl or "*") if f]
        out: dict[str, Any] = {}
        for key, value in doc.items():
            ftype = self.schema.type_of(key)
            if ftype.stored and any(fnmatch.fnmatchcase(key, w) for w in wanted):
                out[key] = stored_date(value) if ftype.kind == "date" else value
        if "score" in wanted:
            out["score"] = 1.0
        return out
