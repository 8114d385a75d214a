"""Applying an RFC 6902 JSON Patch the way DataPress does: all operations or none.

Operations are applied one at a time (with the ``jsonpatch`` library) so that a failure
names the operation and the path it failed on. Issue codes are those of fast-json-patch,
the JavaScript library a Node server such as DataPress applies patches with.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer
import orjson

from bulkport.testing.datapress.schema import Issue, Path

OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")
_ABSENT = object()


class PatchFailed(Exception):
    """The patch cannot be applied; ``issues`` say where and why."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(issues[0]["message"])
        self.issues = issues


def pointer_path(pointer: Any) -> Path:
    """``/resources/0ck/title`` → ``["resources", "0ck", "title"]``.

    Parts stay strings: ``"123"`` may be a resource id as well as a list index.
    """
    try:
        return list(jsonpointer.JsonPointer(pointer).parts)
    except (jsonpointer.JsonPointerException, TypeError, AttributeError):
        return []


def _issue(code: str, message: str, index: int, operation: Any, pointer: Any) -> Issue:
    return {"code": code, "message": message, "path": pointer_path(pointer), "index": index,
            "operation": operation}


def _is_pointer(value: Any) -> bool:
    return isinstance(value, str) and (value == "" or value.startswith("/"))


def _check_shape(index: int, operation: Any) -> Issue | None:
    """What fast-json-patch's validator would refuse before applying anything."""
    if not isinstance(operation, dict):
        return _issue("OPERATION_NOT_AN_OBJECT", "Operation is not an object", index,
                      operation, None)
    pointer = operation.get("path")
    if operation.get("op") not in OPERATIONS:
        return _issue("OPERATION_OP_INVALID", "Operation `op` property is not one of "
                      "operations defined in RFC-6902", index, operation, pointer)
    if not _is_pointer(pointer):
        return _issue("OPERATION_PATH_INVALID", "Operation `path` property is not a string "
                      "starting with /", index, operation, None)
    if operation["op"] in ("move", "copy") and not _is_pointer(operation.get("from")):
        return _issue("OPERATION_FROM_REQUIRED", "Operation `from` property is not present "
                      "(applicable in `move` and `copy` operations)", index, operation, pointer)
    if operation["op"] in ("add", "replace", "test") and "value" not in operation:
        return _issue("OPERATION_VALUE_REQUIRED", "Operation `value` property is not present "
                      "(applicable in `add`, `replace` and `test` operations)", index,
                      operation, pointer)
    return None


def apply_patch(document: dict[str, Any], operations: Any) -> Any:
    """A patched copy of ``document``; ``document`` itself is never changed.

    Raises:
        PatchFailed: the body is not a list of valid operations, a path does not resolve,
            or a ``test`` operation failed. Nothing was applied.
    """
    if not isinstance(operations, list):
        raise PatchFailed([_issue("SEQUENCE_NOT_AN_ARRAY", "Patch sequence must be an array",
                                  0, None, None)])
    for index, operation in enumerate(operations):
        problem = _check_shape(index, operation)
        if problem is not None:
            raise PatchFailed([problem])
    # A JSON round trip is a deep copy that also guarantees plain JSON types.
    patched: Any = orjson.loads(orjson.dumps(document))
    for index, operation in enumerate(operations):
        op = operation["op"]
        source = operation.get("from")
        if op in ("move", "copy") and jsonpointer.resolve_pointer(
                patched, source, _ABSENT) is _ABSENT:
            raise PatchFailed([_issue("OPERATION_FROM_UNRESOLVABLE", "Cannot perform the "
                                      "operation from a path that does not exist", index,
                                      operation, source)])
        try:
            patched = jsonpatch.JsonPatch([operation]).apply(patched, in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
            raise PatchFailed([_failure(index, operation, error)]) from None
    return patched


def _failure(index: int, operation: dict[str, Any], error: Exception) -> Issue:
    op, pointer = operation["op"], operation["path"]
    # Testing a path that does not exist is a failed test too, not a bad path.
    if isinstance(error, jsonpatch.JsonPatchTestFailed) or op == "test":
        return _issue("TEST_OPERATION_FAILED", "Test operation failed", index, operation,
                      pointer)
    if op == "add":
        return _issue("OPERATION_PATH_CANNOT_ADD", "Cannot perform an `add` operation at the "
                      "desired path", index, operation, pointer)
    return _issue("OPERATION_PATH_UNRESOLVABLE", "Cannot perform the operation at a path "
                  "that does not exist", index, operation, pointer)
