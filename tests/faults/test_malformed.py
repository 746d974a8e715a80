"""Malformed and unexpected frames from the server: each kind logged once, skipped, both
streams continue without a reconnect; extra fields pass through."""

from __future__ import annotations

import pytest

from projectx_lab.testing import market


@pytest.mark.parametrize("transport", ["signalrcore", "native"])
async def test_malformed_frames_are_logged_once_and_skipped(make_rig, transport: str) -> None:
    rig = await make_rig(transport=transport)
    report = await market.malformed_stream(rig, rounds=3)
    kinds = sum(len(frames) for frames in market.malformed_frames("C", 1).values())
    assert report.frames == 3 * kinds
    assert report.unlogged == [], "kinds never logged"
    assert report.warnings <= kinds, "a kind was logged more than once"
    assert report.errors == 0, "an error (traceback) was logged"
    assert report.reconnects == 0
    assert report.market_continued and report.user_continued
    assert report.extra_fields_delivered == 3
