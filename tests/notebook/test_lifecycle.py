"""What live widgets and the magics' suite do once their source is gone, against the simulator
over real sockets: widgets stop (repr, display, open views, `next_frame()` at once) when their
suite closes, when the data feed stops or when a re-run `%px_connect` replaces the suite; none
can be made on a stopped source; an order from another event loop than the suite's is refused
before anything is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from projectx_lab import ProjectX, create_trading_suite
from projectx_lab.client.errors import ProjectXError
from projectx_lab.notebook import CandlestickChart, DepthChart, DomLadder
from projectx_lab.notebook.loop import registry, run, shutdown
from projectx_lab.notebook.magic_args import ConnectRequest
from projectx_lab.notebook.magic_session import MagicSession
from projectx_lab.notebook.magics import unload_ipython_extension
from projectx_lab.sim import Simulator

from ..conftest import wait_until
from .widget_support import TIMEOUT, open_suite, sim_and_client

AT_ONCE = 2.0  # seconds: a stopped widget answers now, not after next_frame's timeout


@pytest.fixture(name="sim_client")
async def sim_client_fixture() -> AsyncIterator[tuple[Simulator, ProjectX]]:
    async with sim_and_client() as pair:
        yield pair


def _assert_stopped(widget: Any, why: str) -> None:
    assert widget.stopped is not None and why in widget.stopped
    assert widget.throttle.closed and not widget.closed
    text = repr(widget)
    assert f"stopped: {widget.stopped}" in text and "fps" not in text, text
    shown = widget._repr_mimebundle_()  # what showing it as a cell's last line asks for
    assert shown["text/plain"] == text and "stopped" in shown["text/html"]


async def test_widgets_stop_and_say_so_when_their_suite_closes(sim_client) -> None:
    sim, client = sim_client
    suite = await open_suite(sim, client)
    chart = CandlestickChart(suite.data, bars=20, overlays=suite, fps=20)
    depth = DepthChart(suite.orderbook, fps=20)
    ladder = DomLadder(suite.orderbook, orders=suite.orders, fps=20)
    widgets = (chart, depth, ladder)
    try:
        for widget in widgets:
            await widget.next_frame(TIMEOUT)
        waiting = asyncio.ensure_future(ladder.next_frame(TIMEOUT))
        await suite.close()
        async with asyncio.timeout(AT_ONCE):
            with pytest.raises(RuntimeError, match=r"stopped: .*suite closed"):
                await waiting  # a frame awaited when the source went away
            for widget in widgets:
                with pytest.raises(RuntimeError, match=r"\[.*\] stopped: "):
                    await widget.next_frame(TIMEOUT)
        for widget in widgets:
            _assert_stopped(widget, "suite closed")
        assert chart._on_tick not in suite.data.on_tick._callbacks
        assert chart._levels._order_changed not in suite.orders.on_order_update._callbacks
        assert ladder._changed not in suite.orderbook.on_update
        assert depth._traded not in suite.orderbook.on_trade
        # views still open keep the last frame and say it will not move any more
        assert chart.figure.layout.title.text.endswith("· stopped")
        assert depth.figure.layout.title.text.endswith("· stopped")
        assert "stopped:" in ladder.widget.value and "data-price" in ladder.widget.value
    finally:
        for widget in widgets:
            widget.close()
    for widget in widgets:
        assert widget.closed and repr(widget).endswith(", closed)")
        with pytest.raises(RuntimeError, match="is closed"):
            await widget.next_frame()


async def test_no_widget_is_made_on_a_closed_suite(sim_client) -> None:
    sim, client = sim_client
    suite = await open_suite(sim, client)
    await suite.close()
    running = asyncio.all_tasks()
    makers = {
        "CandlestickChart": lambda: CandlestickChart(suite.data, overlays=suite),
        "DepthChart": lambda: DepthChart(suite.orderbook),
        "DomLadder": lambda: DomLadder(suite.orderbook, orders=suite.orders),
    }
    for name, make in makers.items():
        with pytest.raises(RuntimeError, match=rf"cannot create {name}\[.*suite closed"):
            make()
    assert [t for t in asyncio.all_tasks() - running if not t.done()] == []
    assert len(suite.data.on_tick) == 0 and suite.orderbook.on_update == []


async def test_a_chart_stops_with_its_data_feed(sim_client) -> None:
    sim, client = sim_client
    async with await open_suite(sim, client) as suite:
        chart = CandlestickChart(suite.data, bars=20, fps=20)
        try:
            frames = await chart.next_frame(TIMEOUT)
            await suite.data.stop_realtime_feed()  # the suite stays open
            async with asyncio.timeout(AT_ONCE):
                with pytest.raises(RuntimeError, match="stopped: the data feed stopped"):
                    await chart.next_frame(TIMEOUT)
            _assert_stopped(chart, "data feed stopped")
            assert chart.frames == frames
            chart.refresh()  # nothing to draw on a stopped chart, and no error
        finally:
            chart.close()


async def test_book_widgets_stop_with_their_book_feed(sim_client) -> None:
    sim, client = sim_client
    async with await open_suite(sim, client) as suite:
        depth = DepthChart(suite.orderbook, fps=20)
        try:
            await depth.next_frame(TIMEOUT)
            await suite.book_feed.stop()  # the suite and its connection stay open
            async with asyncio.timeout(AT_ONCE):
                with pytest.raises(RuntimeError, match="feed stopped"):
                    await depth.next_frame(TIMEOUT)
            _assert_stopped(depth, "feed stopped")
        finally:
            depth.close()


async def test_a_reconnect_stops_the_widgets_of_the_replaced_suite(sim_client) -> None:
    sim, _ = sim_client
    session = MagicSession()
    request = ConnectRequest(sim="sim", timeframes=("1min",))
    try:
        first = await session.connect(request, {"sim": sim})
        chart = CandlestickChart(first.data, bars=20, fps=20)
        ladder = DomLadder(first.orderbook, orders=first.orders, fps=20)
        await chart.next_frame(TIMEOUT)
        second = await session.connect(request, {"sim": sim})  # `%px_connect` run again
        assert first.closed and not second.closed
        async with asyncio.timeout(AT_ONCE):
            for widget in (chart, ladder):
                with pytest.raises(RuntimeError, match=r"stopped: .*suite closed"):
                    await widget.next_frame(TIMEOUT)
        _assert_stopped(chart, "suite closed")
        fresh = CandlestickChart(second.data, bars=20, fps=20)
        await fresh.next_frame(TIMEOUT)
        fresh.close()
    finally:
        await session.disconnect(quiet=True)


def test_an_order_from_another_loop_is_refused_before_it_is_sent() -> None:
    """IPython's terminal: `%px_connect` builds the suite on the sync bridge's loop; a top-level
    `await suite.orders...` runs on the terminal's own loop, where the reply could never be
    read. It is refused with the way out, and nothing reaches the gateway."""
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "projectx_lab")
        assert shell.run_cell("suite = %px_connect --speed 1 --timeframes 1min").success
        suite = shell.user_ns["suite"]
        session = shell.magics_manager.registry["ProjectXMagics"].session
        result = shell.run_cell("await suite.orders.place_market_order('MNQ', 'buy', 1)")
        error = result.error_in_exec
        assert session.sim.request_count("/api/Order/place") == 0, error
        assert run(suite.client.get_positions()) == []
        assert isinstance(error, ProjectXError), error
        assert "another event loop" in str(error) and "nothing was sent" in str(error)
        assert "`run(...)` from projectx_lab.notebook" in str(error)
        placed = run(suite.orders.place_market_order("MNQ", "buy", 1))  # the bridge: works
        assert placed.order_id > 0
        run(suite.orders.flatten("MNQ"))
    finally:
        unload_ipython_extension(shell)
        InteractiveShell.clear_instance()
        shutdown()


async def test_rerunning_a_cell_closes_the_suite_its_last_run_made(sim_client) -> None:
    """`suite = await create_trading_suite(...)` re-run in the same cell: the previous suite is
    closed, so its hub connections do not add up; another cell's suite is left alone."""
    sim, client = sim_client
    shell = InteractiveShell.instance()
    shell.user_ns.update(create_trading_suite=create_trading_suite, client=client)
    code = "suite = await create_trading_suite('MNQ', project_x=client, timeframes=['1min'])"
    hubs = sim.app.hubs
    try:
        await _run_cell(shell, code, "cell-a")
        first = shell.user_ns["suite"]
        await _run_cell(shell, code, "cell-a")
        second = shell.user_ns["suite"]
        await wait_until(lambda: first.realtime.state("market").value == "disconnected")
        await _run_cell(shell, code.replace("suite =", "other ="), "cell-b")
        assert second.realtime.is_connected and shell.user_ns["other"].realtime.is_connected
        await wait_until(lambda: hubs.connection_count("all") == 4)  # two suites, two hubs each
    finally:
        registry.dispose("cell:cell-a")
        registry.dispose("cell:cell-b")
        registry.uninstall(shell)
    await wait_until(lambda: hubs.connection_count("all") == 0)


async def _run_cell(shell: InteractiveShell, code: str, cell_id: str) -> None:
    """Run `code` as ipykernel does for a cell JupyterLab sends with `cellId` metadata."""
    result = await shell.run_cell_async(
        code, transformed_cell=shell.transform_cell(code), cell_id=cell_id
    )
    assert result.success, result.error_in_exec
