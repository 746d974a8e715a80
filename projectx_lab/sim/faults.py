"""Fault controls for tests: REST latency, failed and swallowed responses, token expiry, and
hub faults (dropped connections, refused reconnects, frozen market streams, raw frames)
delegated to the hubs, and trading halts (a market out of session) shared by hubs and broker.

Every control may be called from any thread: calls from outside the simulator's event loop are
marshalled into it (and wait for completion), so rule state is only ever touched by that loop.

`swallow_next` semantics: the server does the work (state changes, events go out) but holds the
HTTP response until the client gives up and disconnects — an httpx client with a timeout raises
`httpx.ReadTimeout`. On simulator shutdown a held request is answered with 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .rest import canonical_path

if TYPE_CHECKING:
    from .auth import TokenStore

HUBS = ("user", "market", "all")


class HubFaultHooks(Protocol):
    """What the hubs expose for fault injection (`hubs.Hubs` implements it)."""

    def drop(self, hub: str = "all", mode: str = "clean") -> int: ...
    def freeze(self, contract_id: str | None = None, frozen: bool = True) -> None: ...
    def block(self, hub: str = "all", blocked: bool = True) -> None: ...
    def inject_raw(self, hub: str, text: str) -> int: ...


class HaltHook(Protocol):
    """What the broker exposes for trading halts (`matching.Broker` implements it)."""

    def halt(self, contract_id: str | None, halted: bool) -> None: ...


class Faults:
    """Injectable failures of a running simulator (reachable as `sim.faults`)."""

    def __init__(
        self,
        tokens: TokenStore,
        hubs: HubFaultHooks,
        call: Callable[..., Any],
        broker: HaltHook,
    ) -> None:
        self._tokens = tokens
        self._hubs = hubs
        self._broker = broker
        self._call = call  # runs a function inside the simulator loop, waits for its result
        self._latency: dict[str | None, float] = {}
        self._failures: dict[str, list[list[int]]] = {}  # path -> [[remaining, status], ...]
        self._swallow: dict[str, int] = {}
        self._closing = asyncio.Event()
        self.closing = False

    def __repr__(self) -> str:
        failing = sum(len(rules) for rules in self._failures.values())
        swallowing = sum(self._swallow.values())
        return f"Faults(latency={len(self._latency)}, fail={failing}, swallow={swallowing})"

    # ------------------------------------------------------------------ public controls

    def add_latency(self, seconds: float, path: str | None = None) -> None:
        """Delay every REST request on `path` (None = all paths) by `seconds`; 0 removes."""
        if not seconds >= 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds!r}")
        key = canonical_path(path) if path is not None else None
        self._call(self._set_latency, key, float(seconds))

    def fail_next(self, path: str, count: int = 1, status: int = 503) -> None:
        """Answer the next `count` requests on `path` with HTTP `status` without doing the work.

        429 carries `Retry-After: 1`; other statuses a short plain-text body.
        """
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        self._call(self._add_failure, canonical_path(path), int(count), int(status))

    def swallow_next(self, path: str, count: int = 1) -> None:
        """Do the work of the next `count` requests on `path` but never answer them."""
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count!r}")
        self._call(self._add_swallow, canonical_path(path), int(count))

    def expire_all_tokens(self) -> int:
        """Expire every token issued so far (REST answers 401, validate code 3)."""
        return self._call(self._tokens.expire_all)

    def drop_hub(self, hub: str = "all", mode: str = "clean") -> int:
        """Drop every connection of `hub` ("user" | "market" | "all"); returns how many.

        mode "clean": SignalR close message (with an error, reconnect allowed), then WebSocket
        close; "abort": the TCP connection is killed without any close frame.
        """
        _check_hub(hub)
        if mode not in ("clean", "abort"):
            raise ValueError(f"mode must be 'clean' or 'abort', got {mode!r}")
        return self._call(self._hubs.drop, hub, mode)

    def freeze_market(self, contract_id: str | None = None) -> None:
        """Stop market events for `contract_id` (None = all) while sockets and pings stay up."""
        self._call(self._hubs.freeze, contract_id, True)

    def unfreeze_market(self, contract_id: str | None = None) -> None:
        """Resume market events frozen by `freeze_market` (None = all)."""
        self._call(self._hubs.freeze, contract_id, False)

    def halt_market(self, contract_id: str | None = None) -> None:
        """Take `contract_id` (None = all) out of session, as outside trading hours: its market
        stream stops, `Order/place` answers OutsideTradingHours (code 5), closes are rejected
        and resting orders do not fill, until `resume_market`. The simulated tape itself runs
        on unseen (REST bars keep forming), unlike a real halt."""
        self._call(self._halt, contract_id, True)

    def resume_market(self, contract_id: str | None = None) -> None:
        """End a `halt_market` (None = every halt); the tape resumes where the market is now."""
        self._call(self._halt, contract_id, False)

    def block_hub(self, hub: str = "all") -> None:
        """Refuse new connections to `hub` (negotiate and upgrade answer 503) until
        `unblock_hub`: with `drop_hub` it keeps a hub down for as long as a test needs."""
        _check_hub(hub)
        self._call(self._hubs.block, hub, True)

    def unblock_hub(self, hub: str = "all") -> None:
        """Accept connections to `hub` again."""
        _check_hub(hub)
        self._call(self._hubs.block, hub, False)

    def inject_raw(self, hub: str, text: str) -> int:
        """Send `text` verbatim, in a WebSocket text frame of its own, on every connection of
        `hub` ("user" | "market" | "all"); returns how many connections got it."""
        _check_hub(hub)
        if not isinstance(text, str):
            raise TypeError("inject_raw needs the frame as str")
        return self._call(self._hubs.inject_raw, hub, text)

    def clear(self) -> None:
        """Remove every REST fault rule, end every halt, unfreeze all market streams, unblock
        both hubs."""
        self._call(self._clear)

    # ------------------------------------------------------------------ REST-side hooks (loop only)

    def latency_for(self, path: str) -> float:
        if not self._latency:
            return 0.0
        return self._latency.get(None, 0.0) + self._latency.get(path, 0.0)

    def take_failure(self, path: str) -> int | None:
        rules = self._failures.get(path) if self._failures else None
        if not rules:
            return None
        rule = rules[0]
        rule[0] -= 1
        if rule[0] == 0:
            rules.pop(0)
            if not rules:
                del self._failures[path]
        return rule[1]

    def take_swallow(self, path: str) -> bool:
        left = self._swallow.get(path, 0) if self._swallow else 0
        if not left:
            return False
        if left == 1:
            del self._swallow[path]
        else:
            self._swallow[path] = left - 1
        return True

    async def hold(self, receive: Any) -> None:
        """Wait until the HTTP client disconnects or the simulator shuts down."""

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        waiters = {
            asyncio.ensure_future(until_disconnect()),
            asyncio.ensure_future(self._closing.wait()),
        }
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def close(self) -> None:
        """Release every held request (called by the simulator on shutdown, in its loop)."""
        self.closing = True
        self._closing.set()

    # ------------------------------------------------------------------ internals

    def _set_latency(self, key: str | None, seconds: float) -> None:
        if seconds:
            self._latency[key] = seconds
        else:
            self._latency.pop(key, None)

    def _halt(self, contract_id: str | None, halted: bool) -> None:
        self._broker.halt(contract_id, halted)
        self._hubs.freeze(contract_id, halted)

    def _add_failure(self, path: str, count: int, status: int) -> None:
        self._failures.setdefault(path, []).append([count, status])

    def _add_swallow(self, path: str, count: int) -> None:
        self._swallow[path] = self._swallow.get(path, 0) + count

    def _clear(self) -> None:
        self._latency.clear()
        self._failures.clear()
        self._swallow.clear()
        self._broker.halt(None, False)
        self._hubs.freeze(None, False)
        self._hubs.block("all", False)


def _check_hub(hub: str) -> None:
    if hub not in HUBS:
        raise ValueError(f"hub must be 'user', 'market' or 'all', got {hub!r}")
