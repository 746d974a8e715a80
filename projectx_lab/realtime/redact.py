"""The real-time stack's loggers and text helpers; masking itself is the SDK's one redactor
(`projectx_lab.client.redaction`), attached here to every logger on the hub path.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from projectx_lab.client.redaction import REDACTOR, install, redact

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
)


def remember_secret(token: str) -> None:
    """Register a token handed to a hub so that any later log record or error text containing
    it is masked."""
    REDACTOR.remember(token)


def install_log_redaction() -> None:
    """Attach the redactor to every logger the real-time stack writes to (idempotent)."""
    install(*LOGGER_NAMES)


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
