"""One mechanism that keeps secrets out of log records and error texts, for the whole SDK.

Secrets reach text in ways we cannot fully control: httpcore's DEBUG traces and signalrcore
copy the `Authorization` header, websockets logs upgrade headers at DEBUG, URLs may carry
`access_token=`. `REDACTOR` masks every registered secret (API keys, session tokens, and the
last few retired ones) plus token-shaped patterns; it is attached as a filter to every logger
on those paths, and `redact()` applies it to any text. hpack's DEBUG records (Huffman-coded
header blocks that no text scan can clean) are dropped outright.
"""

from __future__ import annotations

import logging
import re
from collections import deque

REDACTED = "***"
_PATTERNS = (
    re.compile(r"(?i)(access_token=)[^&\s'\"]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"),
)
_RETIRED_KEPT = 32  # late log lines may still quote a token after it was rotated out
_MIN_SECRET = 8  # shorter strings are placeholders ("k" in a test), masking them mangles text
_HTTP_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "h11",
    "h2",
    "projectx_lab",
    "projectx_lab.client",
)
_HPACK_LOGGERS = ("hpack.hpack", "hpack.table")


class SecretRedactor(logging.Filter):
    """Masks registered secrets and token-shaped text in records (records stay, text changes).

    `add`/`discard` are reference-counted (clients sharing an API key); a discarded secret
    stays masked among the last `_RETIRED_KEPT` retired ones. `remember` registers one with no
    owner to discard it (a token handed to a hub), kept the same bounded way. Strings shorter
    than `_MIN_SECRET` are not treated as secrets: no real key or token is that short.
    """

    def __init__(self) -> None:
        super().__init__("projectx-secrets")
        self._active: dict[str, int] = {}  # secret -> reference count
        self._retired: deque[str] = deque(maxlen=_RETIRED_KEPT)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= _MIN_SECRET:
            self._active[secret] = self._active.get(secret, 0) + 1

    def discard(self, secret: str | None) -> None:
        if not secret or secret not in self._active:
            return
        if self._active[secret] > 1:
            self._active[secret] -= 1
        else:
            del self._active[secret]
            self.remember(secret)

    def remember(self, secret: str | None) -> None:
        if (
            secret
            and len(secret) >= _MIN_SECRET
            and secret not in self._active
            and secret not in self._retired
        ):
            self._retired.append(secret)

    def redact(self, text: str) -> str:
        """`text` with registered secrets, `access_token=` values and bearer credentials
        masked."""
        for secret in (*self._active, *self._retired):
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(r"\1" + REDACTED, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        return True


class _DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


REDACTOR = SecretRedactor()
redact = REDACTOR.redact
_DROP_DEBUG = _DropDebug()


def install(*logger_names: str) -> SecretRedactor:
    """Attach the redactor to the HTTP stack's loggers and to `logger_names` (idempotent);
    returns the shared redactor."""
    for name in (*_HTTP_LOGGERS, *logger_names):
        logger = logging.getLogger(name)
        if REDACTOR not in logger.filters:
            logger.addFilter(REDACTOR)
    for name in _HPACK_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP_DEBUG not in logger.filters:
            logger.addFilter(_DROP_DEBUG)
    return REDACTOR
