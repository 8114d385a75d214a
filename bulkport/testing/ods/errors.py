"""Error replies of the Opendatasoft simulator: ``{"error_code", "message", "detail"?}``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from bulkport.testing.core.responses import json_response


class OdsError(Exception):
    """An error reply: ``{"error_code", "message", "detail"?}``."""

    def __init__(self, status: int, code: str, message: str,
                 detail: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error_code": code, "message": message}
        if detail is not None:
            self.body["detail"] = detail
        self.headers = headers
        self.close = close  # the body was not read to its end: the connection cannot go on


def not_found() -> OdsError:
    return OdsError(404, "not_found", "Not found.")


def invalid(detail: dict[str, Any], *, close: bool = False) -> OdsError:
    return OdsError(400, "validation_error", "Invalid input", detail, close=close)


def invalid_status(message: str) -> OdsError:
    return OdsError(400, "invalid_dataset_status", message)


def ods_error_body(status: int, message: str) -> dict[str, Any]:
    """An error body for injected faults."""
    if status == 429:
        return {"error_code": "throttled", "message": "Request was throttled."}
    if status == 503:
        return {"error_code": "service_unavailable", "message": message}
    return {"error_code": "internal_error", "message": "A server error occurred."}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`OdsError` and aiohttp's own 4xx replies (404, 405, 413...) into ODS
    error bodies: a client error is JSON, never aiohttp's plain text."""
    try:
        return await handler(request)
    except OdsError as error:
        response = json_response(error.body, error.status, headers=error.headers)
        if error.close:
            response.force_close()
        return response
    except web.HTTPMethodNotAllowed:
        return json_response({"error_code": "method_not_allowed",
                              "message": f'Method "{request.method}" not allowed.'}, 405)
    except web.HTTPNotFound:
        return json_response(not_found().body, 404)
    except web.HTTPRequestEntityTooLarge as error:
        return json_response({"error_code": "request_entity_too_large",
                              "message": error.text or "Request body too large."}, 413)
    except web.HTTPClientError as error:
        return json_response({"error_code": "bad_request",
                              "message": error.reason or "Bad request."}, error.status)
