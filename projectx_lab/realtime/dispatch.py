"""Getting records onto the event loop in batches, and fanning events out to user code.

`ThreadHandoff` queues on a transport thread and wakes the loop only when no wake-up is
already pending; each wake-up drains the whole queue. The queue is bounded: when the loop falls
behind, the transport thread waits, so the backlog stays in the socket and TCP pushes back on
the server instead of growing our memory. `Event` calls sync callbacks inline and
runs async ones as tracked tasks (errors logged, never raised into the stream). `EventStream`
is a bounded async iterator over an event.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any, Generic, TypeVar

from .redact import logger

A = TypeVar("A")
B = TypeVar("B")
Callback = Callable[[Any, Any], Any]


HANDOFF_LIMIT = 20_000  # records queued for the loop before the transport thread waits


class ThreadHandoff:
    """Batched thread → loop hand-off: one `call_soon_threadsafe` per burst, not per frame.

    At `limit` queued records `push` blocks the producing thread until the loop drains; the
    hot path takes no lock (a length check per push, one `Event.set` per drain).
    """

    __slots__ = ("_closed", "_consume", "_limit", "_loop", "_pending", "_queue", "_room")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        consume: Callable[[Any, int], None],
        limit: int = HANDOFF_LIMIT,
    ):
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._loop = loop
        self._consume = consume
        self._limit = limit
        self._queue: deque[tuple[Any, int]] = deque()
        self._pending = False
        self._room = threading.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, item: Any, stamp: int) -> None:
        """Queue `(item, stamp)` from any thread; wake the loop if no drain is pending."""
        if len(self._queue) >= self._limit:
            self._wait_for_room()
        self._queue.append((item, stamp))
        if not self._pending:
            self._pending = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # loop closed while the socket thread was finishing
                self._queue.clear()

    def close(self) -> None:
        """Release a producer waiting for room (the connection is being torn down)."""
        self._closed = True
        self._room.set()

    def _wait_for_room(self) -> None:
        room = self._room
        while len(self._queue) >= self._limit and not self._closed and not self._loop.is_closed():
            room.clear()
            if len(self._queue) < self._limit:  # a drain finished between the check and clear
                break
            room.wait(0.05)

    def _drain(self) -> None:
        self._pending = False  # reset first: a push racing with this drain schedules another
        queue, consume = self._queue, self._consume
        while queue:
            item, stamp = queue.popleft()
            try:
                consume(item, stamp)
            except Exception:  # one bad batch must not strand the rest of the queue
                logger.exception("dropped a batch of hub records that could not be handled")
        self._room.set()


class CallbackTasks:
    """Owns the tasks of async callbacks so none is garbage-collected or left behind at close."""

    __slots__ = ("_loop", "_tasks")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def spawn(self, awaitable: Awaitable[Any], name: str) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        coro = awaitable if isinstance(awaitable, CoroutineType) else _await(awaitable)
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("async callback for %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self, grace: float) -> None:
        """Let running callbacks finish for up to `grace` seconds, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Event(Generic[A, B]):
    """A two-argument event in the style of ib_async: `event += callback`, `event -= callback`.

    Sync callbacks run inline on the loop; a callback returning an awaitable (an `async def`)
    runs as a task. Exceptions are logged (first one per callback with its traceback).
    """

    __slots__ = ("_callbacks", "_failures", "_streams_open", "_tasks", "name")

    def __init__(self, name: str, tasks: CallbackTasks) -> None:
        self.name = name
        self._tasks = tasks
        self._callbacks: tuple[Callback, ...] = ()
        self._failures: dict[Callback, int] = {}
        self._streams_open = True

    def connect(self, callback: Callable[[A, B], Any]) -> Callable[[A, B], Any]:
        """Register `callback(a, b)`; returns it (usable as a decorator)."""
        if not callable(callback):
            raise TypeError(f"{self.name} callback must be callable, got {type(callback).__name__}")
        if callback not in self._callbacks:
            self._callbacks = (*self._callbacks, callback)
        return callback

    def disconnect(self, callback: Callable[[A, B], Any]) -> None:
        """Unregister `callback` (no error if it was not registered)."""
        self._callbacks = tuple(cb for cb in self._callbacks if cb != callback)
        self._failures.pop(callback, None)

    def __iadd__(self, callback: Callable[[A, B], Any]) -> Event[A, B]:
        self.connect(callback)
        return self

    def __isub__(self, callback: Callable[[A, B], Any]) -> Event[A, B]:
        self.disconnect(callback)
        return self

    def __len__(self) -> int:
        return len(self._callbacks)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, callbacks={len(self._callbacks)})"

    def emit(self, a: A, b: B) -> None:
        """Call every callback with `(a, b)`."""
        for callback in self._callbacks:
            try:
                result = callback(a, b)
                if result is not None and (
                    isinstance(result, CoroutineType) or inspect.isawaitable(result)
                ):
                    self._tasks.spawn(result, self.name)
            except Exception:
                self._failed(callback)

    def _failed(self, callback: Callback) -> None:
        count = self._failures.get(callback, 0) + 1
        self._failures[callback] = count
        if count == 1:
            logger.exception("callback %r for %s raised; the stream continues", callback, self.name)
        elif count in (10, 100) or count % 1000 == 0:
            logger.error("callback %r for %s has raised %d times", callback, self.name, count)

    def close_streams(self) -> None:
        """End every `EventStream` attached to this event (their `async for` loops finish), and
        any made later, until `open_streams()`: nothing will feed them."""
        self._streams_open = False
        for callback in self._callbacks:
            owner = getattr(callback, "__self__", None)
            if isinstance(owner, EventStream):
                owner.close()

    def open_streams(self) -> None:
        """Let `stream()` hand out live streams again (the source was restarted)."""
        self._streams_open = True

    @property
    def streams_open(self) -> bool:
        """False once the source has stopped (`close_streams()`) until it restarts."""
        return self._streams_open

    def stream(self, maxsize: int = 10_000) -> EventStream[A, B]:
        """An async iterator of `(a, b)` tuples from now on, keeping at most `maxsize` unread
        (already ended when the source has stopped)."""
        stream = EventStream(self, maxsize)
        if not self._streams_open:
            stream.close()
        return stream


class EventStream(Generic[A, B]):
    """Bounded async iterator over an `Event`: `async for a, b in stream`.

    When the consumer falls behind by `maxsize` items the oldest are dropped (counted in
    `dropped`), so a slow notebook cell never grows memory without bound.
    """

    __slots__ = ("__weakref__", "_buffer", "_closed", "_event", "_waiter", "dropped")

    def __init__(self, event: Event[A, B], maxsize: int) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
            raise ValueError(f"maxsize must be a positive int, got {maxsize!r}")
        self._event = event
        self._buffer: deque[tuple[A, B]] = deque(maxlen=maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0
        event.connect(self._put)

    def _put(self, a: A, b: B) -> None:
        buffer = self._buffer
        if len(buffer) == buffer.maxlen:
            self.dropped += 1
        buffer.append((a, b))
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def __aiter__(self) -> EventStream[A, B]:
        return self

    async def __anext__(self) -> tuple[A, B]:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._buffer.popleft()

    def __len__(self) -> int:
        return len(self._buffer)

    def close(self) -> None:
        """Stop receiving; iteration ends once the buffered items are consumed."""
        if self._closed:
            return
        self._closed = True
        self._event.disconnect(self._put)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> EventStream[A, B]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"EventStream({self._event.name!r}, {state}, buffered={len(self._buffer)})"
