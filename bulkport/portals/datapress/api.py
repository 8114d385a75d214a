"""DataPress API: the key bound to the site, ``whoami``, and DataPress's error replies."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from bulkport.errors import AuthError, ConfigError, NotFound
from bulkport.http import ErrorReply, HttpClient, Response, error_body

DEFAULT_PREFIX = "/api/v3"


def dataset_page(site: str, dataset_id: str) -> str:
    """The public page of a dataset: ``{site}/dataset/{id}``, the ``webpage`` export.json
    gives each dataset. (The site also serves ``/dataset/{id}/{slug}``, a slug made from
    the title; the short form stays the same when the title changes.)"""
    return f"{site.rstrip('/')}/dataset/{quote(dataset_id, safe='')}"


def parse_error(response: Response) -> ErrorReply:
    """DataPress's ``{url, statusCode, statusMessage, message, data?: [{path, message}]}``.

    Returns:
        One line of text, and the field messages keyed by dotted path (``title``,
        ``resources.b3k.format``).
    """
    body = error_body(response)
    if isinstance(body, ErrorReply):
        return body
    fields: dict[str, str] = {}
    issues = body.get("data")
    for issue in issues if isinstance(issues, list) else []:
        if isinstance(issue, dict):
            path = ".".join(str(p) for p in issue.get("path") or []) or "(dataset)"
            text = str(issue.get("message") or issue.get("code") or "invalid")
            fields[path] = f"{fields[path]}; {text}" if path in fields else text
    title = str(body.get("statusMessage") or "").strip()
    detail = str(body.get("message") or "").strip().splitlines()
    message = title or (detail[0] if detail else f"HTTP {response.status}")
    if fields:
        message = f"{message}: " + "; ".join(f"{k}: {v}" for k, v in fields.items())
    elif detail and detail[0] != title:
        message = f"{message}: {detail[0]}" if title else detail[0]
    return ErrorReply(message, fields, title or None)


async def whoami(client: HttpClient, api: str, role: str) -> Any:
    """The key's user (``null`` for a key the site does not know).

    Raises:
        ConfigError: there is no ``whoami`` at this prefix (not DataPress, or wrong prefix).
    """
    try:
        response = await client.request("GET", f"{api}/whoami", errors=parse_error)
    except NotFound:
        raise ConfigError(f"{api}/whoami does not exist: is this a DataPress site, and is "
                          f"[{role}] prefix right ('/api/v3' or '/api')?") from None
    return response.json()


def refused_key(where: str, role: str) -> AuthError:
    """The one-line error of a key DataPress does not know (``whoami`` answers null): the
    site would serve the run as an anonymous visitor, without any private dataset."""
    consequence = ("list only the public datasets" if role == "source"
                   else "refuse every write")
    return AuthError(f"[{role}] api_key: {where}: the API key was refused (whoami answered "
                     f"null), and the site would {consequence}: check the key, or make a "
                     "new one on the site")


