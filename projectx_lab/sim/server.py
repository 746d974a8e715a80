"""`Simulator`: the local gateway (REST + both hubs on one port) served by uvicorn, either in the
caller's event loop (`async with`) or in a background thread with its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import uvicorn

from .app import SimApp
from .auth import Credentials, TokenStore
from .config import SimConfig
from .exchange import Exchange
from .hubs import UVICORN_WS_OPTIONS
from .ratelimit import RateLimiter
from .replay_source import ReplaySource

_SHUTDOWN_GRACE = 0.3  # seconds uvicorn waits for open connections before cancelling them


class Simulator:
    """A local ProjectX gateway on `host:port` (port 0 = a free port), seeded and deterministic.

    `Simulator(seed=7, speed=1.0, token_ttl=2.0, ...)` takes any `SimConfig` field as a keyword,
    or a whole `config=SimConfig(...)` (explicit keywords override its fields).
    `Simulator(replay="session-dir", speed=10)` serves a recorded session as its market (see
    `replay_source.py`); the clock starts where the recording starts unless `start=` is given.
    """

    def __init__(
        self,
        seed: int | None = None,
        speed: float | None = None,
        *,
        config: SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        replay: str | os.PathLike[str] | ReplaySource | None = None,
        **options: Any,
    ) -> None:
        if seed is not None:
            options["seed"] = seed
        if speed is not None:
            options["speed"] = speed
        known = {f.name for f in dataclasses.fields(SimConfig)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown simulator option(s): {', '.join(unknown)}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, got {port!r}")
        source = (
            replay if isinstance(replay, ReplaySource) or replay is None else ReplaySource(replay)
        )
        if source is not None and options.get("start", getattr(config, "start", None)) is None:
            options["start"] = _utc(source.start_ns)
        self.config = dataclasses.replace(config or SimConfig(), **options)
        self.host = host
        self.port = port
        self.replay = source
        self.exchange = Exchange(self.config, source)
        self.clock = self.exchange.clock
        self.tokens = TokenStore(self.config.token_ttl)
        self.app = SimApp(
            self.exchange,
            self.tokens,
            Credentials(self.config.username, self.config.api_key),
            RateLimiter(self.config.history_rate, self.config.rest_rate),
        )
        self.faults = self.app.faults
        self._server: uvicorn.Server | None = None
        self._sock: socket.socket | None = None
        self._used = False
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ facts

    @property
    def username(self) -> str:
        return self.config.username

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def api_url(self) -> str:
        """REST base URL (the SDK appends `/api/...`)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def user_hub_url(self) -> str:
        return f"{self.api_url}/hubs/user"

    @property
    def market_hub_url(self) -> str:
        return f"{self.api_url}/hubs/market"

    def __repr__(self) -> str:
        state = f"api_url={self.api_url!r}" if self.running else "stopped"
        return (
            f"Simulator({state}, username={self.username!r}, seed={self.config.seed}, "
            f"speed={self.clock.speed:g})"
        )

    def request_count(self, path: str) -> int:
        """REST requests received so far on `path` (case-insensitive), whatever their outcome."""
        return self.exchange.call(self.app.rest.request_count, path)

    def request_counts(self) -> dict[str, int]:
        """Requests received per canonical REST path."""
        return self.exchange.call(lambda: dict(self.app.rest.counts))

    # ------------------------------------------------------------------ in-loop lifecycle

    async def start(self) -> Simulator:
        """Bind, start the market pump and serve in the running loop; returns when ready."""
        if self._server is not None:
            raise RuntimeError("simulator already running")
        if self._used:
            raise RuntimeError("a Simulator runs once; create a new one to start again")
        self._used = True
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            **UVICORN_WS_OPTIONS,
            access_log=False,
            log_config=None,
            log_level="warning",
            lifespan="off",
            date_header=False,
            server_header=False,
            timeout_graceful_shutdown=_SHUTDOWN_GRACE,  # type: ignore[arg-type]
        )
        server = uvicorn.Server(config)
        config.load()
        server.lifespan = config.lifespan_class(config)
        self.exchange.start()
        try:
            await server.startup(sockets=[sock])
            await server.on_tick(0)  # sets the default response headers
        except BaseException:
            sock.close()
            await self.exchange.stop()
            raise
        self._sock = sock
        self._server = server
        return self

    async def stop(self) -> None:
        """Close hub connections, release held requests, stop serving and the pump."""
        server, self._server = self._server, None
        if server is None:
            return
        await self.app.close()
        await server.shutdown(sockets=[self._sock])
        tasks = list(server.server_state.tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.exchange.stop()

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------ background-thread mode

    def start_in_thread(self, timeout: float = 10.0) -> Simulator:
        """Serve from a daemon thread with its own event loop; returns once the port is bound.

        Works from synchronous code and from notebooks whose loop is already running.
        """
        if self._thread is not None or self._server is not None or self._used:
            raise RuntimeError("simulator already running or used; create a new one")
        ready = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                await self._thread_stop.wait()
            finally:
                await self.stop()

        thread = threading.Thread(target=asyncio.run, args=(main(),), name="projectx-lab-sim")
        thread.daemon = True
        self._thread = thread
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"simulator did not start within {timeout} s")
        if failure:
            thread.join(timeout)
            self._thread = None
            raise failure[0]
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop a simulator started with `start_in_thread` and join its thread."""
        thread = self._thread
        if thread is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("close() cannot be called from the simulator's own thread")
        loop, stop = self._thread_loop, self._thread_stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"simulator thread did not stop within {timeout} s")
        self._thread = None

    def __enter__(self) -> Simulator:
        if self._thread is None:
            self.start_in_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _utc(ts_ns: int) -> datetime:
    """ns since the epoch as an aware UTC datetime (microsecond resolution)."""
    secs, rem = divmod(ts_ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).replace(microsecond=rem // 1000)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY follows
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
