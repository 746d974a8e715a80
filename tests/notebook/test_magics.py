"""Magics through a real IPython `InteractiveShell` inside a running loop (cells run the way
ipykernel 7.4 runs them), against the simulator over real sockets: a bracket's three ids, flatten,
malformed lines that send nothing, the safety gate and arming, background `MagicCall`s, the
terminal path (no running loop), and the doctor's traps."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from traitlets.config import Config

from projectx_lab import ProjectX
from projectx_lab.notebook import doctor, magic_args, magic_format
from projectx_lab.notebook.loop import shutdown
from projectx_lab.notebook.magic_session import MagicSession
from projectx_lab.notebook.magics import AwaitMagics, MagicCall, unload_ipython_extension
from projectx_lab.sim import AccountConfig, Simulator

from ..conftest import sim_options

PLACE = "/api/Order/place"
CANCEL = "/api/Order/cancel"
CLOSE = "/api/Position/closeContract"
LOGIN = "/api/Auth/loginKey"
BRACKET_IDS = re.compile(r"entry (\d+) · stop (\d+) \(8t\) · target (\d+) \(16t\)")


def new_shell() -> InteractiveShell:
    """A fresh singleton shell (another test module may have left one behind)."""
    InteractiveShell.clear_instance()
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    return InteractiveShell.instance(config=config)


async def run(shell: InteractiveShell, code: str) -> ExecutionResult:
    """A cell, exactly as ipykernel 7.4's `do_execute` runs it on the kernel's running loop."""
    transformed = shell.transform_cell(code)
    if shell.should_run_async(code, transformed_cell=transformed):
        return await shell.run_cell_async(code, store_history=True, transformed_cell=transformed)
    return shell.run_cell(code, store_history=True)


def session_of(shell: InteractiveShell) -> MagicSession:
    return shell.magics_manager.registry["ProjectXMagics"].session


@pytest.fixture
async def shell() -> AsyncIterator[InteractiveShell]:
    ip = new_shell()
    try:
        assert (await run(ip, "%load_ext projectx_lab")).success
        yield ip
        await run(ip, "%px_disconnect")
    finally:
        unload_ipython_extension(ip)
        InteractiveShell.clear_instance()


async def test_a_magic_call_used_like_its_result_says_how_to_get_it(shell) -> None:
    # What `%load_ext projectx_lab` and `suite = %px_connect` in one cell leave in `suite`.
    # the call as the cell's compiled code sees it when the transformer could not add `await`
    code = "magic = get_ipython().run_line_magic\nc = magic('px_disconnect', '')\n"
    result = await run(shell, "import asyncio\n" + code + "await asyncio.sleep(0)")
    assert result.success and isinstance(shell.user_ns["c"], MagicCall)
    await run(shell, "await c")
    failed = await run(shell, "c.orders")
    error = failed.error_in_exec
    assert isinstance(error, AttributeError), error
    assert "%px_disconnect's call, not its result" in str(error) and "next cell" in str(error)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    accounts = [
        AccountConfig("PRAC-V2-SIM-1"),
        AccountConfig("LIVE-ACCT-1", simulated=False),
    ]
    async with Simulator(**sim_options(speed=20.0, trade_rate=4.0, accounts=accounts)) as running:
        yield running


class Cells:
    """Run cells and read what they printed (stdout, stderr) since the last read."""

    def __init__(self, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
        self.shell = shell
        self.capsys = capsys
        self.out = ""  # stdout of the last failing cell

    async def ok(self, code: str) -> str:
        result = await run(self.shell, code)
        out, err = self.capsys.readouterr()
        assert result.success, f"{code!r} failed: {err}"
        return out

    async def connect(self, sim: Simulator, options: str = "") -> str:
        """`suite = %px_connect` on `sim` (1min bars, plus `options`); returns what it printed."""
        self.shell.user_ns["sim"] = sim
        return await self.ok(f"suite = %px_connect --sim sim --timeframes 1min {options}".rstrip())

    async def usage_error(self, code: str) -> str:
        result = await run(self.shell, code)
        out, err = self.capsys.readouterr()
        self.out = out
        assert not result.success, f"{code!r} succeeded: {out}"
        assert "UsageError: " in err and "Traceback" not in err, err
        return err


async def no_working_orders_or_positions(sim: Simulator, account: str) -> None:
    async with ProjectX.for_simulator(sim, account_name=account) as client:
        assert await client.get_positions() == []
        page = await client.query_orders(statuses=[1, 6, 7, 8])
        assert page.orders == []


async def test_bracket_positions_orders_flatten_on_embedded_simulator(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    out = await cells.ok("suite = %px_connect --speed 20 --timeframes 1min")
    assert "embedded simulator" in out and "paper: no arming needed" in out
    session = session_of(shell)
    suite = shell.user_ns["suite"]
    assert suite is session.suite and session.sim is not None and session.sim.running
    assert session.loop is asyncio.get_running_loop()
    session.sim.clock.speed = 1e-9  # freeze the market: no leg may fill before the checks

    out = await cells.ok("%bracket MNQ buy 1 --stop 8t --target 16t")
    entry, stop, target = map(int, BRACKET_IDS.search(out).groups())
    assert re.search(r"filled 1 @ [\d.]+ · stop \d+ @ [\d.]+ · target \d+ @ [\d.]+", out), out
    assert session.sim.request_count(PLACE) == 1
    legs = [await suite.orders.get_order(i) for i in (stop, target)]
    assert all(leg.parent_order_id == entry for leg in legs)
    filled = await suite.orders.get_order(entry)
    assert legs[0].stop_price == filled.filled_price - 8 * Decimal("0.25")
    assert legs[1].limit_price == filled.filled_price + 16 * Decimal("0.25")

    out = await cells.ok("%positions")
    assert re.search(r"CON\.F\.US\.MNQ\.\w+\s+\+1\s", out), out
    out = await cells.ok("%orders MNQ")
    assert str(stop) in out and str(target) in out and "open" in out

    out = await cells.ok("flat = %flatten")
    assert "position closed (was +1)" in out and f"{stop}" in out and f"{target}" in out
    assert shell.user_ns["flat"][0].closed
    await no_working_orders_or_positions(session.sim, "PRAC-V2-SIM-1")
    assert "no working orders" in await cells.ok("%orders")
    assert "nothing to flatten" in await cells.ok("%flatten")

    # re-running %px_connect replaces the connection (old simulator stopped, not doubled)
    old_sim = session.sim
    await cells.ok("suite = %px_connect --speed 20 --timeframes 1min")
    assert not old_sim.running and session.sim is not old_sim
    assert shell.user_ns["suite"] is session.suite and suite.closed


async def test_cell_magic_places_one_bracket_per_line(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.connect(sim)
    out = await cells.ok(
        "%%bracket --stop 8t --target 16t\nMNQ buy 1\n\n# short the other\nMES sell 2 --stop 8t\n"
    )
    found = BRACKET_IDS.findall(out)
    assert len(found) == 2 and sim.request_count(PLACE) == 2
    assert "bracket BUY 1 MNQ" in out and "bracket SELL 2 MES" in out
    suite = session_of(shell).suite
    for entry, stop, target in found:
        legs = [await suite.orders.get_order(int(i)) for i in (stop, target)]
        assert [leg.parent_order_id for leg in legs] == [int(entry)] * 2
    out = await cells.ok("%cancel all")
    assert "cancelled" in out
    await cells.ok("%flatten")
    await no_working_orders_or_positions(sim, "PRAC-V2-SIM-1")


async def test_malformed_lines_print_usage_errors_and_send_nothing(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.connect(sim)
    suite = shell.user_ns["suite"]
    last = Decimal(repr(await suite.orders.prices.wait(suite.instrument.id, 5.0)))
    above, below = last + 20, last - 20
    bad = {
        "%bracket MNQ buy 0 --stop 8t --target 16t": "size must be a positive whole number",
        "%bracket NOPE buy 1 --stop 8t --target 16t": "unknown symbol 'NOPE'",
        f"%bracket MNQ buy 1 --stop {above} --target 16t": "wrong side",
        f"%bracket MNQ sell 1 --stop {below}": "wrong side",
        f"%bracket MNQ buy 1 --limit {last} --stop {above}": "wrong side",
        "%bracket MNQ buy 1 --stopp 8t": "unrecognized arguments: --stopp",
        "%bracket MNQ buy 1 --stop -8t": "8t, not -8t",
        "%bracket MNQ buy 1": "needs --stop and/or --target",
        "%bracket MNQ hold 1 --stop 8t": "side must be buy or sell",
        "%bracket MNQ buy 1 --stop 2t": "at least 4 ticks",
        "%bracket MNQ buy 1 --stop 8t extra": "unrecognized arguments: extra",
        "%%bracket --stop 8t\nMNQ buy 1\nMNQ buy 0\n": "line 3",
        f"%%bracket --target 16t\nMNQ buy 1\nMNQ buy 1 --stop {above}\n": "order 2",
        "%cancel 424242": "no order 424242",
        "%cancel seven": "positive whole number",
        "%flatten NOPE": "unknown symbol",
        "%px_connect --env --speed 2": "--env connects to the real gateway",
        "%positions now": "unrecognized arguments",
    }
    for code, expected in bad.items():
        err = await cells.usage_error(code)
        assert expected in err, (code, err)
    assert sim.request_count(PLACE) == 0
    assert sim.request_count(CANCEL) == 0
    assert sim.request_count(CLOSE) == 0
    assert session_of(shell).connected  # a bad line changes nothing, the connection included


async def test_a_failed_reconnect_leaves_the_working_session_alone(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.ok("suite = %px_connect --speed 20 --timeframes 1min")
    session = session_of(shell)
    suite, sim = session.suite, session.sim
    sim.clock.speed = 1e-9  # frozen: the position stays as placed
    await cells.ok("%bracket MNQ buy 1 --stop 40t --target 80t")
    err = await cells.usage_error("%px_connect --symbol MSE --timeframes 1min")
    assert "'MSE'" in err
    assert session.suite is suite and not suite.closed and sim.running
    assert shell.user_ns["suite"] is suite
    assert re.search(r"CON\.F\.US\.MNQ\.\w+\s+\+1\s", await cells.ok("%positions"))
    assert "position closed (was +1)" in await cells.ok("%flatten")


async def test_a_bad_timeframe_is_refused_before_anything_changes(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.connect(sim)
    suite, logins = shell.user_ns["suite"], sim.request_count(LOGIN)
    err = await cells.usage_error("%px_connect --sim sim --timeframes 1min,5mn")
    assert "unknown timeframe '5mn'" in err
    assert sim.request_count(LOGIN) == logins and session_of(shell).suite is suite
    assert not suite.closed


async def test_an_interrupted_bracket_says_it_may_be_placed(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.connect(sim)
    orders = shell.user_ns["suite"].orders
    placed = asyncio.Event()

    def seen(order, previous) -> None:
        if order.custom_tag == "mine-1":
            placed.set()

    orders.on_order_update += seen
    sim.faults.swallow_next(PLACE)  # the simulator places the order but never answers
    cell = asyncio.ensure_future(run(shell, "%bracket MNQ buy 1 --stop 8t --tag mine-1"))
    await asyncio.wait_for(placed.wait(), 10)
    cell.cancel()  # what ipykernel does to the running cell on an interrupt
    assert not (await cell).success
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "CancelledError" not in out + err, out + err
    assert err.startswith("UsageError: ") and err.count("\n") == 1, err
    assert "placing %bracket MNQ buy 1 --stop 8t --tag mine-1" in err
    assert "may have reached the gateway; check %orders" in err
    assert sim.request_count(PLACE) == 1
    assert "mine-1-SL" in await cells.ok("%orders")
    await cells.ok("%flatten")


async def test_bracket_prints_the_prices_sent_and_the_entrys_state(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.connect(sim)
    suite = shell.user_ns["suite"]
    last = Decimal(repr(await suite.orders.prices.wait(suite.instrument.id, 5.0)))
    sim.clock.speed = 1e-9  # frozen: a limit below the market stays working
    low = (last - 100).quantize(Decimal(1))
    out = await cells.ok(f"%bracket MNQ buy 1 --stop 8t --target {low + 20}.10 --limit {low}.10")
    entry = int(re.search(r"entry (\d+)", out)[1])
    assert f"entry {entry} limit {low}.00 (rounded from {low}.10)" in out, out
    assert re.search(r"stop \d+ \(8t\)", out), out
    assert re.search(rf"target \d+ @ {low + 20}\.25 \(81t, rounded from {low + 20}\.10\)", out)
    assert re.search(rf"^  entry {entry} working: limit {low}(\.0*)?$", out, re.M), out
    assert (await suite.orders.get_order(entry)).limit_price == low

    out = await cells.ok(f"%bracket MNQ buy 1 --stop 8t --limit {last + 50}")
    assert "working" not in out and re.search(r"filled 1 @ [\d.]+ · stop \d+ @", out), out

    high = (last + 10).quantize(Decimal(1))
    out = await cells.ok(f"%bracket MNQ sell 1 --stop {high}.10")
    ticks = int(re.search(rf"stop \d+ \((\d+)t from the fill, for {high}\.10\)", out)[1])
    fill, stop = (
        Decimal(p) for p in re.search(r"filled 1 @ ([\d.]+) · stop \d+ @ ([\d.]+)", out).groups()
    )
    assert stop == fill + ticks * suite.instrument.tick_size
    await cells.ok("%flatten")


async def test_unarmed_live_account_is_refused_and_arming_caps_size(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    out = await cells.connect(sim, "--account LIVE-ACCT-1")
    assert "NOT paper" in out and "%px_arm LIVE-ACCT-1" in out
    sim.clock.speed = 1e-9  # frozen market: positions change only by our orders
    for code in (
        "%bracket MNQ buy 1 --stop 8t --target 16t",
        "%%bracket --stop 8t\nMNQ buy 1\n",
        "%flatten",
        "%cancel all",
    ):
        err = await cells.usage_error(code)
        assert "refused" in err and "not armed" in err and "Nothing was sent" in err, err
    assert sim.request_count(PLACE) == 0 and sim.request_count(CANCEL) == 0

    await cells.usage_error("%px_arm NOBODY --max-size 2")
    await cells.usage_error("%px_arm LIVE-ACCT-1 --max-size 0")
    out = await cells.ok("%px_arm LIVE-ACCT-1 --max-size 2")
    assert "ARMED" in out and "up to 2 contract(s)" in out
    err = await cells.usage_error("%bracket MNQ buy 3 --stop 8t --target 16t")
    assert "exceeds the armed maximum of 2" in err
    err = await cells.usage_error("%%bracket --stop 8t\nMNQ buy 1\nMNQ buy 2\n")
    assert "position of 3 contracts" in err
    assert sim.request_count(PLACE) == 0

    out = await cells.ok("%bracket MNQ buy 2 --stop 8t --target 16t")
    assert BRACKET_IDS.search(out) and sim.request_count(PLACE) == 1
    err = await cells.usage_error("%bracket MNQ buy 1 --stop 8t --target 16t")
    assert "position of 3 contracts" in err
    out = await cells.ok("%bracket MNQ sell 1 --stop 8t --target 16t")  # reduces: allowed
    assert sim.request_count(PLACE) == 2

    assert "disarmed" in await cells.ok("%px_disarm LIVE-ACCT-1")
    await cells.usage_error("%flatten")
    await cells.ok("%px_arm LIVE-ACCT-1 --max-size 2")
    # the gateway (and the simulator) refuse API cancels on live accounts: flatten closes the
    # position and then says loudly which bracket legs are still working
    err = await cells.usage_error("%flatten")
    assert "STILL WORKING after %flatten" in err and "Live accounts not supported" in err
    assert "position closed (was +1)" in cells.out
    async with ProjectX.for_simulator(sim, account_name="LIVE-ACCT-1") as client:
        assert await client.get_positions() == []

    sim.clock.speed = 20.0
    # the paper account of the same simulator needs no arming; reconnecting drops every arm
    out = await cells.ok("%px_connect --sim sim --account PRAC-V2-SIM-1 --timeframes 1min")
    assert "paper" in out and len(session_of(shell).arming) == 0
    assert "no arming needed" in await cells.ok("%px_arm PRAC-V2-SIM-1 --max-size 1")


async def test_env_gateway_needs_arming_even_for_simulated_accounts(
    sim: Simulator,
    shell: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through --env the magics cannot know the gateway is a simulator: practice and evaluation
    accounts report simulated there too, so every account needs arming."""
    cells = Cells(shell, capsys)
    for name in ("USERNAME", "API_KEY", "API_URL", "USER_HUB_URL", "MARKET_HUB_URL"):
        monkeypatch.delenv(f"PROJECTX_{name}", raising=False)
    err = await cells.usage_error("%px_connect --env")
    assert "missing credentials" in err and "PROJECTX_API_KEY" in err
    env = {"USERNAME": sim.username, "API_KEY": sim.api_key, "API_URL": sim.api_url,
           "USER_HUB_URL": sim.user_hub_url, "MARKET_HUB_URL": sim.market_hub_url}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(f"PROJECTX_{name}", value)
    out = await cells.ok("%px_connect --env --account PRAC-V2-SIM-1 --timeframes 1min")
    assert f"gateway {sim.api_url}" in out and "NOT paper" in out and sim.api_key not in out
    sim.clock.speed = 1e-9
    err = await cells.usage_error("%bracket MNQ buy 1 --stop 8t --target 16t")
    assert "is on a real gateway" in err and "not armed" in err
    assert sim.request_count(PLACE) == 0
    await cells.ok("%px_arm PRAC-V2-SIM-1 --max-size 1")
    assert BRACKET_IDS.search(await cells.ok("%bracket MNQ buy 1 --stop 8t --target 16t"))
    assert "position closed (was +1)" in await cells.ok("%flatten")
    await no_working_orders_or_positions(sim, "PRAC-V2-SIM-1")


