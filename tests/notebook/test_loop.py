"""The sync bridge, opt-in nesting and the per-cell registry.

`run()` works from plain sync code against the simulator (objects persist between calls on the
background loop), refuses to block inside a running loop, times out and shuts down cleanly.
`enable_nested()` is exercised in a subprocess (nest-asyncio2 patches asyncio process-wide).
Re-running a scope or an IPython cell (real `InteractiveShell`, cell ids as JupyterLab sends
them) disposes what the previous run registered instead of doubling handlers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import subprocess
import sys
import textwrap
import threading
import types
import warnings

import pytest
from IPython.core.interactiveshell import InteractiveShell

from projectx_lab import ProjectX
from projectx_lab.notebook import (
    CellRegistry,
    FrameThrottle,
    LoopThread,
    Subscription,
    cell_scope,
    nested_enabled,
    on,
    registry,
    replace_previous,
    run,
    shutdown,
    spawn,
    track,
)
from projectx_lab.notebook import loop as loop_module
from projectx_lab.realtime.dispatch import CallbackTasks, Event
from projectx_lab.sim import Simulator

from ..conftest import sim_options


@pytest.fixture
def bridge():
    """The shared background loop, stopped after the test."""
    yield loop_module.background_loop()
    shutdown()


def test_run_from_sync_code_talks_to_the_simulator(bridge) -> None:
    sim = run(Simulator(**sim_options()).start())
    client = run(ProjectX.for_simulator(sim).__aenter__())
    try:
        accounts = run(client.list_accounts())  # same loop, same connection pool, next call
        assert accounts and accounts[0].name
        assert run(client.get_instrument("MNQ")).id.startswith("CON.F.US.MNQ")
        assert run(client.authenticate()).id == client.account_info.id
    finally:
        run(client.__aexit__(None, None, None))
        run(sim.stop())
    assert threading.current_thread() is not bridge.thread


def test_run_returns_raises_and_times_out(bridge) -> None:
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    async def fail() -> None:
        raise KeyError("boom")

    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            cancelled.set()

    assert run(add(2, 3)) == 5
    with pytest.raises(KeyError, match="boom"):
        run(fail())
    with pytest.raises(TimeoutError, match=r"0\.05"):
        run(slow(), timeout=0.05)
    assert cancelled.wait(5)
    with pytest.raises(TypeError, match="coroutine"):
        run(add)  # type: ignore[arg-type]


def test_shutdown_cancels_background_work_and_joins(bridge) -> None:
    unwound = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    future = spawn(forever())
    assert isinstance(future, concurrent.futures.Future)
    thread = bridge.thread
    shutdown()
    assert unwound.is_set() and future.cancelled()
    assert not thread.is_alive() and not bridge.running
    registry.dispose_all()
    assert run(asyncio.sleep(0, "again")) == "again"  # restarts on demand
    assert bridge.thread is not thread


def test_loop_thread_context_manager_and_own_thread_guard() -> None:
    with LoopThread("px-test") as lt:
        assert lt.running and lt.thread.name == "px-test"

        async def inner() -> str:
            coro = asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="await"):
                lt.run(coro)
            return threading.current_thread().name

        assert lt.run(inner()) == "px-test"
    assert not lt.running


async def test_run_inside_a_running_loop_refuses_with_advice() -> None:
    assert not nested_enabled()
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="enable_nested"):
        run(coro)
    assert coro.cr_frame is None  # closed, no "never awaited" warning


NESTED = """
import asyncio
from projectx_lab.notebook import enable_nested, nested_enabled, run

async def twice(x):
    await asyncio.sleep(0)
    return 2 * x

def sync_callback():  # e.g. a widget callback that wants a result now
    return run(twice(21))

async def main():
    try:
        sync_callback()
    except RuntimeError as exc:
        print("refused:", "enable_nested" in str(exc))
    enable_nested()
    print("enabled:", nested_enabled())
    print("result:", sync_callback())

