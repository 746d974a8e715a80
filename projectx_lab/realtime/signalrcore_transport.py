"""Default transport: signalrcore 1.0.2 with our orjson protocol and a batched loop hand-off.

Designed around signalrcore's measured failure modes (docs/../signalr-notes.md):
* its automatic reconnect is left off (it can hang in "reconnecting", loses subscriptions and
  races a rebuilt connection); the supervisor rebuilds instead and sends keep-alive pings
  itself, so signalrcore runs one thread per connection (its receive thread) and nothing else;
* negotiation runs on httpx with a timeout (signalrcore's urllib call has none), `start()` runs
  on a short-lived thread, and a hung connect is aborted by shutting its socket;
* `stop()` is never called: it blocks until the next frame. We shut the socket down, which
  wakes the receive thread at once, and wait for that thread without blocking the loop;
* records cross to the loop through a bounded hand-off: when the loop falls behind, the
  receive thread waits and the socket (then TCP) holds the backlog, as with the native transport;
* every send happens on the event loop thread (signalrcore's `send()` has no lock), and our
  encoder never writes the `headers` field signalrcore fills with the bearer token.
Touches signalrcore internals (`transport._client.sock`, `.recv_thread`): pinned to 1.0.2.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import threading
from typing import Any

import httpx
from signalrcore.hub.base_hub_connection import BaseHubConnection
from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.messages.invocation_message import InvocationMessage
from signalrcore.messages.ping_message import PingMessage

from .dispatch import ThreadHandoff
from .hub_protocol import MalformedHook, OrjsonHubProtocol, RecordSink
from .redact import logger, redact
from .transport import (
    HubUnauthorizedError,
    RealtimeConnectionError,
    Transport,
    TransportOptions,
    negotiate,
    ws_url,
)

_THREAD_WAIT = 1.0  # seconds stop() waits for signalrcore threads before giving up on them
_CLOSE_NORMAL = struct.pack(">H", 1000)


class SignalRCoreTransport(Transport):
    """One signalrcore connection; records cross to the loop through a `ThreadHandoff`."""

    name = "signalrcore"

    def __init__(
        self,
        sink: RecordSink,
        options: TransportOptions,
        http: httpx.AsyncClient,
        on_malformed: MalformedHook,
    ) -> None:
        super().__init__(sink, options, http, on_malformed)
        self._handoff = ThreadHandoff(self._loop, sink)
        self._handshake: asyncio.Future[str | None] = self._loop.create_future()
        self._protocol = OrjsonHubProtocol(self._handoff.push, self._on_handshake, on_malformed)
        self._connection: BaseHubConnection | None = None
        self._connect_thread: threading.Thread | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"SignalRCoreTransport(connected={self._is_open()}, stopped={self._stopped})"

    @property
    def last_frame_ns(self) -> int:
        return self._protocol.last_frame_ns

    async def connect(self, url: str, token: str) -> None:
        options = self._options
        deadline = self._loop.time() + options.connect_timeout
        if options.skip_negotiation:
            target = ws_url(url)
        else:
            target = await negotiate(self._http, url, token, options.connect_timeout)
        connection = (
            HubConnectionBuilder()
            .with_url(
                target,
                options={"skip_negotiation": True, "headers": {"Authorization": f"Bearer {token}"}},
            )
            .with_hub_protocol(self._protocol)
            .build()
        )
        connection.on_open(_noop)
        connection.on_close(lambda: self.mark_lost_threadsafe("connection closed"))
        connection.on_reconnect(lambda: self.mark_lost_threadsafe("signalrcore reconnected"))
        connection.on_error(_noop_arg)
        self._connection = connection
        started: asyncio.Future[None] = self._loop.create_future()
        thread = threading.Thread(
            target=self._start_blocking,
            args=(connection, started),
            name="projectx-rt-connect",
            daemon=True,
        )
        self._connect_thread = thread
        thread.start()
        try:
            async with asyncio.timeout(max(0.0, deadline - self._loop.time())):
                await started
                error = await self._handshake
        except TimeoutError:
            await self.stop()
            raise RealtimeConnectionError(
                f"hub connection timed out after {options.connect_timeout:g}s"
            ) from None
        except BaseException:
            await self.stop()
            raise
        if error is not None:
            await self.stop()
            raise RealtimeConnectionError(redact(f"hub refused the handshake: {error}"))

    def _start_blocking(self, connection: BaseHubConnection, started: asyncio.Future[None]) -> None:
        """Runs `connection.start()` (blocking socket connect + upgrade) off the loop."""
        error: BaseException | None = None
        try:
            connection.start()
            client = connection.transport._client
            client.sock = _BufferedSocket(client.sock)
        except BaseException as exc:
            error = exc
        try:
            self._loop.call_soon_threadsafe(_settle, started, error)
        except RuntimeError:
            pass

    def _on_handshake(self, error: str | None) -> None:
        try:
            self._loop.call_soon_threadsafe(_settle_value, self._handshake, error)
        except RuntimeError:
            pass

    def _is_open(self) -> bool:
        # Our own handshake flag, not signalrcore's state: that flips to "connected" on the
        # receive thread only after our handshake hook has already woken the loop.
        handshake = self._handshake
        return (
            handshake.done()
            and not handshake.cancelled()
            and handshake.result() is None
            and not self.lost.done()
            and getattr(self._connection, "transport", None) is not None
        )

    async def invoke(self, invocation_id: str, target: str, arguments: list[Any]) -> None:
        self._send(InvocationMessage(invocation_id, target, arguments))

    async def ping(self) -> None:
        self._send(PingMessage())

    def _send(self, message: object) -> None:
        if not self._is_open():
            raise RealtimeConnectionError("hub connection is not open")
        try:
            self._connection.transport.send(message)  # type: ignore[union-attr]
        except Exception as exc:
            reason = f"send failed: {type(exc).__name__}"
            self.mark_lost(reason)
            raise RealtimeConnectionError(reason) from None

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.mark_lost("stopped")
        self._handoff.close()
        started = self._loop.time()
        while True:
            transport = getattr(self._connection, "transport", None)
            client = getattr(transport, "_client", None)
            if transport is not None:
                transport.manually_closing = True  # no signalrcore reconnect, no error logs
            if client is not None:
                client.is_closing, client.running = True, False
            # SHUT_RD wakes the blocked recv without telling the server anything yet, so no
            # reset can race the thread's exit; both directions if that was not enough.
            waited = self._loop.time() - started
            _shutdown(client, socket.SHUT_RD if waited < 0.05 else socket.SHUT_RDWR)
            threads = [
                t
                for t in (self._connect_thread, getattr(client, "recv_thread", None))
                if t is not None and t.is_alive() and t is not threading.current_thread()
            ]
            if not threads:
                break
            if waited > _THREAD_WAIT:
                logger.warning("signalrcore threads still running after stop: %s", threads)
                break
            await asyncio.sleep(0.002)
        transport = getattr(self._connection, "transport", None)
        checker = getattr(transport, "connection_checker", None)
        if checker is not None:
            checker.running = False
        _close_socket(_raw_socket(getattr(transport, "_client", None)))


class _BufferedSocket:
    """Socket stand-in for signalrcore's receive loop: one `recv` syscall serves many frames.

    signalrcore reads every frame with two or more exact-size `recv` calls (header, then
    payload); under load that is its main per-frame cost. Everything else is delegated.
    Swapping it in while the receive thread runs is safe: it starts empty, so bytes are
    consumed in order whichever object the thread read them through.
    """

    __slots__ = ("_buffer", "_offset", "raw")

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self._buffer = b""
        self._offset = 0

    def recv(self, size: int) -> bytes:
        buffer, offset = self._buffer, self._offset
        if offset >= len(buffer):
            buffer = self.raw.recv(65_536)
            if not buffer:
                return buffer
            self._buffer, offset = buffer, 0
        chunk = buffer[offset : offset + size]
        self._offset = offset + len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _raw_socket(client: Any) -> socket.socket | None:
    sock = getattr(client, "sock", None)
    return sock.raw if isinstance(sock, _BufferedSocket) else sock


def _shutdown(client: Any, how: int) -> None:
    sock = _raw_socket(client)
    if sock is not None:
        try:
            sock.shutdown(how)
        except OSError:
            pass


def _close_socket(sock: socket.socket | None) -> None:
    """Send a WebSocket close frame (plain sockets; the receive thread is gone) and close."""
    if sock is None:
        return
    if not isinstance(sock, ssl.SSLSocket):
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i] for i, b in enumerate(_CLOSE_NORMAL))
        try:
            sock.sendall(bytes((0x88, 0x80 | len(_CLOSE_NORMAL))) + mask + payload)
        except OSError:
            pass
    sock.close()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
        return
    text = redact(f"{type(error).__name__}: {error}")
    if " 401 " in text or " 403 " in text:
        future.set_exception(HubUnauthorizedError("hub rejected the token on upgrade"))
    else:
        future.set_exception(RealtimeConnectionError(f"hub connection failed: {text[:300]}"))


def _settle_value(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


def _noop() -> None:
    return None


def _noop_arg(_: object) -> None:
    return None
