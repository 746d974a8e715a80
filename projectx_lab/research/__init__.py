"""Research tools: a cached history store, indicators as polars expressions, session recording
and replay, strategies on paper, and a risk guard."""

from .backtest_report import PaperResult
from .history import CACHE_ENV, HistoryStore, default_cache_dir
from .indicators import add_indicators, atr, bollinger, ema, macd, rsi, sma, vwap
from .lockstep import Lockstep, LockstepTimeout
from .paper import recording, run_paper, synthetic
from .recorder import RecordingWriter, SessionRecorder
from .replay import Recording
from .risk import Breach, RiskGuard, RiskLimitError
from .strategy import Bar, SmaCross, Strategy, StrategyError, StrategyRuntime

__all__ = [
    "CACHE_ENV",
    "Bar",
    "Breach",
    "HistoryStore",
    "Lockstep",
    "LockstepTimeout",
    "PaperResult",
    "Recording",
    "RecordingWriter",
    "RiskGuard",
    "RiskLimitError",
    "SessionRecorder",
    "SmaCross",
    "Strategy",
    "StrategyError",
    "StrategyRuntime",
    "add_indicators",
    "atr",
    "bollinger",
    "default_cache_dir",
    "ema",
    "macd",
    "recording",
    "rsi",
    "run_paper",
    "sma",
    "synthetic",
    "vwap",
]
