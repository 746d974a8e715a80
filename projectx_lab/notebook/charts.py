"""`CandlestickChart`: live candles of one timeframe on a plotly `FigureWidget`.

```python
chart = CandlestickChart(suite.data, "1min", bars=200, overlays=suite, indicators=["ema20", "vwap"])
chart          # display it; it keeps updating while the kernel is idle
```

A tick from the data manager only marks the chart dirty; a `FrameThrottle` redraws at most
`fps` times a second, reading the newest bars through a `BarWindow` and sending them inside one
`batch_update`: one plotly update per frame, which plotly's widget sends as 4 comm messages (the
update, its reset to null, two edit counters; measured ~1.4 kB a frame for 60 candles with
volume and an SMA). A frame costs O(window) no matter how much history the manager holds, and
ticks cost nothing between frames. When the data feed stops (the suite closed), the chart stops
too and says so. The x axis is a date axis fed aware datetimes in the manager's time zone
(never epoch numbers, which would turn it linear). Overlays draw the user's working orders and
the open position's entry/stop/target as horizontal lines that move when orders change. Late
views see the current chart (see `livefigure.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import plotly.graph_objects as go
import polars as pl

from .indicators import Indicator, parse_indicator
from .livefigure import LiveFigure
from .loop import track
from .overlays import Level, TradeLevels, split_sources
from .throttle import DEFAULT_FPS, FrameThrottle, ThrottledView, check_source
from .window import BarWindow

_UP, _DOWN = "#26a69a", "#ef5350"
_PALETTE = ("#ff9800", "#3f51b5", "#9c27b0", "#795548", "#009688", "#607d8b")
_LEVEL_COLOR = {"entry": "#455a64", "stop": "#e53935", "target": "#43a047"}
_SIDE_COLOR = ("#1e88e5", "#fb8c00")  # working buy, sell orders
_FULL_LAYOUT = ("shapes", "annotations", "xaxis", "yaxis", "yaxis2")
_FEED_ENDED = "the data feed stopped (suite closed, or data.stop_realtime_feed())"


class CandlestickChart(ThrottledView):
    """Live candlestick chart of `data.series(timeframe)`, the newest `bars` bars.

    `overlays`: a TradingSuite, or an OrderManager and/or PositionManager (list), whose working
    orders and position are drawn as levels. `indicators`: SMA/EMA/VWAP objects or strings like
    "sma20", "ema50", "vwap". `fps`: most redraws per second (changes are coalesced).
    Show it as the last expression of a cell (or `display(chart)`); `chart.figure` is the
    widget for layouts, `chart.window` the bar mirror it draws from (indicator lookback
    included). `close()` stops it (a re-run cell does that for you).
    """

    def __init__(
        self,
        data: Any,
        timeframe: str = "1min",
        bars: int = 200,
        *,
        volume: bool = True,
        overlays: Any = None,
        indicators: Iterable[Indicator | str] | str = (),
        fps: float = DEFAULT_FPS,
        height: int = 480,
        title: str | None = None,
    ) -> None:
        if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
            raise ValueError(f"bars must be a positive int, got {bars!r}")
        if isinstance(height, bool) or not isinstance(height, int) or height < 100:
            raise ValueError(f"height must be an int >= 100 (pixels), got {height!r}")
        specs = [indicators] if isinstance(indicators, str) else list(indicators)
        self.indicators: list[Indicator] = [parse_indicator(s) for s in specs]
        orders, positions = split_sources(overlays)
        self.series = data.series(timeframe)
        contract = data.contract_id
        if (orders is not None or positions is not None) and contract is None:
            raise ValueError("overlays need an initialized data manager (await data.initialize())")
        self.timeframe = self.series.timeframe.label
        name = f"CandlestickChart[{contract or data.instrument_symbol} {self.timeframe}]"
        check_source(data.on_new_bar, name, _FEED_ENDED)
        self.data = data
        self.bars = bars
        lookback = max((ind.lookback for ind in self.indicators), default=0)
        self.window = BarWindow(self.series, bars + lookback, ZoneInfo(data.timezone))
        self.window.on_evict(self._evicted)
        self._carry: list[Any] = [None] * len(self.indicators)
        self._volume = bool(volume)
        self._drawn_shape = -1
        self._drawn_levels: tuple[Level, ...] | None = None
        self.drawn_version = -1
        self._levels: TradeLevels | None = None
        self._closed = False
        self.throttle = FrameThrottle(self._draw, fps=fps, name=name)  # needs a running loop
        self.figure = self.widget = LiveFigure(
            data=self._traces(),
            layout=self._layout(
                height, title or f"{_display_name(data)} · {self.timeframe}", overlays
            ),
            on_view=self.throttle.resync,
        )
        try:
            if orders is not None or positions is not None:
                self._levels = TradeLevels(
                    contract, self.throttle.mark, orders=orders, positions=positions
                )
            data.on_tick += self._on_tick
            self._draw(False)
        except BaseException:
            self.close()
            raise
        self._follow(data.on_new_bar, _FEED_ENDED)
        track(self)

    # -- figure construction ---------------------------------------------------------------

    def _traces(self) -> list[Any]:
        traces: list[Any] = [
            go.Candlestick(
                x=[], open=[], high=[], low=[], close=[], name=self.timeframe,
                increasing_line_color=_UP, decreasing_line_color=_DOWN, showlegend=False,
            )
        ]  # fmt: skip
        if self._volume:
            traces.append(
                go.Bar(
                    x=[],
                    y=[],
                    name="volume",
                    yaxis="y2",
                    marker_color="#90a4ae",
                    opacity=0.6,
                    showlegend=False,
                )
            )
        for i, ind in enumerate(self.indicators):
            traces.append(
                go.Scatter(
                    x=[],
                    y=[],
                    name=ind.name,
                    mode="lines",
                    line={"width": 1.4, "color": _PALETTE[i % len(_PALETTE)]},
                )
            )
        return traces

    def _layout(self, height: int, title: str, overlays: Any) -> dict[str, Any]:
        layout: dict[str, Any] = {
            "height": height,
            "margin": {"l": 10, "r": 140 if overlays is not None else 10, "t": 36, "b": 28},
            "title": {"text": title, "x": 0.01, "font": {"size": 14}},
            "xaxis": {"type": "date", "rangeslider": {"visible": False}},
            "yaxis": {"domain": [0.26, 1.0] if self._volume else [0.0, 1.0], "side": "right"},
            "uirevision": "projectx-lab",  # keep the user's zoom and pan across updates
            "showlegend": bool(self.indicators),
            "legend": {"orientation": "h", "x": 0.25, "y": 1.06},
        }
        if self._volume:
            layout["yaxis2"] = {"domain": [0.0, 0.2], "showgrid": False, "side": "right"}
        return layout

    # -- live path -------------------------------------------------------------------------

    def _on_tick(self, tick: Any, contract_id: str) -> None:
        self.throttle.mark()

    def _evicted(self, bar: tuple[int, float, float, float, float, int]) -> None:
        carry = self._carry
        for i, ind in enumerate(self.indicators):
            carry[i] = ind.evict(carry[i], bar)

    def _draw(self, full: bool) -> None:
        window = self.window
        t, o, h, low, c, v = window.read()  # evictions reach the indicators' carry first
        if window.rebased and self.indicators:
            before = window.history_before()
            self._carry = [ind.carry(before) for ind in self.indicators]
        shown = slice(max(0, len(t) - self.bars), None)
        fig = self.figure
        traces = fig.data
        with fig.batch_update():
            if window.shape != self._drawn_shape:
                x = window.times(self.bars)
                for trace in traces:
                    trace.x = x
                self._drawn_shape = window.shape
            candle = traces[0]
            candle.open, candle.high = o[shown], h[shown]
            candle.low, candle.close = low[shown], c[shown]
            k = 1
            if self._volume:
                traces[1].y = v[shown].astype(np.int32)
                k = 2
            if self.indicators:
                frame = pl.DataFrame(
                    {"t": t, "open": o, "high": h, "low": low, "close": c, "volume": v}
                )
                for i, ind in enumerate(self.indicators):
                    traces[k + i].y = ind.compute(frame, self._carry[i])[shown]
            if self._levels is not None:
                levels = self._levels.levels()
                if levels != self._drawn_levels:
                    fig.layout.shapes = [_shape(lv) for lv in levels]
                    fig.layout.annotations = [_label(lv) for lv in levels]
                    self._drawn_levels = levels
        self.drawn_version = window.version
        if full:
            fig.send_full(_FULL_LAYOUT)

    # -- public controls -------------------------------------------------------------------

    @property
    def levels(self) -> tuple[Level, ...]:
        """The overlay levels as last drawn (empty without overlays)."""
        return self._drawn_levels or ()

    def _detach(self) -> None:
        self.data.on_tick -= self._on_tick
        if self._levels is not None:
            self._levels.close()

    def _show_stopped(self) -> None:
        self.figure.note_stopped()

    def __repr__(self) -> str:
        return (
            f"CandlestickChart({self.data.contract_id or self.data.instrument_symbol} "
            f"{self.timeframe}, bars={self.bars}, {self._state()})"
        )


def _display_name(data: Any) -> str:
    """The contract's name ("MNQZ6") when the manager has loaded it, else its id or symbol."""
    name = getattr(data.instrument, "name", None)
    return name or data.contract_id or data.instrument_symbol


def _color(level: Level) -> str:
    return _LEVEL_COLOR.get(level.role) or _SIDE_COLOR[level.side]


def _shape(level: Level) -> dict[str, Any]:
    dash = "dot" if level.pending else ("solid" if level.role in ("entry", "order") else "dash")
    return {
        "type": "line", "name": level.key, "xref": "paper", "x0": 0, "x1": 1,
        "yref": "y", "y0": level.price, "y1": level.price,
        "line": {"color": _color(level), "width": 1.2, "dash": dash},
    }  # fmt: skip


def _label(level: Level) -> dict[str, Any]:
    return {
        "name": level.key, "xref": "paper", "x": 1.0, "xanchor": "left", "xshift": 40,
        "yref": "y", "y": level.price, "text": level.label, "showarrow": False,
        "font": {"size": 10, "color": _color(level)}, "bgcolor": "rgba(255,255,255,0.85)",
    }  # fmt: skip
