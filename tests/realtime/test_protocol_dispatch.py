"""Record framing (split / packed / malformed records, str and bytes), the thread → loop
hand-off under a real producer thread, events and bounded streams."""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projectx_lab.realtime.dispatch import CallbackTasks, Event, ThreadHandoff
from projectx_lab.realtime.hub_protocol import RecordParser, encode_invocation
from projectx_lab.realtime.redact import redact, remember_secret, strip_token_from_url

RS = "\x1e"
records_strategy = st.lists(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
            st.text(max_size=20),
            st.none(),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
        max_size=4,
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(records=records_strategy, cuts=st.lists(st.integers(min_value=0), max_size=12),
       binary=st.booleans())  # fmt: skip
def test_parser_reassembles_any_framing(
    records: list[dict[str, Any]], cuts: list[int], binary: bool
) -> None:
    text = "".join(orjson.dumps(r).decode() + RS for r in records)
    wire: Any = text.encode() if binary else text
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    parser = RecordParser(binary=binary, on_malformed=lambda *a: pytest.fail(f"malformed {a}"))
    out: list[Any] = []
    for start, end in itertools.pairwise(points):
        out.extend(parser.feed(wire[start:end]))
    assert out == records


def test_parser_skips_malformed_records_and_keeps_the_rest() -> None:
    seen: list[tuple[str, str]] = []
    parser = RecordParser(binary=False, on_malformed=lambda *args: seen.append(args))
    frame = f'{{"a":1}}{RS}nope{RS}{RS}{{"b":2}}{RS}{{"c":'
    assert parser.feed(frame) == [{"a": 1}, {"b": 2}]
    assert parser.feed(f"3}}{RS}") == [{"c": 3}]
    assert [reason for reason, _ in seen] == ["invalid JSON record"]


def test_invocations_never_carry_headers() -> None:
    text = encode_invocation("7", "SubscribeOrders", [123])
    assert text.endswith(RS)
    assert orjson.loads(text[:-1]) == {
        "type": 1,
        "invocationId": "7",
        "target": "SubscribeOrders",
        "arguments": [123],
    }


def test_redaction_masks_tokens_and_urls() -> None:
    remember_secret("s3cr3t-token-value")
    assert "s3cr3t" not in redact("header Bearer s3cr3t-token-value and raw s3cr3t-token-value")
    assert (
        redact("wss://h/hubs/user?id=1&access_token=abc.def")
        == "wss://h/hubs/user?id=1&access_token=***"
    )
    clean, token = strip_token_from_url("https://h/hubs/user?x=1&access_token=abc")
    assert (clean, token) == ("https://h/hubs/user?x=1", "abc")


async def test_handoff_delivers_everything_in_order_with_few_wakeups() -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []
    done = asyncio.Event()
    total = 50_000

    class CountingHandoff(ThreadHandoff):
        wakeups = 0

        def _drain(self) -> None:
            self.wakeups += 1
            super()._drain()

    def consume(item: int, stamp: int) -> None:
        received.append(item)
        if len(received) == total:
            done.set()

    handoff = CountingHandoff(loop, consume)

    def produce() -> None:
        for i in range(total):
            handoff.push(i, 0)

    thread = threading.Thread(target=produce)
    thread.start()
    async with asyncio.timeout(10):
        await done.wait()
    thread.join()
    assert received == list(range(total))
    assert handoff.wakeups < total / 10  # batched: far fewer loop wake-ups than items


async def test_handoff_holds_the_socket_thread_when_the_loop_falls_behind() -> None:
    """A busy loop (a long notebook cell) must not let the queue grow without bound: the
    transport thread waits at the limit, and nothing is lost or reordered once the loop runs."""
    loop = asyncio.get_running_loop()
    received: list[int] = []
    done = asyncio.Event()
    total, limit = 5_000, 100
    peak = 0

    def consume(item: int, stamp: int) -> None:
        received.append(item)
        if len(received) == total:
            done.set()

    handoff = ThreadHandoff(loop, consume, limit=limit)

    def produce() -> None:
        nonlocal peak
        for i in range(total):
            handoff.push(i, 0)
            peak = max(peak, len(handoff))

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join(timeout=0.5)  # blocks the loop on purpose: nothing can drain meanwhile
    assert thread.is_alive(), "the producer ran ahead of a blocked loop"
    assert len(handoff) == limit
    async with asyncio.timeout(10):
        await done.wait()
    await asyncio.to_thread(thread.join, 5)
    assert received == list(range(total))
    assert peak <= limit


async def test_handoff_close_releases_a_waiting_socket_thread() -> None:
    loop = asyncio.get_running_loop()
    handoff = ThreadHandoff(loop, lambda item, stamp: None, limit=10)
    thread = threading.Thread(target=lambda: [handoff.push(i, 0) for i in range(11)])
    thread.start()
    thread.join(timeout=0.2)  # the loop is held, so the 11th push waits for room
    assert thread.is_alive()
    handoff.close()
    thread.join(timeout=2)
    assert not thread.is_alive(), "close() left the transport thread blocked"


async def test_a_stream_made_after_its_source_stopped_ends_instead_of_hanging() -> None:
    event: Event[str, int] = Event("tick", CallbackTasks())
    event.close_streams()  # the manager or client behind it stopped
    async with asyncio.timeout(2):
        assert [item async for item in event.stream()] == []
    event.open_streams()  # restarted: streams are live again
    stream = event.stream()
    event.emit("X", 1)
    async with asyncio.timeout(2):
        assert await anext(stream) == ("X", 1)
    stream.close()


async def test_event_runs_sync_and_async_callbacks_and_survives_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = CallbackTasks()
    event: Event[str, int] = Event("GatewayQuote", tasks)
    seen: list[tuple[str, Any]] = []

    def broken(a: str, b: int) -> None:
        raise RuntimeError("boom")

    async def later(a: str, b: int) -> None:
        seen.append(("async", b))

    event += broken
    event += lambda a, b: seen.append(("sync", b))
    event += later
    for i in range(3):
        event.emit("X", i)
    await tasks.close(grace=1.0)
    assert [b for kind, b in seen if kind == "sync"] == [0, 1, 2]
    assert [b for kind, b in seen if kind == "async"] == [0, 1, 2]
    assert sum("raised" in r.getMessage() for r in caplog.records) == 1  # first failure only
    event -= broken
    assert len(event) == 2


async def test_stream_is_bounded_and_ends_on_close() -> None:
    event: Event[str, int] = Event("GatewayTrade", CallbackTasks())
    stream = event.stream(maxsize=3)
    for i in range(5):
        event.emit("X", i)
    assert stream.dropped == 2
    stream.close()
    assert [b async for _, b in stream] == [2, 3, 4]
    assert len(event) == 0
