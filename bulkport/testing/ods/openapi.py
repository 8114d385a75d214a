"""Opendatasoft's own OpenAPI document as the oracle of the Opendatasoft simulator.

No Opendatasoft server can run in the tests, so the vendor's Automation API v1.0 OpenAPI
document judges the simulator instead. :class:`Oracle` checks every reply an app of
:func:`bulkport.testing.ods.app.create_ods_app` gives while the oracle is active:

- the status is one the document declares for that operation. An operation's ``default``
  response (the ``Error`` schema) covers error statuses only (400, 401, 403, 405, 413, 429
  and 5xx); a success status or a 404 must be listed by the operation itself;
- the body matches the schema declared for that status (JSON where JSON is declared: a
  plain-text 500 where a 400 ``validation_error`` is declared is a violation);
- a request the simulator accepted (2xx) matches the request body the document declares,
  so the simulator is never more lenient than the API it stands for.

The document is read where it lies, never copied into the repository (see
:func:`locate_document`). It contradicts itself in a few places: :data:`ERRATA` is the one
list of corrections made to it before use, each with its reason; an erratum that no longer
applies (a newer document fixed it) fails loudly rather than silently.

``jsonschema`` (a test dependency) is imported only when an oracle is built.
"""

from __future__ import annotations

import copy
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

ENV_VAR = "BULKPORT_ODS_OPENAPI"
DOCUMENT_NAME = "opendatasoft-automation-v1.0-openapi.json"
PREFIX = "/api/automation/v1.0"
_URI = "urn:bulkport:ods-automation-v1.0"
# Error statuses an operation's `default` response (the Error schema) stands for. A status
# outside these (2xx, 3xx, 404, 409...) must be declared by the operation itself.
DEFAULT_STATUSES = frozenset({400, 401, 403, 405, 413, 429})
_SKIPPED_STATUSES = frozenset({499})  # the client hung up: nobody reads that reply
_MAX_ERRORS = 3  # schema errors quoted per violation
_SNIPPET = 300


@dataclass(frozen=True)
class Erratum:
    """A correction to the document: at ``pointer``, keywords replaced or renamed."""

    pointer: str
    reason: str
    replace: dict[str, Any] = field(default_factory=dict)
    rename: dict[str, str] = field(default_factory=dict)


# Every correction made to the document, and why. Nothing else is changed.
ERRATA: tuple[Erratum, ...] = (
    Erratum("/components/schemas/PaginatedResults/properties/total_count",
            "typed as a string (or null), while its example (18) and every list reply of the "
            "API carry an integer count",
            replace={"type": ["integer", "null"]}),
    Erratum("/components/responses/DatasetProcessingStatus/content/application~1json/schema/"
            "properties/is_published",
            "`type: [null, \"boolean\"]` names the JSON value null instead of the type \"null\": "
            "not a valid JSON Schema type list",
            replace={"type": ["null", "boolean"]}),
    Erratum("/components/schemas/DatasetMetadataTemplate",
            "a oneOf of Default, Internal, Visualization, AssetContentConfiguration and Custom: "
            "all but Default require nothing and Custom takes any field, so every template's "
            "values match two or more branches and a oneOf can never pass",
            rename={"oneOf": "anyOf"}),
    Erratum("/components/schemas/UploadedFileDatasource/allOf/1/properties/file",
            "a oneOf of {uid} and DatasetFile, which requires nothing: a file reference "
            "{\"uid\": ...} matches both, so a oneOf can never pass",
            rename={"oneOf": "anyOf"}),
)


def default_locations() -> list[Path]:
    """Where the document is looked for, in order (``$BULKPORT_ODS_OPENAPI`` first)."""
    found: list[Path] = []
    if os.environ.get(ENV_VAR):
        found.append(Path(os.environ[ENV_VAR]))
    repo = Path(__file__).resolve().parents[3]  # bulkport/testing/ods/openapi.py
    found.append(repo.parent / "shared" / "api-docs" / DOCUMENT_NAME)
    found.append(Path("/work/shared/api-docs") / DOCUMENT_NAME)
    return found


def locate_document() -> tuple[Path | None, str]:
    """The document's path, or None with the reason why it is not there."""
    locations = default_locations()
    if os.environ.get(ENV_VAR) and not locations[0].is_file():
        return None, f"${ENV_VAR} names {locations[0]}, which is not a file"
    for path in locations:
        if path.is_file():
            return path, f"validating against {path}"
    tried = ", ".join(str(p) for p in locations)
    return None, (f"the Opendatasoft OpenAPI document is not there (looked for {tried}); "
                  f"set ${ENV_VAR} to its path")


def _pointer_parts(pointer: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer.lstrip("/").split("/")]


