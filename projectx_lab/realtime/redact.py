"""Keeps bearer tokens out of logs and error texts produced by the real-time stack.

Tokens reach log records in three ways we cannot fully control (signalrcore copies headers into
invocations, websockets logs upgrade headers at DEBUG, URLs may carry `access_token=`), so every
logger on that path gets a filter that scrubs known tokens and token-shaped patterns.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_PATTERNS = (
    re.compile(r"(?i)(access_token=)[^&\s'\"]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"),
)
_MASK = "***"
_known: deque[str] = deque(maxlen=32)  # tokens this process handed to a hub, newest last

logger = logging.getLogger("projectx_lab.realtime")
ws_logger = logging.getLogger("projectx_lab.realtime.websockets")  # passed to websockets
# Logger filters only see records logged on that exact logger, so every source is listed.
LOGGER_NAMES = (
    logger.name,
    ws_logger.name,
    "SignalRCoreClient",
    "websocket",  # websocket-client, under signalrcore
    "websockets",
    "websockets.client",  # websockets' default loggers log upgrade headers at DEBUG
    "websockets.server",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
)


def remember_secret(token: str) -> None:
    """Register a token so that any later log record or error text containing it is masked."""
    if token and token not in _known:
        _known.append(token)


def redact(text: str) -> str:
    """`text` with known tokens, `access_token=` values and bearer credentials masked."""
    for token in _known:
        if token in text:
            text = text.replace(token, _MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1" + _MASK, text)
    return text


def excerpt(text: str | bytes, limit: int = 120) -> str:
    """A short, redacted preview of `text` (masked before it is cut, so no token half shows)."""
    head = text[: limit + 4096]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    clean = redact(head)
    return clean[:limit] + ("…" if len(clean) > limit or len(text) > len(head) else "")


def strip_token_from_url(url: str) -> tuple[str, str | None]:
    """Split an `access_token` query parameter off a hub URL: (clean URL, token or None)."""
    parts = urlsplit(url)
    if "access_token" not in parts.query.lower():
        return url, None
    token = None
    kept = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() == "access_token":
            token = value or None
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), token


class RedactingFilter(logging.Filter):
    """Logging filter that rewrites a record's message (and traceback text) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the redacting filter to every logger the real-time stack writes to (idempotent)."""
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
