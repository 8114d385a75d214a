"""Keep secrets out of every message, log line, report and journal.

Secrets are registered once (API keys when a portal is configured, presigned URLs when
they are received) and replaced by ``***`` wherever text leaves the process.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Query parameters whose values are credentials in the portals' APIs and in presigned URLs.
_SENSITIVE_PARAM = re.compile(
    r"(?i)([?&](?:apikey|api_key|key|token|access_token|signature|sig|x-amz-[a-z-]+|"
    r"x-goog-[a-z-]+|awsaccesskeyid|credential|policy|se|sp|sv|sr|skoid|sktid)=)[^&#\s\"']*"
)
# Authorization, and the X-...-API-Key headers portals take keys in.
_AUTH_HEADER = re.compile(r"(?i)((?:authorization|x-(?:[a-z0-9]+-)*api-key)[\"']?\s*[:=]\s*[\"']?)"
                          r"(?:apikey\s+|bearer\s+|token\s+)?[^\s\"',}]+")

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Mask ``value`` in everything redacted from now on (short values are ignored)."""
    global _pattern
    if not value or len(value) < 6:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def redact(text: str) -> str:
    """Return ``text`` with registered secrets, credential parameters and auth headers masked."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _SENSITIVE_PARAM.sub(lambda m: m.group(1) + MASK, text)
    return _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)


def safe_url(url: str, *, keep_query: bool = True) -> str:
    """A URL fit for messages: no user info, and no query at all when ``keep_query`` is false."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = parts.query if keep_query else ""
    return redact(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
