"""How code runs around the event loop: a sync bridge, opt-in loop nesting, and per-cell ownership
so that re-running a notebook cell replaces what it set up instead of doubling it.

In Jupyter, `await` works at the top level of a cell and everything (streams, managers,
widgets) runs on the kernel's loop between cells; nothing here is needed for that.

Synchronous code (a script, the plain REPL, a thread) uses the **sync bridge**: `run(coro)` runs
a coroutine on one shared loop living on a background daemon thread, without patching anything.
Objects created there (clients, suites) belong to that loop, so keep using `run(...)` with them;
`shutdown()` (also registered at exit) cancels what is left and joins the thread.

```python
from projectx_lab.notebook import run
client = run(ProjectX.from_env().__aenter__())
accounts = run(client.list_accounts())
```

Calling `run()` on a thread whose loop is already running (a Jupyter callback) would deadlock;
it raises with advice instead, unless nesting was enabled explicitly with `enable_nested()`
(nest-asyncio2; process-wide and irreversible, so opt-in only).

**Per-cell registry**: widgets, `on(...)` handlers and `spawn(...)` tasks register with the
scope they are created in. Entering a scope again disposes what its previous run registered
(tasks cancelled, handlers disconnected, widgets closed), so a re-run replaces instead of
doubling:

```python
with cell_scope("fills"):                       # explicit name, works anywhere
    on(suite.orders.on_fill, lambda order, qty: print("filled", order.id, qty))
    spawn(watch_positions(suite))
replace_previous("alert-task", task)            # one object under an explicit key
```

Inside IPython with a frontend that sends cell ids (JupyterLab, Notebook 7, VS Code) the
current cell is the default scope: whatever a cell registers is disposed when that same cell
runs again. Plain `event += handler` cannot be tracked; use `on(event, handler)` in notebooks.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import contextvars
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger("projectx_lab.notebook")
T = TypeVar("T")


# -- sync bridge ------------------------------------------------------------------------------


class LoopThread:
    """An asyncio loop running on a daemon thread; sync code submits coroutines to it."""

    def __init__(self, name: str = "projectx-lab-loop") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (starts the thread on first use)."""
        self.start()
        assert self._loop is not None
        return self._loop

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self) -> LoopThread:
        """Start the loop thread if it is not running; returns self."""
        if self.running:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        thread = threading.Thread(
            target=self._main, args=(loop, ready), name=self.name, daemon=True
        )
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        return self

    @staticmethod
    def _main(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule `coro` on the loop; returns a thread-safe future at once."""
        if not inspect.iscoroutine(coro):
            raise TypeError(f"submit() takes a coroutine, got {type(coro).__name__}")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and block until it finishes (or `timeout` s: it is cancelled
        and TimeoutError raised)."""
        if not inspect.iscoroutine(coro):
            raise TypeError(f"run() takes a coroutine, got {type(coro).__name__}")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "run() was called on the background loop's own thread, where it would block "
                "forever; use `await` there instead"
            )
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"coroutine did not finish within {timeout:g} s") from None
        except BaseException:
            future.cancel()  # Ctrl-C while waiting: do not leave the coroutine running
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every task still on the loop, let them unwind, then stop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if threading.current_thread() is thread:
            raise RuntimeError("stop() cannot be called from the loop's own thread")
        try:
            asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("background loop tasks did not finish within %g s", timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    def __enter__(self) -> LoopThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LoopThread({self.name!r}, {'running' if self.running else 'stopped'})"


async def _cancel_all() -> None:
    me = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


_shared = LoopThread()
_shared_lock = threading.Lock()


def background_loop() -> LoopThread:
    """The shared background loop used by `run()` (started on first use)."""
    with _shared_lock:
        return _shared.start()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run a coroutine to completion from synchronous code and return its result.

    With no loop running in this thread it runs on the shared background loop. Inside a running
    loop (a Jupyter cell or callback) it raises, because blocking there would deadlock, unless
    `enable_nested()` was called, in which case it runs re-entrantly on that loop.
    """
    if not inspect.iscoroutine(coro):
        raise TypeError(f"run() takes a coroutine, got {type(coro).__name__}")
    loop = _running_loop()
    if loop is None:
        return background_loop().run(coro, timeout)
    if nested_enabled(loop):
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    coro.close()
    raise RuntimeError(
        "run() blocks, but an event loop is already running in this thread (a Jupyter cell or "
        "callback). Use `await ...` in the cell, `spawn(...)` from a callback, or call "
        "projectx_lab.notebook.enable_nested() once to allow blocking calls here."
    )


def shutdown(timeout: float = 5.0) -> None:
    """Stop the shared background loop (cancelling what still runs there); `run()` restarts it."""
    with _shared_lock:
        _shared.stop(timeout)


atexit.register(shutdown)


# -- opt-in nesting ---------------------------------------------------------------------------


def enable_nested(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Patch asyncio with nest-asyncio2 so a running loop can be re-entered (blocking `run()`
    inside Jupyter callbacks). Opt-in: it swaps in pure-Python tasks process-wide and cannot be
    undone."""
    try:
        import nest_asyncio2
    except ImportError:
        raise ImportError(
            "enable_nested() needs nest-asyncio2: pip install 'projectx-lab[notebook]'"
        ) from None
    nest_asyncio2.apply(loop or _running_loop())


def nested_enabled(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Whether `loop` (default: the running one) was made re-entrant by nest-asyncio(2)."""
    loop = loop or _running_loop()
    return loop is not None and bool(getattr(loop, "_nest_patched", False))


# -- per-cell registry -----------------------------------------------------------------------

_active_scope: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "projectx_lab_cell_scope", default=None
)
_CELL_PREFIX = "cell:"


class Subscription:
    """A callback connected to an event (`Event` or a plain list of callbacks); `close()`
    disconnects it."""

    __slots__ = ("_callback", "_event")

    def __init__(self, event: Any, callback: Callable[..., Any]) -> None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        if isinstance(event, list):
            event.append(callback)
        elif hasattr(event, "connect") and hasattr(event, "disconnect"):
            event.connect(callback)
        else:
            raise TypeError(
                f"cannot subscribe to {type(event).__name__}: expected an Event (with "
                "connect/disconnect) or a list of callbacks"
            )
        self._event: Any = event
        self._callback: Callable[..., Any] | None = callback

    @property
    def active(self) -> bool:
        return self._callback is not None

    def close(self) -> None:
        callback, self._callback = self._callback, None
        if callback is None:
            return
        if isinstance(self._event, list):
            with contextlib.suppress(ValueError):
                self._event.remove(callback)
        else:
            self._event.disconnect(callback)

    def __repr__(self) -> str:
        state = "active" if self.active else "closed"
        return f"Subscription({getattr(self._event, 'name', type(self._event).__name__)}, {state})"


class CellRegistry:
    """Objects owned by named scopes; re-entering a scope disposes what it owned before.

    Disposal: tasks and futures are cancelled; `close()` is called (an awaitable result, like
    `aclose()`'s, is scheduled on the running loop); a plain callable is called.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, list[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hooked: set[int] = set()

    def keys(self) -> list[str]:
        return list(self._scopes)

    def owned(self, key: str) -> list[Any]:
        """What scope `key` owns now (a copy)."""
        return list(self._scopes.get(key, ()))

    def __len__(self) -> int:
        return len(self._scopes)

    def add(self, key: str, obj: T) -> T:
        """Add `obj` to scope `key` (kept until the scope is disposed)."""
        _check_key(key)
        owned = self._scopes.setdefault(key, [])
        if not any(o is obj for o in owned):
            owned.append(obj)
        return obj

    def replace_previous(self, key: str, obj: T) -> T:
        """Dispose what scope `key` owned, then make `obj` its only object; returns `obj`."""
        _check_key(key)
        self.dispose(key)
        self._scopes[key] = [obj]
        return obj

    def dispose(self, key: str) -> int:
        """Dispose every object of scope `key` (newest first) and forget the scope; returns how
        many there were."""
        owned = self._scopes.pop(key, [])
        for obj in reversed(owned):
            self._dispose(obj)
        return len(owned)

    def discard(self, obj: Any) -> None:
        """Forget `obj` without disposing it (e.g. a task that finished on its own)."""
        for key, owned in list(self._scopes.items()):
            kept = [o for o in owned if o is not obj]
            if len(kept) != len(owned):
                self._scopes[key] = kept

    def dispose_all(self) -> None:
        for key in list(self._scopes):
            self.dispose(key)

    def _dispose(self, obj: Any) -> None:
        try:
            if isinstance(obj, asyncio.Future | concurrent.futures.Future):
                obj.cancel()
                return
            closer = getattr(obj, "close", None) or getattr(obj, "aclose", None)
            result = closer() if closer is not None else obj() if callable(obj) else None
            if inspect.isawaitable(result):
                self._schedule(result)
        except Exception:
            log.exception("could not dispose %r", obj)

    def _schedule(self, awaitable: Awaitable[Any]) -> None:
        loop = _running_loop()
        if loop is None:
            background_loop().submit(_awaited(awaitable))
            return
        task = loop.create_task(_awaited(awaitable))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def track(self, obj: T) -> T:
        """Add `obj` to the active scope: an enclosing `cell_scope`, else the IPython cell now
        running (when the frontend sends cell ids), else nothing. Returns `obj`."""
        key = _active_scope.get()
        if key is None:
            cell = self._current_cell()
            if cell is None:
                return obj
            key = _CELL_PREFIX + cell
        return self.add(key, obj)

    @contextlib.contextmanager
    def scope(self, name: str | None = None) -> Iterator[str]:
        """`with registry.scope("name"):` dispose what the previous run of `name` owned, and make
        `name` the scope of everything tracked inside. Without a name: the current cell's id."""
        if name is None:
            cell = self._current_cell()
            if cell is None:
                raise ValueError("cell_scope() needs a name here: this frontend sends no cell id")
            name = _CELL_PREFIX + cell
        _check_key(name)
        self.dispose(name)
        self._scopes[name] = []
        token = _active_scope.set(name)
        try:
            yield name
        finally:
            _active_scope.reset(token)

    def _current_cell(self) -> str | None:
        """Id of the IPython cell now executing (installs the re-run hook on first use)."""
        shell = _ipython()
        if shell is None:
            return None
        self.install(shell)
        result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        cell = getattr(getattr(result, "info", None), "cell_id", None)
        return cell if isinstance(cell, str) and cell else None

    def install(self, shell: Any) -> None:
        """Register the `pre_run_cell` hook that disposes a cell's objects when it runs again."""
        if id(shell) in self._hooked:
            return
        shell.events.register("pre_run_cell", self._pre_run_cell)
        self._hooked.add(id(shell))

    def uninstall(self, shell: Any) -> None:
        if id(shell) in self._hooked:
            shell.events.unregister("pre_run_cell", self._pre_run_cell)
            self._hooked.discard(id(shell))

    def _pre_run_cell(self, info: Any) -> None:
        cell = getattr(info, "cell_id", None)
        if isinstance(cell, str) and cell:
            self.dispose(_CELL_PREFIX + cell)


async def _awaited(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception:
        log.exception("closing a replaced object failed")


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key.strip():
        raise ValueError(f"a scope key must be a non-empty string, got {key!r}")


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


registry = CellRegistry()

_unowned: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "projectx_lab_unowned", default=False
)


@contextlib.contextmanager
def unowned() -> Iterator[None]:
    """Suites made inside belong to no cell: their maker (e.g. `%px_connect`) closes them."""
    token = _unowned.set(True)
    try:
        yield
    finally:
        _unowned.reset(token)


class _CloseSuite:
    """Disposer of a suite a cell made: closes it on the loop it lives on (the re-run cell
    may run on another), or leaves it if that loop no longer runs."""

    __slots__ = ("loop", "suite")

    def __init__(self, suite: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.suite, self.loop = suite, loop

    def __call__(self) -> None:
        if not self.loop.is_running():
            return
        if _running_loop() is self.loop:
            registry._schedule(self.suite.close())
        else:
            asyncio.run_coroutine_threadsafe(_awaited(self.suite.close()), self.loop)

    def __repr__(self) -> str:
        return f"_CloseSuite({self.suite!r})"


def own_suite(suite: Any) -> None:
    """Let the running cell (or `cell_scope`) own a suite just made, unless made `unowned()`:
    re-running the cell then closes it instead of leaking its connections."""
    if not _unowned.get():
        registry.track(_CloseSuite(suite, asyncio.get_running_loop()))


def cell_scope(name: str | None = None) -> contextlib.AbstractContextManager[str]:
    """`with cell_scope("name"):` re-running disposes what the previous run registered; our
    widgets, `on()` and `spawn()` inside belong to it. Default name: the current cell's id."""
    return registry.scope(name)


def replace_previous(key: str, obj: T) -> T:
    """Register `obj` under `key`, disposing whatever was registered under `key` before."""
    return registry.replace_previous(key, obj)


def track(obj: T) -> T:
    """Make the active scope (a `cell_scope`, else the running cell) own `obj`; returns it."""
    return registry.track(obj)


def on(event: Any, callback: Callable[..., Any]) -> Subscription:
    """Connect `callback` to `event` (an `Event` or a list of callbacks) and let the active
    scope own the connection, so a re-run cell replaces its handler instead of adding one."""
    return registry.track(Subscription(event, callback))


_spawned: set[asyncio.Task[Any]] = set()


def spawn(
    coro: Coroutine[Any, Any, T], *, name: str | None = None
) -> asyncio.Task[T] | concurrent.futures.Future[T]:
    """Start `coro` in the background without blocking, owned by the active scope (a re-run
    cancels it). On a thread with a running loop it becomes a task there (errors are logged);
    otherwise it goes to the shared background loop and a thread-safe future is returned."""
    if not inspect.iscoroutine(coro):
        raise TypeError(f"spawn() takes a coroutine, got {type(coro).__name__}")
    loop = _running_loop()
    if loop is None:
        future = registry.track(background_loop().submit(coro))
        future.add_done_callback(_log_failure)  # runs on the loop thread: registry untouched
        return future
    task = loop.create_task(coro, name=name)
    _spawned.add(task)
    task.add_done_callback(_task_done)
    return registry.track(task)


def _task_done(task: asyncio.Task[Any]) -> None:
    _spawned.discard(task)
    registry.discard(task)
    _log_failure(task)


def _log_failure(future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("background task %r failed", future, exc_info=future.exception())