def _resolve(document: Any, pointer: str) -> Any:
    node = document
    for part in _pointer_parts(pointer):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def apply_errata(document: dict[str, Any], errata: tuple[Erratum, ...] = ERRATA) -> None:
    """Correct ``document`` in place.

    Raises:
        ValueError: an erratum no longer matches the document (it was fixed, or moved).
    """
    for erratum in errata:
        try:
            node = _resolve(document, erratum.pointer)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"erratum {erratum.pointer}: not in the document ({error})") from None
        missing = [k for k in (*erratum.replace, *erratum.rename) if k not in node]
        if missing:
            raise ValueError(f"erratum {erratum.pointer}: no {missing} there any more")
        node.update(copy.deepcopy(erratum.replace))
        for old, new in erratum.rename.items():
            node[new] = node.pop(old)


def resolve_discriminators(document: dict[str, Any]) -> None:
    """Give OpenAPI's ``discriminator`` its meaning, which JSON Schema lacks.

    A base schema with a ``mapping`` (``Datasource``: ``http`` → ``HTTPDatasource``...) then
    requires the mapped schema for each value of the property; the mapped schemas, which
    build on the base through ``allOf``, refer to a copy of it without the discriminator
    (else each would require itself forever).
    """
    schemas = document["components"]["schemas"]
    for name in list(schemas):
        schema = schemas[name]
        mapping = (schema.get("discriminator") or {}).get("mapping")
        if not mapping or "oneOf" in schema or "anyOf" in schema:
            continue
        prop = schema["discriminator"]["propertyName"]
        base_name = f"{name}__base"
        schemas[base_name] = {k: v for k, v in schema.items() if k != "discriminator"}
        base_ref, new_ref = f"#/components/schemas/{name}", f"#/components/schemas/{base_name}"
        for target in mapping.values():
            _swap_refs(schemas[target.rsplit("/", 1)[-1]], base_ref, new_ref)
        schema.setdefault("allOf", []).extend(
            {"if": {"properties": {prop: {"const": value}}, "required": [prop]},
             "then": {"$ref": target}} for value, target in mapping.items())


def _swap_refs(node: Any, old: str, new: str) -> None:
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _swap_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _swap_refs(value, old, new)


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_datetime(value: object) -> bool:
    """RFC 3339 ``date-time``: a date, a time with seconds, and a zone."""
    if not isinstance(value, str):
        return True
    if not _DATETIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


@dataclass(frozen=True)
class Operation:
    method: str
    template: str  # the document's path, e.g. "/datasets/{dataset_uid}/"
    spec: dict[str, Any]
    pointer: str  # JSON pointer of the operation in the document

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class Violation:
    """One way a reply (or an accepted request) differs from the document."""

    operation: str
    status: int
    message: str
    body: str = ""
    where: str = ""  # the test that was running, filled in by whoever collects it

    def __str__(self) -> str:
        text = f"{self.operation} → {self.status}: {self.message}"
        return text + (f"\n      body: {self.body}" if self.body else "")


