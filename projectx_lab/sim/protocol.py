"""SignalR JSON hub protocol v1: 0x1E record framing, handshake, message types, orjson encoders."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

import orjson

RECORD_SEPARATOR = "\x1e"
RS = b"\x1e"
SUPPORTED_VERSIONS = frozenset({0, 1, 2})
MAX_RECORD_CHARS = 1 << 20  # an unterminated record longer than this is a protocol error


class MessageType(IntEnum):
    """Hub message `type` values of the SignalR hub protocol."""

    INVOCATION = 1
    STREAM_ITEM = 2
    COMPLETION = 3
    STREAM_INVOCATION = 4
    CANCEL_INVOCATION = 5
    PING = 6
    CLOSE = 7
    ACK = 8
    SEQUENCE = 9


class ProtocolError(ValueError):
    """A record or handshake that breaks the SignalR JSON hub protocol."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """A client's handshake request (`{"protocol":"json","version":n}`)."""

    protocol: str
    version: int


@dataclass(frozen=True, slots=True)
class Invocation:
    """A type-1 invocation; `arguments` is raw JSON and still has to be bound by the hub."""

    target: str
    arguments: object
    invocation_id: str | None


PING = b'{"type":6}' + RS
HANDSHAKE_OK = b"{}" + RS
INVOCATION_END = b"]}" + RS


def _fallback(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def dumps(value: object) -> bytes:
    """JSON bytes (orjson; numpy scalars/arrays and Decimal allowed), no separator."""
    return orjson.dumps(value, default=_fallback, option=_OPTIONS)


class RecordReader:
    """Splits a text stream into 0x1E-terminated records across and within WebSocket frames.

    `feed` returns the complete records of a chunk (empty records are skipped) and keeps an
    unterminated tail for the next chunk.
    """

    __slots__ = ("_max", "_parts", "_size")

    def __init__(self, max_record_chars: int = MAX_RECORD_CHARS) -> None:
        self._parts: list[str] = []
        self._size = 0
        self._max = max_record_chars

    @property
    def pending(self) -> int:
        """Characters of an unterminated record waiting for more data."""
        return self._size

    def feed(self, chunk: str) -> list[str]:
        """Complete records ending in `chunk` (the unterminated tail is kept)."""
        if RECORD_SEPARATOR not in chunk:
            if chunk:
                self._keep(chunk)
            return []
        records = chunk.split(RECORD_SEPARATOR)
        tail = records.pop()
        if self._parts:
            self._parts.append(records[0])
            records[0] = "".join(self._parts)
            self._parts.clear()
            self._size = 0
        if tail:
            self._keep(tail)
        return [record for record in records if record]

    def _keep(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        if self._size > self._max:
            self._parts.clear()
            self._size = 0
            raise ProtocolError(f"record exceeds {self._max} characters without a separator")


def _loads_object(record: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(record)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"{what} is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    return value


def parse_handshake(record: str) -> Handshake:
    """Validate a handshake request; the error text is fit for the `{"error":...}` reply."""
    value = _loads_object(record, "handshake request")
    protocol = value.get("protocol")
    version = value.get("version")
    if not isinstance(protocol, str):
        raise ProtocolError("handshake request is missing the string property 'protocol'")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ProtocolError("handshake request is missing the integer property 'version'")
    if protocol != "json":
        raise ProtocolError(f"The protocol '{protocol}' is not supported.")
    if version not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            f"The server does not support version {version} of the 'json' protocol."
        )
    return Handshake(protocol, version)


def handshake_response(error: str | None = None) -> bytes:
    """`{}` on success, `{"error": ...}` otherwise, with the record separator."""
    return HANDSHAKE_OK if error is None else dumps({"error": error}) + RS


def decode_message(record: str) -> dict[str, Any]:
    """Parse one hub message record; it must be an object with an integer `type`."""
    message = _loads_object(record, "hub message")
    kind = message.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise ProtocolError("hub message is missing the integer property 'type'")
    return message


def parse_invocation(message: dict[str, Any]) -> Invocation:
    """Read target, arguments (default `[]`) and optional invocation id of a type-1 message."""
    target = message.get("target")
    if not isinstance(target, str) or not target:
        raise ProtocolError("invocation is missing the string property 'target'")
    invocation_id = message.get("invocationId")
    if invocation_id is not None and not isinstance(invocation_id, str):
        raise ProtocolError("invocation property 'invocationId' must be a string")
    return Invocation(target, message.get("arguments", []), invocation_id)


def invocation_prefix(target: str, *leading: object) -> bytes:
    """Bytes of an invocation record up to its last argument; finish with `INVOCATION_END`.

    Lets a hub serialise only the varying last argument per event.
    """
    head = b'{"type":1,"target":' + dumps(target) + b',"arguments":['
    return head + b"".join(dumps(arg) + b"," for arg in leading)


def encode_invocation(target: str, arguments: list[object]) -> bytes:
    """A complete non-blocking invocation record (server → client event)."""
    return dumps({"type": 1, "target": target, "arguments": arguments}) + RS


def encode_completion(invocation_id: str, error: str | None = None) -> bytes:
    """Completion for `invocation_id`: `result: null` on success, else `error`."""
    if error is None:
        return dumps({"type": 3, "invocationId": invocation_id, "result": None}) + RS
    return dumps({"type": 3, "invocationId": invocation_id, "error": error}) + RS


def encode_close(error: str | None = None, allow_reconnect: bool = False) -> bytes:
    """Close message (type 7); `error` and `allowReconnect` only when set."""
    message: dict[str, object] = {"type": 7}
    if error is not None:
        message["error"] = error
    if allow_reconnect:
        message["allowReconnect"] = True
    return dumps(message) + RS
