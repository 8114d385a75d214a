"""Error replies of the DataPress simulator.

DataPress is a Nuxt application: an error reply is ``{url, statusCode, statusMessage,
message, data?}`` with ``statusMessage`` as the HTTP reason phrase too, and a 400 from
validation carries Zod issues in ``data``, each with its ``path``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from bulkport.testing.datapress.schema import Issue, summary

VALIDATION = "There are validation errors."


class DataPressError(Exception):
    """An error reply; ``data`` holds the issues of a 400."""

    def __init__(self, status: int, status_message: str, message: str | None = None,
                 data: list[Issue] | None = None) -> None:
        super().__init__(message or status_message)
        self.status = status
        self.status_message = status_message
        self.message = message or status_message
        self.data = data

    def body(self, url: str) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url, "statusCode": self.status,
                                "statusMessage": self.status_message, "message": self.message}
        if self.data is not None:
            body["data"] = self.data
        return body


def not_found(message: str) -> DataPressError:
    return DataPressError(404, "Not Found", message)


def forbidden(message: str) -> DataPressError:
    return DataPressError(403, "Forbidden", message)


def bad_request(message: str) -> DataPressError:
    return DataPressError(400, "Bad Request", message)


def invalid(issues: list[Issue], title: str = VALIDATION) -> DataPressError:
    """A 400 listing ``issues`` as the docs show (``* title: This field is required``)."""
    return DataPressError(400, title, summary(title, issues), issues)


def datapress_error_body(status: int, message: str) -> dict[str, Any]:
    """An error body for injected faults."""
    return {"statusCode": status, "statusMessage": message, "message": message}


def _reply(error: DataPressError, request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(error.body(request.path_qs)), status=error.status,
                        reason=error.status_message, content_type="application/json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn :class:`DataPressError` and aiohttp's 404/405 into DataPress error bodies."""
    try:
        return await handler(request)
    except DataPressError as error:
        return _reply(error, request)
    except web.HTTPMethodNotAllowed:
        return _reply(DataPressError(405, "Method Not Allowed"), request)
    except web.HTTPNotFound:
        message = f"Page not found: {request.path}"
        return _reply(DataPressError(404, "Not Found", message), request)
