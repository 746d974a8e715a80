"""Opt-in asyncio transport: websockets + httpx negotiate + orjson, no threads at all.

Frames are read as bytes (orjson parses them without a str decode) by one reader task and
handed to the sink inline, so there is no thread hand-off and no GIL contention. Meant for
high-rate feeds and replay; signalrcore stays the default.
"""

from __future__ import annotations

import asyncio
from time import perf_counter_ns
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from .hub_protocol import (
    HANDSHAKE_REQUEST,
    PING,
    MalformedHook,
    RecordParser,
    RecordSink,
    encode_invocation,
)
from .redact import logger, redact, ws_logger
from .transport import (
    HubUnauthorizedError,
    RealtimeConnectionError,
    Transport,
    TransportOptions,
    negotiate,
    ws_url,
)


class NativeTransport(Transport):
    """One websockets connection read by a single task; records reach the sink inline."""

    name = "native"

    def __init__(
        self,
        sink: RecordSink,
        options: TransportOptions,
        http: httpx.AsyncClient,
        on_malformed: MalformedHook,
    ) -> None:
        super().__init__(sink, options, http, on_malformed)
        self._parser = RecordParser(binary=True, on_malformed=on_malformed)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._last_frame_ns = perf_counter_ns()
        self._stopped = False

    def __repr__(self) -> str:
        return f"NativeTransport(connected={self._ws is not None and not self._stopped})"

    @property
    def last_frame_ns(self) -> int:
        return self._last_frame_ns

    async def connect(self, url: str, token: str) -> None:
        options = self._options
        try:
            async with asyncio.timeout(options.connect_timeout):
                if options.skip_negotiation:
                    target = ws_url(url)
                else:
                    target = await negotiate(self._http, url, token, options.connect_timeout)
                self._ws = await connect(
                    target,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    compression=None,
                    open_timeout=None,
                    ping_interval=None,
                    ping_timeout=None,
                    close_timeout=options.close_timeout,
                    max_size=options.max_message_bytes,
                    logger=ws_logger,
                )
                await self._ws.send(HANDSHAKE_REQUEST)
                records: list[Any] = []
                while not records:
                    records = self._parser.feed(await self._ws.recv(decode=False))
        except TimeoutError:
            await self.stop()
            raise RealtimeConnectionError(
                f"hub connection timed out after {options.connect_timeout:g}s"
            ) from None
        except InvalidStatus as exc:
            await self.stop()
            status = exc.response.status_code
            if status in (401, 403):
                raise HubUnauthorizedError(f"hub rejected the token (HTTP {status})") from None
            raise RealtimeConnectionError(f"hub refused the upgrade (HTTP {status})") from None
        except (OSError, WebSocketException) as exc:
            await self.stop()
            raise RealtimeConnectionError(
                redact(f"hub connection failed: {type(exc).__name__}: {exc}")
            ) from None
        except BaseException:
            await self.stop()
            raise
        reply = records.pop(0)
        error = reply.get("error") if isinstance(reply, dict) else "invalid handshake reply"
        if error:
            await self.stop()
            raise RealtimeConnectionError(redact(f"hub refused the handshake: {error}"))
        now = perf_counter_ns()
        self._last_frame_ns = now
        if records:
            self._sink(records, now)
        self._reader = self._loop.create_task(self._read(), name="projectx-rt-native-reader")

    async def _read(self) -> None:
        ws, parser, sink = self._ws, self._parser, self._sink
        assert ws is not None
        reason = "connection closed"
        try:
            while True:
                frame = await ws.recv(decode=False)
                now = perf_counter_ns()
                self._last_frame_ns = now
                records = parser.feed(frame)
                if records:
                    sink(records, now)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else "none"
            reason = f"connection closed (close code {code})"
        except Exception as exc:
            reason = f"receive failed: {type(exc).__name__}"
            logger.exception("native transport reader failed")
        finally:
            self.mark_lost(reason)

    async def invoke(self, invocation_id: str, target: str, arguments: list[Any]) -> None:
        await self._send(encode_invocation(invocation_id, target, arguments))

    async def ping(self) -> None:
        await self._send(PING)

    async def _send(self, text: str) -> None:
        ws = self._ws
        if ws is None or self._stopped or self.lost.done():
            raise RealtimeConnectionError("hub connection is not open")
        try:
            await ws.send(text)
        except (OSError, WebSocketException) as exc:
            reason = f"send failed: {type(exc).__name__}"
            self.mark_lost(reason)
            raise RealtimeConnectionError(reason) from None

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.mark_lost("stopped")
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait({reader})
        ws = self._ws
        if ws is None:
            return
        try:
            async with asyncio.timeout(self._options.close_timeout * 2 + 0.05):
                await ws.close()
        except (TimeoutError, OSError, WebSocketException):
            ws.transport.abort()