class Document:
    """The corrected document, its operations by path, and compiled validators."""

    def __init__(self, path: Path) -> None:
        import jsonschema
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        raw = orjson.loads(path.read_bytes())
        apply_errata(raw)
        resolve_discriminators(raw)
        self.path = path
        self.raw = raw
        resource = Resource.from_contents(raw, default_specification=DRAFT202012)
        self._registry = Registry().with_resource(_URI, resource)
        self._checker = jsonschema.FormatChecker()
        self._checker.checks("date-time")(_is_datetime)
        self._checker.checks("date")(_is_date)
        self._validator_class = jsonschema.Draft202012Validator
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.operations: list[Operation] = []
        for template, item in raw["paths"].items():
            for method, spec in item.items():
                if method in ("get", "put", "post", "delete", "patch"):
                    pointer = f"/paths/{_escape(template)}/{method}"
                    self.operations.append(Operation(method.upper(), template, spec, pointer))
        self._by_shape: dict[int, list[tuple[list[str], Operation]]] = {}
        for op in self.operations:
            parts = op.template.strip("/").split("/")
            self._by_shape.setdefault(len(parts), []).append((parts, op))

    def find(self, method: str, path: str) -> tuple[Operation | None, bool]:
        """The operation for ``method path`` (the path without the API prefix), and whether
        the document has that path at all (for any method). Literal segments beat
        parameters (``/resources/files/`` is not ``/resources/{resource_uid}/``)."""
        parts = path.strip("/").split("/")
        candidates: list[tuple[int, Operation]] = []
        for template, op in self._by_shape.get(len(parts), ()):
            literal = 0
            for want, have in zip(template, parts, strict=True):
                if want.startswith("{") and want.endswith("}") and have:
                    continue
                if want != have:
                    break
                literal += 1
            else:
                candidates.append((literal, op))
        if not candidates:
            return None, False
        most = max(literal for literal, _ in candidates)
        return next((op for literal, op in candidates
                     if literal == most and op.method == method), None), True

    def responses(self, op: Operation) -> dict[str, Any]:
        responses = op.spec.get("responses")
        return responses if isinstance(responses, dict) else {}

    def deref(self, node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Follow a response's local ``$ref``; also return the pointer of what it names."""
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            return _resolve(self.raw, ref[1:]), ref[1:]
        return node, None

    def errors(self, pointer: str, instance: Any) -> list[str]:
        """Schema errors of ``instance`` against the schema at ``pointer`` (best first)."""
        with self._lock:
            validator = self._validators.get(pointer)
            if validator is None:
                validator = self._validator_class({"$ref": f"{_URI}#{pointer}"},
                                                  registry=self._registry,
                                                  format_checker=self._checker)
                self._validators[pointer] = validator
        found = sorted(validator.iter_errors(instance), key=_relevance, reverse=True)
        return [_describe(error) for error in found[:_MAX_ERRORS]]


def _relevance(error: Any) -> Any:
    from jsonschema.exceptions import relevance

    return relevance(error)


def _describe(error: Any) -> str:
    from jsonschema.exceptions import best_match

    deepest = best_match([error]) if error.context else error
    where = deepest.json_path
    return f"{where}: {deepest.message[:200]}"


def _escape(text: str) -> str:
    return text.replace("~", "~0").replace("/", "~1")


def _snippet(body: bytes | None) -> str:
    if not body:
        return ""
    text = body[:_SNIPPET].decode("utf-8", "replace")
    return text + ("…" if len(body) > _SNIPPET else "")


def _media(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


class Oracle:
    """Checks replies against :class:`Document` and keeps count; thread-safe.

    Attributes:
        violations: every violation found, in order.
        stats: ``replies`` (statuses checked), ``bodies`` (bodies validated against a
            schema), ``requests`` (accepted request bodies validated), and what was left
            out: ``skipped:explore`` (another API), ``skipped:dropped`` (no reply reached
            the client), ``skipped:unrouted`` (a path neither the document nor the
            simulator has).
        operations: replies checked per operation and status.
    """

    def __init__(self, document: Document) -> None:
        self.document = document
        self.violations: list[Violation] = []
        self.stats: Counter[str] = Counter()
        self.operations: Counter[str] = Counter()
        self._lock = threading.Lock()

    # ---- what an aiohttp app runs -------------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Handler) -> web.StreamResponse:
        """Check the reply to ``request`` (outermost: injected faults are replies too)."""
        if not request.path.startswith(PREFIX + "/"):
            self._count("skipped:explore")
            return await handler(request)
        sent: bytes | None = None
        if _media(request.headers.get(hdrs.CONTENT_TYPE)) == "application/json":
            try:
                sent = await request.read()  # cached: the handler reads the same bytes
            except Exception:  # an undecodable body: the handler meets (and answers) it too
                sent = None
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own reply (plain text)
            self.check(request, exc.status, exc.content_type, exc.body if isinstance(
                exc.body, bytes) else None, sent)
            raise
        except Exception as exc:
            self.record(f"{request.method} {request.path}", 500,
                        f"unhandled {type(exc).__name__} ({exc}): aiohttp answers a plain-text "
                        "500")
            raise
        transport = request.transport
        if transport is None or transport.is_closing():
            self._count("skipped:dropped")
            return response
        body = response.body if isinstance(response, web.Response) else None
        self.check(request, response.status, response.content_type,
                   body if isinstance(body, bytes) else None, sent,
                   streamed=not isinstance(response, web.Response))
        return response

    # ---- the checks ----------------------------------------------------------------
    def check(self, request: web.Request, status: int, content_type: str | None,
              body: bytes | None, sent: bytes | None = None, *, streamed: bool = False) -> None:
        """Check one reply (and, for a 2xx, the request body it accepted)."""
        if status in _SKIPPED_STATUSES:
            return
        path = request.path.removeprefix(PREFIX)
        op, path_known = self.document.find(request.method, path)
        route = request.match_info.route.resource  # (an empty match_info is falsy)
        if op is None:
            if route is not None and request.match_info.http_exception is None:
                self.record(f"{request.method} {path}", status,
                            "the simulator serves an operation the document does not have")
            elif path_known and status != 405:
                self.record(f"{request.method} {path}", status, "a method the document does not "
                            "have for this path must be a 405")
            else:
                self._count("skipped:unrouted")
            return
        if status == 405 and path_known:
            self.record(op.label, status, "the document has this operation but the "
                        "simulator does not implement it")
            return
        for problem in self.reply_problems(op, status, content_type, body, streamed=streamed):
            self.record(op.label, status, problem, body)
        if 200 <= status < 300:
            for problem in self.request_problems(op, request, sent):
                self.record(op.label, status, f"accepted request: {problem}", sent)
        with self._lock:
            self.operations[f"{op.label} {status}"] += 1

    def reply_problems(self, op: Operation, status: int, content_type: str | None,
                       body: bytes | None, *, streamed: bool = False) -> list[str]:
        """How a reply breaks the document (empty when it does not)."""
        self._count("replies")
        responses = self.document.responses(op)
        declared = responses.get(str(status))
        pointer_key = str(status)
        if declared is None:
            if "default" in responses and (status in DEFAULT_STATUSES or status >= 500):
                declared, pointer_key = responses["default"], "default"
            else:
                listed = ", ".join(k for k in responses)
                return [f"status {status} is not declared (declared: {listed})"]
        spec, pointer = self.document.deref(declared)
        pointer = pointer or f"{op.pointer}/responses/{pointer_key}"
        content = spec.get("content") or {}
        media = _media(content_type)
        if status == 204:
            return [] if not body else ["a 204 reply has a body"]
        with_schema = {k: v for k, v in content.items() if isinstance(v, dict) and "schema" in v}
        if not with_schema:
            return []  # nothing declared for this status (e.g. a bare 404 description)
        if media not in with_schema:
            shown = f" ({_snippet(body)!r})" if body else ""
            return [f"replied {media or 'no content type'}{shown} where the document declares "
                    f"{', '.join(with_schema)}"]
        if media != "application/json":
            return []  # a file download: bytes have no schema
        if streamed or body is None:
            return ["a streamed JSON reply cannot be validated"]
        try:
            instance = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return [f"the body is not JSON: {error}"]
        self._count("bodies")
        schema_pointer = f"{pointer}/content/{_escape(media)}/schema"
        return [f"body {problem}" for problem in self.document.errors(schema_pointer, instance)]

    def request_problems(self, op: Operation, request: web.Request,
                         sent: bytes | None) -> list[str]:
        """How an accepted request's body breaks the document's ``requestBody``."""
        content = (op.spec.get("requestBody") or {}).get("content") or {}
        media = _media(request.headers.get(hdrs.CONTENT_TYPE))
        if not content or (not media and not sent):
            return []
        if media not in content:
            return [f"sent {media or 'no body'} where the document takes {', '.join(content)}"]
        if media != "application/json" or not sent or not sent.strip():
            return []
        try:
            instance = orjson.loads(sent)
        except orjson.JSONDecodeError:
            return ["the simulator accepted a body that is not JSON"]
        self._count("requests")
        pointer = f"{op.pointer}/requestBody/content/{_escape(media)}/schema"
        return self.document.errors(pointer, instance)

    # ---- bookkeeping ---------------------------------------------------------------
    def record(self, operation: str, status: int, message: str,
               body: bytes | None = None) -> None:
        with self._lock:
            self.violations.append(Violation(operation, status, message, _snippet(body)))

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def mark(self) -> int:
        """A position in :attr:`violations`, for :meth:`since`."""
        with self._lock:
            return len(self.violations)

    def since(self, mark: int) -> list[Violation]:
        with self._lock:
            return list(self.violations[mark:])

    def summary(self) -> str:
        s = self.stats
        skipped = ", ".join(f"{k.removeprefix('skipped:')} {v}" for k, v in sorted(s.items())
                            if k.startswith("skipped:"))
        operations = len({key.rsplit(" ", 1)[0] for key in self.operations})
        return (f"{s['replies']} replies checked over {operations} operations "
                f"({s['bodies']} JSON bodies validated, {s['requests']} accepted request bodies); "
                f"{len(self.violations)} violations"
                + (f"; not checked: {skipped}" if skipped else ""))


# ---- the oracle the simulator's apps report to ----------------------------------------
_active: Oracle | None = None


def activate(oracle: Oracle | None) -> None:
    """Make every app :func:`create_ods_app` builds from now on report to ``oracle``
    (None: stop)."""
    global _active
    _active = oracle


def active() -> Oracle | None:
    return _active


def attach(app: web.Application) -> None:
    """Put the active oracle's middleware first in ``app`` (no-op when none is active)."""
    if _active is not None:
        app.middlewares.insert(0, _active.middleware)


def load() -> tuple[Oracle | None, str]:
    """An oracle over the located document, or None with the reason why not."""
    path, reason = locate_document()
    if path is None:
        return None, reason
    return Oracle(Document(path)), reason


def iter_report(violations: list[Violation]) -> Iterator[str]:
    for violation in violations:
        yield f"  {violation}" + (f"  [{violation.where}]" if violation.where else "")
