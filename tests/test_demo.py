"""`projectx-lab demo` end to end in a subprocess (plain output, as in CI logs): the bracket is
placed and filled, the position ends flat, nothing is left working, no thread is leaked, and
Ctrl-C takes the same clean-up path. Plus the live table and status line renderers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rich.console import Console

from projectx_lab.cli import build_parser
from projectx_lab.demo import (
    DemoOptions,
    DemoUsageError,
    Formats,
    Snapshot,
    plain_line,
    render_table,
)

DEMO = [sys.executable, "-m", "projectx_lab.cli", "demo", "--speed", "20"]
ANSI = re.compile(r"\x1b\[")


def run_demo(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [*DEMO, *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def assert_clean_end(out: str, err: str) -> None:
    assert "Traceback" not in out + err, err
    assert re.search(r"bracket placed: entry #\d+, stop loss #\d+, take profit #\d+", out), out
    assert re.search(r"entry #\d+ filled at [\d,]+\.\d\d", out), out
    assert "position: flat" in out, out
    assert re.search(r"end state\s+position flat, working orders 0", out), out
    assert "Simulator stopped." in out
    assert out.rstrip().endswith("Threads left behind: none"), out


def test_demo_runs_to_a_clean_finish_with_plain_output() -> None:
    result = run_demo("--seconds", "4")
    out = result.stdout
    assert result.returncode == 0, (out, result.stderr)
    assert_clean_end(out, result.stderr)
    assert not ANSI.search(out), "plain output (not a terminal) must carry no escape codes"
    status = [line for line in out.splitlines() if re.match(r"\[\s*\d+\.\d+s\]", line)]
    assert len(status) >= 2, out
    assert all(" bid " in line and " ask " in line and "trades/s" in line for line in status)
    assert re.search(r"Summary\n\s+simulated .+\n\s+tape\s+[\d,]+ trades", out), out
    # The flatten's own fill, or (in a fast market) the bracket leg that closed it first.
    closed_by_leg = re.search(r"fill: order #\d+ \((stop loss|take profit)\) 1 at", out)
    if closed_by_leg:
        assert "position: flat (a bracket leg closed it)" in out, out
    else:
        assert re.search(r"fill: order #\d+ \(close\) 1 at", out), out


def test_ctrl_c_flattens_and_exits_130() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*DEMO, "--seconds", "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # pytest-timeout bounds this if the line never comes
            seen.append(line)
            if line.startswith("position: long"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(seen) + out
    assert proc.returncode == 130, (out, err)
    assert "Interrupted: cleaning up" in out
    assert "Flattening" in out
    assert_clean_end(out, err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "1"], "seconds must be a number >= 3"),
        (["--seconds", "3", "--symbol", "NOPE"], "'NOPE'"),
    ],
)
def test_bad_options_are_a_clear_error(args: list[str], message: str) -> None:
    result = run_demo(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_options_checks() -> None:
    with pytest.raises(DemoUsageError, match="speed"):
        DemoOptions(speed=float("nan")).check()
    with pytest.raises(DemoUsageError, match="stop_ticks"):
        DemoOptions(stop_ticks=2).check()
    args = build_parser().parse_args(["demo", "--symbol", "MES", "--seconds", "12", "--seed", "3"])
    assert (args.symbol, args.seconds, args.speed, args.seed) == ("MES", 12.0, 10.0, 3)


def snapshot(position: int) -> Snapshot:
    t0 = datetime(2026, 10, 1, 14, 30, tzinfo=UTC)
    bars = [(t0.replace(minute=30 + i), 100.0 + i, 101.5 + i, 99.25 + i, 100.75 + i, 10 * i + 3)
            for i in range(3)]  # fmt: skip
    return Snapshot(
        elapsed=4.2, sim_time=t0.replace(minute=33), last=102.75, bars=bars, bid=102.5,
        ask=102.75, spread=0.25, imbalance=-0.125, trades_per_s=41.0, position=position,
        average=Decimal("101.25") if position else None,
        unrealized=Decimal("3.00") if position else None, realized_net=Decimal("-0.62"),
    )  # fmt: skip


def test_live_table_shows_book_bars_and_position() -> None:
    console = Console(record=True, width=120, force_terminal=True)
    console.print(render_table(snapshot(1), "MNQZ6", 10.0, Formats(Decimal("0.25"))))
    text = console.export_text()
    for expected in ("MNQZ6", "14:33:00 UTC", "102.50", "102.75", "0.25", "-0.12", "41.0",
                     "14:32 forming", "14:30", "long 1", "101.25", "+3.00", "-0.62"):  # fmt: skip
        assert expected in text, (expected, text)


def test_plain_line_for_logs() -> None:
    fmt = Formats(Decimal("0.25"))
    line = plain_line(snapshot(-2), fmt)
    assert line.startswith("[  4.2s] 14:33:00Z")
    assert "bid 102.50 ask 102.75 spread 0.25" in line
    assert "1m 14:32 O 102.00 H 103.50 L 101.25 C 102.75 V 23" in line
    assert "position short 2 @ 101.25 unrealized +3.00 realized -0.62" in line
    assert "position flat realized -0.62" in plain_line(snapshot(0), fmt)