async def test_awaited_in_place_or_started_in_background(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    await cells.connect(sim)
    # inside a def the transformer cannot await: the magic returns a MagicCall
    await cells.ok("def show():\n    found = %positions\n    return found\ncall = show()")
    call = shell.user_ns["call"]
    assert isinstance(call, MagicCall)
    assert await call == [] and "no open positions" in capsys.readouterr().out
    # awaited later in another cell
    await cells.ok(
        "def buy():\n    b = %bracket MNQ buy 1 --stop 8t --target 16t\n    return b\nb = buy()"
    )
    await cells.ok("result = await b")
    assert shell.user_ns["result"].stop_order_id is not None
    # never awaited: it runs once the cell yields and reports a failure when done
    await cells.ok("def bad():\n    c = %flatten ZZZZ\n    return c\nc = bad()")
    background = shell.user_ns["c"]
    await asyncio.sleep(0)  # one loop turn: the cell has yielded, the call starts on its own
    with pytest.raises(Exception, match="unknown symbol"):
        await background
    assert "UsageError: unknown symbol 'ZZZZ'" in capsys.readouterr().err
    await cells.ok("%flatten")


def test_transformer_awaits_only_where_it_compiles() -> None:
    shell = new_shell()
    try:
        transform = AwaitMagics(shell, magics=None)
        lines = [
            "get_ipython().run_line_magic('bracket', 'MNQ buy 1 --stop 8t')\n",
            "x = get_ipython().run_line_magic('positions', '')\n",
            "get_ipython().run_line_magic('px_doctor', '')\n",
        ]
        assert transform(lines) == lines  # no running loop here: nothing to await on

        async def inside_loop() -> None:
            assert transform(lines) == [
                "await get_ipython().run_line_magic('bracket', 'MNQ buy 1 --stop 8t');\n",
                "x = await get_ipython().run_line_magic('positions', '')\n",
                lines[2],
            ]
            in_def = ["def f():\n", "    get_ipython().run_line_magic('orders', '')\n"]
            assert transform(in_def) == in_def
            shell.autoawait = False
            assert transform(lines) == lines

        asyncio.run(inside_loop())
    finally:
        InteractiveShell.clear_instance()


def test_terminal_path_runs_on_a_background_loop(capsys: pytest.CaptureFixture[str]) -> None:
    """No running loop (IPython terminal): magics block on the shared sync-bridge loop that
    keeps the connection alive between commands; unloading closes the connection."""
    threads_before = set(threading.enumerate())
    shell = new_shell()
    try:
        shell.run_line_magic("load_ext", "projectx_lab")
        outputs = []
        for code in ("%px_connect --speed 1 --timeframes 1min",  # legs far off: none fills
                     "%bracket MNQ sell 1 --stop 400t --target 400t", "%flatten"):  # fmt: skip
            result = shell.run_cell(code)
            out, err = capsys.readouterr()
            assert result.success, err
            outputs.append(out)
        assert re.search(r"entry \d+ · stop \d+ \(400t\) · target \d+", outputs[1])
        assert "filled 1 @" in outputs[1]
        assert "position closed (was -1)" in outputs[2]
        session = session_of(shell)
        assert session.loop is not None and session.connected
    finally:
        unload_ipython_extension(shell)
        InteractiveShell.clear_instance()
        shutdown()  # the shared background loop thread
    assert not session.connected
    leaked = [t for t in set(threading.enumerate()) - threads_before if t.is_alive()]
    assert leaked == []


def test_reconnecting_on_another_loop_releases_the_old_connection(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shell = new_shell()
    try:
        shell.run_line_magic("load_ext", "projectx_lab")
        assert shell.run_cell("%px_connect --timeframes 1min").success  # on the sync bridge
        session = session_of(shell)
        bridge_sim = session.sim

        async def in_a_kernel_loop() -> None:
            assert not (await run(shell, "%orders")).success
            assert "belongs to another event loop" in capsys.readouterr().err
            assert (await run(shell, "%px_connect --timeframes 1min")).success
            assert session.loop is asyncio.get_running_loop() and not bridge_sim.running
            assert (await run(shell, "%px_disconnect")).success

        asyncio.run(in_a_kernel_loop())
    finally:
        unload_ipython_extension(shell)
        InteractiveShell.clear_instance()
        shutdown()


def test_doctor_warns_about_each_known_trap(monkeypatch: pytest.MonkeyPatch) -> None:
    good = {"ipykernel": "7.4.0", "plotly": "6.1.0", "anywidget": "0.9.18", "ipywidgets": "8.1.7"}
    assert doctor.diagnose(versions=good, loop=None, env={}, modules={}).ok
    traps = {
        "ipykernel": ("7.3.2", "7.4"),
        "plotly": ("5.24.1", "plotly 5.24.1 < 6"),
        "ipywidgets": ("7.8.5", "< 8"),
        "anywidget": (None, "anywidget is not installed"),
    }
    for package, (version, expected) in traps.items():
        report = doctor.diagnose(versions={**good, package: version}, loop=None, env={})
        assert len(report.warnings) == 1 and expected in report.warnings[0], report.warnings
    monkeypatch.setattr(asyncio, "_nest_patched", True, raising=False)
    report = doctor.diagnose(versions=good, loop=None)
    assert ("loop patches", "nest_asyncio") in report.facts
    assert "archived nest_asyncio" in report.warnings[0]
    monkeypatch.setattr(asyncio, "_nest_asyncio2", object(), raising=False)
    report = doctor.diagnose(versions=good, loop=None)
    assert ("loop patches", "nest_asyncio2") in report.facts and report.ok
    frontends = {"VSCODE_PID": "VS Code", "SERVER_SOFTWARE": "Voila"}
    for var, name in frontends.items():
        assert doctor.guess_frontend({var: "voila/0.5"}, {}, None) == name


async def test_doctor_magic_reports_stack_and_connection(
    sim: Simulator, shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = Cells(shell, capsys)
    out = await cells.ok("%px_doctor")
    assert "ipykernel" in out and "plotly" in out and "not connected" in out
    await cells.connect(sim, "--account LIVE-ACCT-1")
    out = await cells.ok("%px_doctor")
    assert "not armed (order magics refused)" in out and "market connected" in out
    assert sim.api_key not in out and "LIVE-ACCT-1" in out
    shell.autoawait = False
    assert "autoawait is off" in await cells.ok("%px_doctor")
    shell.autoawait = True


@pytest.mark.parametrize(
    ("text", "leg"),
    [("8t", magic_args.Leg(ticks=8)), ("12T", magic_args.Leg(ticks=12)),
     ("21440.25", magic_args.Leg(price=Decimal("21440.25")))],
)  # fmt: skip
def test_leg_parsing(text: str, leg: magic_args.Leg) -> None:
    assert magic_args.parse_bracket(f"MNQ buy 1 --stop {text}").stop == leg


@pytest.mark.parametrize(
    ("pnl", "shown"),
    [(Decimal("-0"), "0.00"), (Decimal("-0.004"), "0.00"), (Decimal("0"), "0.00"),
     (Decimal("12.5"), "+12.50"), (Decimal("-8.5"), "-8.50"), (None, "—")],
)  # fmt: skip
def test_positions_pnl_has_no_signed_zero(pnl: Decimal | None, shown: str) -> None:
    """A short marked at its own price is worth -0 (a signed Decimal zero): `%positions` shows
    it, like any zero, as 0.00."""
    assert magic_format.money(pnl) == shown


@pytest.fixture(autouse=True)
def _no_shell_left() -> Iterator[None]:
    yield
    assert not InteractiveShell.initialized()
