"""Per-hub connection supervision from asyncio: watchdog, rebuild, resubscribe, state events.

Nothing here trusts a transport to heal itself. When the connection closes, goes quiet (no
frame at all for `server_timeout`), the market stream freezes (no data for `stale_after` while
subscribed, even though pings still arrive), or an invocation goes unanswered, the supervisor
stops that transport, builds a fresh one with backoff + jitter and a token from the factory,
re-issues every subscription from the caller's registry, then emits "reconnected". When the
hub rejects the token and the factory has a `renew(rejected_token)` method (the `ProjectX`
token source does), it is asked for a new session before the next attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import inspect
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, NamedTuple

from .redact import excerpt, logger, redact, remember_secret
from .staleness import StaleWatch
from .transport import (
    HubInvocationError,
    HubUnauthorizedError,
    RealtimeConnectionError,
    RealtimeError,
    Transport,
    TransportOptions,
)

TokenProvider = Callable[[], "str | Awaitable[str]"]
TransportFactory = Callable[..., Transport]
Route = Callable[[Any], None]
_NS = 1_000_000_000


class ConnectionState(enum.StrEnum):
    """Hub connection states; the last four are also the events `state_event` carries."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    RECONNECTED = "reconnected"
    DISCONNECTED = "disconnected"


class Subscription(NamedTuple):
    """One server-side subscription: the method pair and its arguments."""

    subscribe: str
    unsubscribe: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SupervisorOptions:
    """Timing knobs of supervision (seconds)."""

    keepalive_interval: float = 10.0  # we ping the server this often
    server_timeout: float = 30.0  # no frame at all (pings included) for this long → rebuild
    stale_after: float | None = 30.0  # market hub: no data for this long while subscribed → rebuild
    invoke_timeout: float = 10.0  # an unanswered invocation means a broken connection
    reconnect_initial: float = 0.25  # first backoff step; doubles per failed attempt
    reconnect_max: float = 30.0
    transport: TransportOptions = field(default_factory=TransportOptions)

    def __post_init__(self) -> None:
        for name in ("keepalive_interval", "server_timeout", "invoke_timeout", "reconnect_initial"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.stale_after is not None and self.stale_after <= 0:
            raise ValueError(f"stale_after must be positive or None, got {self.stale_after!r}")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must be >= reconnect_initial")


class DispatchClock:
    """Arrival time (perf_counter_ns) of the frame whose records are being dispatched now."""

    __slots__ = ("frame_ns",)

    def __init__(self) -> None:
        self.frame_ns = 0


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: uniform in [d/2, d], d = min(max, initial·2^n)."""
    ceiling = min(maximum, initial * (2 ** min(attempt, 30)))
    return rng.uniform(ceiling / 2, ceiling)


class HubSupervisor:
    """Owns one hub's connection for the client's lifetime and keeps it alive."""

    def __init__(
        self,
        hub: str,
        url: str,
        *,
        transport_factory: TransportFactory,
        token_provider: TokenProvider,
        routes: dict[str, Route],
        desired: Callable[[], Iterable[Subscription]],
        on_state: Callable[[str, ConnectionState], None],
        options: SupervisorOptions,
        clock: DispatchClock,
        expects_data: Callable[[], bool] | None = None,
    ) -> None:
        self.hub = hub
        self.url = url
        self.state = ConnectionState.DISCONNECTED
        self.reconnects = 0
        self.malformed = 0
        self.last_data_ns = 0
        self.last_loss_reason: str | None = None
        self._factory = transport_factory
        self._token_provider = token_provider
        self._routes = routes
        self._desired = desired
        self._on_state = on_state
        self._options = options
        self._clock = clock
        self._expects_data = expects_data if options.stale_after is not None else None
        self._transport: Transport | None = None
        self._token_used: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Future[None] | None = None  # a lost transport being torn down
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._sync_lock = asyncio.Lock()
        self._up = asyncio.Event()  # set while CONNECTED
        self._warned: set[str] = set()
        self._rng = random.Random()
        self._stale = StaleWatch(options.stale_after) if options.stale_after is not None else None
        limits = [options.keepalive_interval, options.server_timeout]
        if options.stale_after is not None:
            limits.append(options.stale_after)
        self._tick = min(1.0, max(0.02, min(limits) / 4))

    def __repr__(self) -> str:
        return (
            f"HubSupervisor({self.hub!r}, state={self.state.value}, reconnects={self.reconnects})"
        )

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    async def start(self) -> None:
        """Open the first connection (raising if it fails), then supervise in the background."""
        if self._task is not None:
            raise RuntimeError(f"{self.hub} hub supervisor already started")
        self.state = ConnectionState.CONNECTING
        try:
            transport = await self._open()
        except BaseException:
            self.state = ConnectionState.DISCONNECTED
            raise
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(transport), name=f"projectx-rt-{self.hub}-supervisor"
        )
        self._set_state(ConnectionState.CONNECTED, ConnectionState.CONNECTED)

    async def close(self) -> None:
        """Stop supervising and close the connection; emits "disconnected" once."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})
        stopping, self._stopping = self._stopping, None
        if stopping is not None:  # the cancelled task was tearing a lost connection down
            await asyncio.wait({stopping})
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.stop()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RealtimeConnectionError("client closed"))
        self._pending.clear()
        if self.state is not ConnectionState.DISCONNECTED:
            self._set_state(ConnectionState.DISCONNECTED, ConnectionState.DISCONNECTED)

    async def sync(self, wait: bool = False) -> dict[Subscription, HubInvocationError]:
        """Align the live connection's subscriptions with the registry; errors per subscription.

        A no-op while not connected (the reconnect path re-issues the registry itself); with
        `wait`, a reconnect in progress is first waited for (up to `invoke_timeout`), so a new
        subscription learns whether the hub accepts it. Raises `RealtimeConnectionError` if
        the connection drops meanwhile.
        """
        if wait and self.state is ConnectionState.RECONNECTING:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._up.wait(), self._options.invoke_timeout)
        async with self._sync_lock:
            transport = self._transport
            if transport is None or self.state is not ConnectionState.CONNECTED:
                return {}
            return await self._reconcile(transport)

    # -- connection lifecycle -------------------------------------------------------------

    async def _open(self) -> Transport:
        token = await self._token()
        holder: list[Transport] = []
        transport = self._factory(functools.partial(self._on_records, holder), self._on_malformed)
        holder.append(transport)
        try:
            await transport.connect(self.url, token)
            self._transport = transport
            failures = await self._reconcile(transport)
        except BaseException:
            self._transport = None
            await transport.stop()
            raise
        for sub, error in failures.items():
            logger.warning("%s hub refused %s%s: %s", self.hub, sub.subscribe, [*sub.args], error)
        return transport

    async def _token(self) -> str:
        try:
            value = self._token_provider()
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            raise RealtimeConnectionError(
                redact(f"token factory failed: {type(exc).__name__}: {exc}")
            ) from None
        if not isinstance(value, str) or not value.strip():
            raise RealtimeConnectionError("token factory returned no token")
        remember_secret(value)
        self._token_used = value
        return value

    async def _renew_token(self) -> None:
        """Ask the token factory for a new session after the hub refused the current token."""
        renew = getattr(self._token_provider, "renew", None)
        if renew is None or self._token_used is None:
            return
        try:
            result = renew(self._token_used)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            logger.warning(
                "%s hub: renewing the rejected token failed: %s",
                self.hub,
                redact(f"{type(exc).__name__}: {exc}"),
            )

    async def _supervise(self, transport: Transport) -> None:
        while True:
            reason = await self._watch(transport)
            self.last_loss_reason = reason
            logger.warning("%s hub connection lost (%s); reconnecting", self.hub, reason)
            self._set_state(ConnectionState.RECONNECTING, ConnectionState.RECONNECTING)
            self._transport = None
            await self._stop_fully(transport)
            transport = await self._reopen()
            self.reconnects += 1
            self._set_state(ConnectionState.CONNECTED, ConnectionState.RECONNECTED)

    async def _stop_fully(self, transport: Transport) -> None:
        """Stop `transport` to the end even if this task is cancelled meanwhile (a `close()`
        during the teardown then waits for it): a half-run stop leaks its socket and threads."""
        stopping = asyncio.ensure_future(transport.stop())
        self._stopping = stopping
        await asyncio.shield(stopping)
        if self._stopping is stopping:
            self._stopping = None

    async def _reopen(self) -> Transport:
        attempt = 0
        while True:
            await asyncio.sleep(
                backoff_delay(
                    attempt,
                    self._options.reconnect_initial,
                    self._options.reconnect_max,
                    self._rng,
                )
            )
            try:
                return await self._open()
            except HubUnauthorizedError as exc:
                logger.warning("%s hub reconnect %d failed: %s", self.hub, attempt + 1, exc)
                await self._renew_token()
            except (RealtimeError, OSError) as exc:
                text = redact(str(exc))
                logger.warning("%s hub reconnect %d failed: %s", self.hub, attempt + 1, text)
            except Exception:
                logger.exception("%s hub reconnect %d failed", self.hub, attempt + 1)
            attempt += 1

    async def _watch(self, transport: Transport) -> str:
        """Wait until the connection is lost or judged dead; returns the reason."""
        options = self._options
        lost = transport.lost
        timeout_ns = int(options.server_timeout * _NS)
        ping_every_ns = int(options.keepalive_interval * _NS)
        next_ping = perf_counter_ns() + ping_every_ns
        stale = self._stale
        if stale is not None:
            stale.connected(perf_counter_ns())
        while True:
            await asyncio.wait({lost}, timeout=self._tick)
            if lost.done():
                return lost.result()
            now = perf_counter_ns()
            if now - transport.last_frame_ns > timeout_ns:
                return f"no frame from the server for {options.server_timeout:g}s"
            if stale is not None and self._expects_data is not None and self._expects_data():
                quiet = stale.check(now, self.last_data_ns)
                if quiet is not None:
                    return f"no market data for {quiet / _NS:.1f}s while subscribed (stale stream)"
            if now >= next_ping:
                next_ping = now + ping_every_ns
                try:
                    await transport.ping()
                except RealtimeConnectionError:
                    continue

    def _set_state(self, state: ConnectionState, event: ConnectionState) -> None:
        self.state = state
        if state is ConnectionState.CONNECTED:
            self._up.set()
        else:
            self._up.clear()
        self._on_state(self.hub, event)

    # -- invocations and subscriptions ----------------------------------------------------

    async def _invoke(self, transport: Transport, target: str, args: list[Any]) -> Any:
        if transport.lost.done():
            reason = transport.lost.result()
            raise RealtimeConnectionError(f"{self.hub} hub connection lost: {reason}")
        self._next_id += 1
        invocation_id = str(self._next_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[invocation_id] = future
        try:
            await transport.invoke(invocation_id, target, args)
            await asyncio.wait(
                {future, transport.lost},
                timeout=self._options.invoke_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if future.done():
                return future.result()
            if transport.lost.done():
                raise RealtimeConnectionError(
                    f"{self.hub} hub connection lost during {target}: {transport.lost.result()}"
                )
            reason = f"{target} not answered within {self._options.invoke_timeout:g}s"
            transport.mark_lost(reason)
            raise RealtimeConnectionError(reason)
        finally:
            self._pending.pop(invocation_id, None)

    async def _reconcile(self, transport: Transport) -> dict[Subscription, HubInvocationError]:
        """Subscribe what the registry wants and the server lacks, unsubscribe the rest; repeat
        until stable so registry changes made while awaiting are not missed."""
        failures: dict[Subscription, HubInvocationError] = {}
        held = transport.subscriptions
        while True:
            desired = set(self._desired())
            add = [s for s in desired if s not in held and s not in failures]
            drop = [s for s in held if s not in desired]
            if not add and not drop:
                return failures
            results = await asyncio.gather(
                *(self._invoke(transport, s.subscribe, list(s.args)) for s in add),
                *(self._invoke(transport, s.unsubscribe, list(s.args)) for s in drop),
                return_exceptions=True,
            )
            lost: BaseException | None = None
            for sub, result in zip(add, results[: len(add)], strict=True):
                if isinstance(result, HubInvocationError):
                    failures[sub] = result
                elif isinstance(result, BaseException):
                    lost = lost or result
                else:
                    held.add(sub)
            for sub, result in zip(drop, results[len(add) :], strict=True):
                held.discard(sub)
                if isinstance(result, BaseException) and not isinstance(result, HubInvocationError):
                    lost = lost or result
            if lost is not None:
                raise lost
            if add:
                self.last_data_ns = max(self.last_data_ns, perf_counter_ns())

    # -- inbound records (event loop) -----------------------------------------------------

    def _on_records(self, holder: list[Transport], records: list[Any], arrival_ns: int) -> None:
        self._clock.frame_ns = arrival_ns
        routes = self._routes
        data = False
        # A connection already judged lost may still drain frames (signalrcore's thread): its
        # events must not land on state that is being re-snapshotted for the next connection.
        dead = bool(holder) and holder[0].lost.done()
        for record in records:
            try:
                kind = record["type"]
            except (TypeError, KeyError, IndexError):
                self._on_malformed("record without a message type", excerpt(repr(record)))
                continue
            if kind == 1:
                if dead:
                    continue
                data = True
                target = record.get("target")
                if not isinstance(target, str):
                    self._on_malformed("invocation without a string target", excerpt(repr(record)))
                    continue
                route = routes.get(target)
                if route is None:
                    self._warn_once(f"target:{target}", f"{self.hub} hub: ignored event {target!r}")
                    continue
                try:
                    route(record.get("arguments"))
                except Exception:
                    logger.exception("%s hub: routing %s failed", self.hub, target)
            elif kind == 3:
                self._complete(record)
            elif kind == 7:
                error = record.get("error")
                reason = f"server closed the connection: {error}" if error else "server closed"
                if holder:
                    holder[0].mark_lost(redact(reason))
        if data:
            self.last_data_ns = arrival_ns

    def _complete(self, record: dict[str, Any]) -> None:
        future = self._pending.pop(str(record.get("invocationId")), None)
        if future is None or future.done():
            return
        error = record.get("error")
        if error:
            future.set_exception(HubInvocationError(redact(str(error))))
        else:
            future.set_result(record.get("result"))

    def _on_malformed(self, reason: str, preview: str) -> None:
        """Count a malformed record; log the first of each kind (may run on a transport thread)."""
        self.malformed += 1
        self._warn_once(
            f"malformed:{reason}",
            f"{self.hub} hub: skipped a malformed record ({reason}): {preview}",
        )

    def _warn_once(self, key: str, message: str) -> None:
        if key in self._warned:
            logger.debug("%s", message)
            return
        self._warned.add(key)
        logger.warning("%s (logged once)", message)
