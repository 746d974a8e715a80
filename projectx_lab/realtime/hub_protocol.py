"""SignalR JSON hub protocol v1 on orjson: record framing, encoding, and a signalrcore adapter.

Records end with `0x1E`; a frame may hold several records or only part of one, so the parser
keeps the unfinished tail between frames. A packed frame is parsed with a single orjson call.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

import orjson
from signalrcore.messages.handshake.request import HandshakeRequestMessage
from signalrcore.messages.handshake.response import HandshakeResponseMessage
from signalrcore.messages.invocation_message import InvocationMessage
from signalrcore.messages.ping_message import PingMessage
from signalrcore.protocol.base_hub_protocol import BaseHubProtocol
from signalrcore.types import HubProtocolEncoding

from .redact import excerpt

RS = "\x1e"
RS_BYTES = b"\x1e"
HANDSHAKE_REQUEST = '{"protocol":"json","version":1}\x1e'
PING = '{"type":6}\x1e'
MAX_PARTIAL_BYTES = 64 * 1024 * 1024  # an unterminated record larger than this is dropped

RecordSink = Callable[[list[Any], int], None]  # (records, frame arrival perf_counter_ns)
MalformedHook = Callable[[str, str], None]  # (reason, excerpt)


def encode_invocation(invocation_id: str, target: str, arguments: list[Any]) -> str:
    """One invocation record (no `headers` field: signalrcore would put the bearer token there)."""
    body = {"type": 1, "invocationId": invocation_id, "target": target, "arguments": arguments}
    return orjson.dumps(body).decode() + RS


class RecordParser:
    """Incremental parser for `0x1E`-terminated JSON records arriving in str or bytes frames."""

    __slots__ = ("_close", "_comma", "_empty", "_on_malformed", "_open", "_partial", "_sep")

    def __init__(self, *, binary: bool, on_malformed: MalformedHook) -> None:
        self._sep: Any = RS_BYTES if binary else RS
        self._empty: Any = b"" if binary else ""
        self._open: Any = b"[" if binary else "["
        self._close: Any = b"]" if binary else "]"
        self._comma: Any = b"," if binary else ","
        self._partial: Any = self._empty
        self._on_malformed = on_malformed

    def feed(self, chunk: Any) -> list[Any]:
        """Records completed by `chunk`, in order; malformed ones are reported and skipped."""
        sep = self._sep
        if self._partial:
            chunk = self._partial + chunk
            self._partial = self._empty
        if not chunk.endswith(sep):
            cut = chunk.rfind(sep)
            if cut < 0:
                self._hold(chunk)
                return []
            self._hold(chunk[cut + 1 :])
            chunk = chunk[: cut + 1]
        try:
            if chunk.count(sep) == 1:
                return [orjson.loads(chunk[:-1])]
            return orjson.loads(self._open + chunk[:-1].replace(sep, self._comma) + self._close)
        except orjson.JSONDecodeError:
            return self._one_by_one(chunk)

    def _hold(self, tail: Any) -> None:
        if len(tail) > MAX_PARTIAL_BYTES:
            self._on_malformed("unterminated record too large", excerpt(tail))
            tail = self._empty
        self._partial = tail

    def _one_by_one(self, chunk: Any) -> list[Any]:
        records = []
        for part in chunk.split(self._sep):
            if not part:
                continue
            try:
                records.append(orjson.loads(part))
            except orjson.JSONDecodeError:
                self._on_malformed("invalid JSON record", excerpt(part))
        return records


class OrjsonHubProtocol(BaseHubProtocol):
    """signalrcore hub protocol that parses with orjson and hands records straight to a sink.

    Plugged in through `HubConnectionBuilder.with_hub_protocol()`. Every record goes to
    `on_records` on signalrcore's receive thread; nothing is returned to signalrcore's own
    dispatch (we route invocations and completions ourselves). The first record of a
    connection is the handshake reply and goes to `on_handshake(error_or_None)`.
    """

    def __init__(
        self,
        on_records: RecordSink,
        on_handshake: Callable[[str | None], None],
        on_malformed: MalformedHook,
    ) -> None:
        super().__init__("json", 1, HubProtocolEncoding.text, RS)
        self._parser = RecordParser(binary=False, on_malformed=on_malformed)
        self._on_records = on_records
        self._on_handshake = on_handshake
        self._handshake_pending = True
        self.last_frame_ns = perf_counter_ns()

    def decode_handshake(self, raw_message: str) -> tuple[HandshakeResponseMessage, list[Any]]:
        """signalrcore's first-frame hook: parse it like any frame; our handshake hook judges it."""
        self.parse_messages(raw_message)
        return HandshakeResponseMessage(None), []

    def parse_messages(self, raw: str) -> list[Any]:
        """Parse one frame and deliver its records; always returns [] to signalrcore."""
        now = perf_counter_ns()
        self.last_frame_ns = now
        records = self._parser.feed(raw)
        if records:
            if self._handshake_pending:
                self._handshake_pending = False
                reply = records.pop(0)
                error = reply.get("error") if isinstance(reply, dict) else "invalid handshake reply"
                self._on_handshake(str(error) if error else None)
                if not records:
                    return []
            self._on_records(records, now)
        return []

    def encode(self, message: object) -> str:
        """Wire text for the messages we send: handshake, ping, invocation."""
        if isinstance(message, InvocationMessage):
            return encode_invocation(message.invocation_id, message.target, message.arguments)
        if isinstance(message, PingMessage):
            return PING
        if isinstance(message, HandshakeRequestMessage):
            return HANDSHAKE_REQUEST
        raise TypeError(f"cannot encode {type(message).__name__}")

    def write_message(self, hub_message: object) -> str:
        return self.encode(hub_message)
