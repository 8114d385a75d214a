"""CKAN's action errors, each with the HTTP status and body ``ckan/views/api.py`` gives it."""

from __future__ import annotations

from typing import Any


class ActionError(Exception):
    """An error reply of the Action API: ``{"success": false, "error": {...}}``."""

    status = 500
    kind = "Internal Server Error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def error(self) -> dict[str, Any]:
        return {"__type": self.kind, "message": self.message or "Internal Server Error"}


class NotFound(ActionError):
    status = 404
    kind = "Not Found Error"

    def error(self) -> dict[str, Any]:
        text = "Not found"
        return {"__type": self.kind, "message": f"{text}: {self.message}" if self.message
                else text}


class NotAuthorized(ActionError):
    status = 403
    kind = "Authorization Error"

    def error(self) -> dict[str, Any]:
        text = "Access denied"
        return {"__type": self.kind, "message": f"{text}: {self.message}" if self.message
                else text}


class ValidationError(ActionError):
    """409 with the field errors at the top of ``error`` (CKAN adds no ``message``)."""

    status = 409
    kind = "Validation Error"

    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.errors = errors

    def error(self) -> dict[str, Any]:
        return {**self.errors, "__type": self.kind}


class DataError(ActionError):
    """The data does not fit the schema's shape (a list where dicts were expected...)."""

    status = 400
    kind = "Integrity Error"

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data

    def error(self) -> dict[str, Any]:
        return {"__type": self.kind, "message": self.message, "data": self.data}


class SearchQueryError(ActionError):
    status = 400
    kind = "Search Query Error"

    def error(self) -> dict[str, Any]:
        return {"__type": self.kind,
                "message": f"Search Query is invalid: {(self.message,)!r}"}


class SearchError(ActionError):
    status = 409
    kind = "Search Error"

    def error(self) -> dict[str, Any]:
        return {"__type": self.kind, "message": f"Search error: {(self.message,)!r}"}


class BadRequest(Exception):
    """CKAN's ``_finish_bad_request``: status 400 and a bare JSON string as the body."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.body = f"Bad request - {detail}"


_FAULT_TYPES = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}


def ckan_error_body(status: int, message: str) -> dict[str, Any]:
    """An Action API error body, for injected faults."""
    return {"success": False, "error": {"__type": _FAULT_TYPES.get(status, "Error"),
                                        "message": message}}
