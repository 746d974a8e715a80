"""Keeps secrets out of log records: a filter on our and the HTTP stack's loggers.

httpcore's DEBUG traces and hpack's header-table dumps can carry the `Authorization` header.
Records on those loggers have every registered secret (API keys, session tokens) replaced by
`***`; hpack's DEBUG records (Huffman-coded header blocks that no text scan can clean) are
dropped outright.
"""

from __future__ import annotations

import logging

REDACTED = "***"
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
    """Replaces registered secrets in a record's rendered message (records stay, text changes)."""

    def __init__(self) -> None:
        super().__init__("projectx-secrets")
        self._secrets: dict[str, int] = {}  # secret -> reference count

    def add(self, secret: str | None) -> None:
        if secret:
            self._secrets[secret] = self._secrets.get(secret, 0) + 1

    def discard(self, secret: str | None) -> None:
        count = self._secrets.get(secret or "", 0)
        if count > 1:
            self._secrets[secret] = count - 1  # type: ignore[index]
        elif count == 1:
            del self._secrets[secret]  # type: ignore[arg-type]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        clean = text
        for secret in self._secrets:
            if secret in clean:
                clean = clean.replace(secret, REDACTED)
        if clean is not text:
            record.msg, record.args = clean, None
        return True


class _DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


REDACTOR = SecretRedactor()
_installed = False


def install() -> SecretRedactor:
    """Attach the filters once per process; returns the shared redactor."""
    global _installed
    if not _installed:
        for name in _HTTP_LOGGERS:
            logging.getLogger(name).addFilter(REDACTOR)
        drop = _DropDebug()
        for name in _HPACK_LOGGERS:
            logging.getLogger(name).addFilter(drop)
        _installed = True
    return REDACTOR