asyncio.run(main())
"""


def test_enable_nested_is_opt_in_and_makes_run_reentrant() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NESTED)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["refused: True", "enabled: True", "result: 42"]


async def test_replace_previous_disposes_each_kind_of_object() -> None:
    reg = CellRegistry()
    closed: list[str] = []

    class Sync:
        def close(self) -> None:
            closed.append("sync")

    async_closed = asyncio.Event()

    class Async:
        async def aclose(self) -> None:
            closed.append("async")
            async_closed.set()

    task = asyncio.get_running_loop().create_task(asyncio.Event().wait())
    event: Event[int, int] = Event("test", CallbackTasks())
    sub = Subscription(event, lambda a, b: None)
    reg.add("k", task)
    reg.add("k", Sync())
    reg.add("k", Async())
    reg.add("k", sub)
    reg.add("k", lambda: closed.append("callable"))
    assert len(event) == 1
    new = reg.replace_previous("k", Sync())
    assert reg.owned("k") == [new]
    async with asyncio.timeout(5):  # the cancelled task unwinds, the scheduled aclose runs
        await asyncio.wait([task])
        await async_closed.wait()
    assert task.cancelled()
    assert sorted(closed) == ["async", "callable", "sync"]
    assert len(event) == 0 and not sub.active
    assert reg.dispose("k") == 1 and closed[-1] == "sync"
    with pytest.raises(ValueError, match="non-empty"):
        reg.replace_previous("", 1)
    with pytest.raises(TypeError, match="list of callbacks"):
        Subscription(object(), print)


async def test_cell_scope_replaces_handlers_and_tasks_on_rerun() -> None:
    event: Event[str, int] = Event("fills", CallbackTasks())
    book_callbacks: list = []
    started = asyncio.Queue()

    async def watcher() -> None:
        started.put_nowait(1)
        await asyncio.Event().wait()

    tasks = []
    try:
        for _ in range(3):  # the same cell run three times
            with cell_scope("fills-cell"):
                on(event, lambda order, qty: None)
                on(book_callbacks, lambda book: None)
                tasks.append(spawn(watcher()))
            async with asyncio.timeout(5):
                await started.get()  # the run's watcher is up before the next run
        assert len(event) == 1 and len(book_callbacks) == 1
        async with asyncio.timeout(5):
            await asyncio.wait(tasks[:2])
        assert [t.cancelled() for t in tasks[:2]] == [True, True]
        assert not tasks[2].done()
        assert track(object()) is not None  # outside any scope: not owned by anything
        assert len(registry.owned("fills-cell")) == 3
    finally:
        registry.dispose("fills-cell")
    async with asyncio.timeout(5):
        await asyncio.wait([tasks[2]])
    assert tasks[2].cancelled() and len(event) == 0 and not book_callbacks
    replace_previous("one-key", object())
    assert registry.dispose("one-key") == 1


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    yield ip
    registry.uninstall(ip)


async def run_cell(shell: InteractiveShell, code: str, cell_id: str) -> None:
    """Run `code` as ipykernel does for a cell JupyterLab sends with `cellId` metadata."""
    result = await shell.run_cell_async(
        code, transformed_cell=shell.transform_cell(code), cell_id=cell_id
    )
    assert result.success, result.error_in_exec


async def test_rerunning_an_ipython_cell_replaces_its_handlers(shell) -> None:
    event: Event[str, int] = Event("orders", CallbackTasks())
    shell.user_ns.update(event=event, on=on)
    code = "sub = on(event, lambda order, previous: None)"
    try:
        for _ in range(3):
            await run_cell(shell, code, "cell-a")
        assert len(event) == 1  # re-running cell-a replaced its handler
        await run_cell(shell, code, "cell-b")
        assert len(event) == 2  # another cell adds its own
        await run_cell(shell, "x = 1", "cell-a")  # cell-a edited: handler gone
        assert len(event) == 1
    finally:
        registry.dispose("cell:cell-a")
        registry.dispose("cell:cell-b")
    assert len(event) == 0
    with pytest.raises(ValueError, match="needs a name"):
        with cell_scope():  # no cell is running now
            pass


def test_old_ipykernel_is_warned_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from projectx_lab.notebook import throttle

    monkeypatch.setitem(sys.modules, "ipykernel", types.SimpleNamespace(__version__="7.3.1"))
    monkeypatch.setattr(throttle, "_kernel_checked", False)
    with pytest.warns(RuntimeWarning, match=r"ipykernel >= 7\.4"):
        throttle.check_kernel()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        throttle.check_kernel()  # once per process
        monkeypatch.setitem(sys.modules, "ipykernel", types.SimpleNamespace(__version__="7.4.0"))
        monkeypatch.setattr(throttle, "_kernel_checked", False)
        throttle.check_kernel()  # new enough: silent


async def test_throttle_draws_on_its_loop_and_refuses_other_threads() -> None:
    drawn: list[bool] = []
    throttle = FrameThrottle(drawn.append, fps=50, name="probe")
    errors: list[BaseException] = []

    def from_a_thread() -> None:
        try:
            throttle.mark()
        except RuntimeError as exc:
            errors.append(exc)
        throttle.resync()  # a view attaching: marshalled onto the loop

    try:
        worker = threading.Thread(target=from_a_thread)
        worker.start()
        worker.join()
        assert "another thread" in str(errors[0]) and not drawn
        await throttle.next_frame(5)
        assert drawn == [True]  # the resync frame sends the full state
        for _ in range(100):
            throttle.mark()  # coalesced into one frame
        await throttle.next_frame(5)
        assert drawn == [True, False]
    finally:
        throttle.close()
    with pytest.raises(RuntimeError, match="closed"):
        await throttle.next_frame()
