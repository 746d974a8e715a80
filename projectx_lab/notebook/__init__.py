"""Notebook layer: live widgets, the sync/loop bridge, per-cell ownership and rich reprs.

Names load on first use, so `import projectx_lab.notebook` (and the reprs the models call)
stays light; plotly and ipywidgets load only when a widget is made.

```python
from projectx_lab.notebook import CandlestickChart, DepthChart, DomLadder
chart = CandlestickChart(suite.data, "1min", bars=200, overlays=suite, indicators=["vwap"])
```
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_NAMES = {
    "CandlestickChart": "charts",
    "DepthChart": "depth",
    "DomLadder": "depth",
    "LadderRow": "depth",
    "SMA": "indicators",
    "EMA": "indicators",
    "VWAP": "indicators",
    "LiveFigure": "livefigure",
    "FrameThrottle": "throttle",
    "Level": "overlays",
    "LoopThread": "loop",
    "CellRegistry": "loop",
    "Subscription": "loop",
    "background_loop": "loop",
    "cell_scope": "loop",
    "enable_nested": "loop",
    "nested_enabled": "loop",
    "on": "loop",
    "registry": "loop",
    "replace_previous": "loop",
    "run": "loop",
    "shutdown": "loop",
    "spawn": "loop",
    "track": "loop",
    "Table": "reprs",
    "table": "reprs",
}
__all__ = [
    "EMA",
    "SMA",
    "VWAP",
    "CandlestickChart",
    "CellRegistry",
    "DepthChart",
    "DomLadder",
    "FrameThrottle",
    "LadderRow",
    "Level",
    "LiveFigure",
    "LoopThread",
    "Subscription",
    "Table",
    "background_loop",
    "cell_scope",
    "enable_nested",
    "nested_enabled",
    "on",
    "registry",
    "replace_previous",
    "run",
    "shutdown",
    "spawn",
    "table",
    "track",
]

if TYPE_CHECKING:
    from .charts import CandlestickChart
    from .depth import DepthChart, DomLadder, LadderRow
    from .indicators import EMA, SMA, VWAP
    from .livefigure import LiveFigure
    from .loop import (
        CellRegistry,
        LoopThread,
        Subscription,
        background_loop,
        cell_scope,
        enable_nested,
        nested_enabled,
        on,
        registry,
        replace_previous,
        run,
        shutdown,
        spawn,
        track,
    )
    from .overlays import Level
    from .reprs import Table, table
    from .throttle import FrameThrottle


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'projectx_lab.notebook' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
