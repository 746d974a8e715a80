"""Timeframe parsing and alignment."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projectx_lab.managers.timeframes import Timeframe

NS = 1_000_000_000


CASES = [
    ("1min", 1, "minute"), ("1m", 1, "minute"), ("5 minutes", 5, "minute"),
    ("15s", 15, "second"), ("1h", 1, "hour"), ("4hr", 4, "hour"),
    ("1d", 1, "day"), ("1w", 1, "week"), ("1mo", 1, "month"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "number", "unit"), CASES)
def test_parse(text, number, unit):
    tf = Timeframe.parse(text)
    assert (tf.number, tf.unit) == (number, unit)


@pytest.mark.parametrize("bad", ["", "0min", "5 parsecs", "min", "-1m"])
def test_unknown_timeframe_names_the_fix(bad):
    with pytest.raises(ValueError, match=r"e\.g\. '15s'"):
        Timeframe.parse(bad)


def ns(*args):
    return int(datetime(*args, tzinfo=UTC).timestamp()) * NS


def test_alignment_day_week_month():
    ts = ns(2026, 11, 25, 22, 13, 7)  # a Wednesday
    assert Timeframe.parse("1d").bucket(ts) == ns(2026, 11, 25)
    assert Timeframe.parse("1w").bucket(ts) == ns(2026, 11, 23)  # Monday
    assert Timeframe.parse("1mo").bucket(ts) == ns(2026, 11, 1)
    assert Timeframe.parse("1mo").next_bucket(ns(2026, 12, 1)) == ns(2027, 1, 1)
    assert Timeframe.parse("5min").bucket(ts) == ns(2026, 11, 25, 22, 10)
    assert Timeframe.parse("1min").gateway_unit == 2
