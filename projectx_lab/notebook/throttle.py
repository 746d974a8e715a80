"""Frame pacing for live widgets: many change notifications, at most `fps` redraws per second.

Manager events call `mark()` (one attribute test per event once a frame is pending); one task on
the loop that created the throttle sleeps out the rest of the frame interval, then calls
`draw(full)` once for everything that changed meanwhile. Widgets are therefore only touched
from that loop. `resync()` (safe from any thread) asks the next frame to send the full state,
for views that attached late.

A widget follows its source's end: an `Event` whose streams close when the source stops (the
data manager's feed, the real-time connection). It is refused on a stopped source, and stops
(says why, refuses `next_frame()` at once) when its source stops later.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import re
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

log = logging.getLogger("projectx_lab.notebook")
DEFAULT_FPS = 8.0


def check_kernel() -> None:
    """Warn once if the running ipykernel is older than 7.4: earlier 7.x run widget callbacks
    (a view attaching, a zoom) on a side thread, off the loop these widgets live on."""
    global _kernel_checked
    kernel = sys.modules.get("ipykernel")
    if kernel is None or _kernel_checked:
        return
    _kernel_checked = True
    version = str(getattr(kernel, "__version__", "0"))
    numbers = [int(p) for p in re.findall(r"\d+", version)[:2]] + [0, 0]
    if tuple(numbers[:2]) < (7, 4):
        warnings.warn(
            f"ipykernel {version} runs widget callbacks off the kernel's event loop; the live "
            "widgets need ipykernel >= 7.4 (pip install -U 'ipykernel>=7.4')",
            RuntimeWarning,
            stacklevel=3,
        )


_kernel_checked = False


def check_fps(fps: object) -> float:
    """A frame rate in (0, 120] as float, else ValueError."""
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps <= 120:
        raise ValueError(f"fps must be a number in (0, 120], got {fps!r}")
    return float(fps)


class FrameThrottle:
    """Coalesces `mark()` calls into at most `fps` calls of `draw(full)` per second."""

    __slots__ = (
        "_dirty",
        "_draw",
        "_ended",
        "_full",
        "_interval",
        "_last",
        "_loop",
        "_task",
        "_thread",
        "_waiters",
        "_wake",
        "errors",
        "frames",
        "name",
    )

    def __init__(self, draw: Callable[[bool], None], *, fps: float = DEFAULT_FPS, name: str):
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"{name} must be created on a running event loop (in Jupyter: in any cell; in "
                "a script: inside async code, e.g. via projectx_lab.notebook.run)"
            ) from None
        self._interval = 1.0 / check_fps(fps)
        check_kernel()
        self.name = name
        self._ended = ""  # how it ended ("is closed", "stopped: ..."), once it has
        self._thread = threading.get_ident()
        self._draw = draw
        self._dirty = False
        self._full = False
        self._last = -math.inf
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[int]] = []
        self.frames = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = self._loop.create_task(self._run(), name=name)

    @property
    def fps(self) -> float:
        return 1.0 / self._interval

    @fps.setter
    def fps(self, value: float) -> None:
        self._interval = 1.0 / check_fps(value)

    @property
    def closed(self) -> bool:
        return self._task is None

    @property
    def pending(self) -> bool:
        """True while a change is marked but not drawn yet."""
        return self._dirty or self._full

    def mark(self) -> None:
        """Something changed: draw it with the next frame (loop thread only; hot path)."""
        if not self._dirty:
            if threading.get_ident() != self._thread:  # checked once per frame, not per event
                raise RuntimeError(
                    f"{self.name} got an update from another thread than its event loop's: "
                    "create widgets on the loop that runs the suite (in Jupyter: in a cell)"
                )
            self._dirty = True
            self._wake.set()

    def resync(self) -> None:
        """Make the next frame send the full state (any thread)."""
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(self.resync)
            return
        self._full = True
        self.mark()

    def flush(self) -> None:
        """Draw now whatever is pending (loop thread)."""
        if self._task is None:
            return
        full, self._full = self._full, False
        self._dirty = False
        try:
            self._draw(full)
        except Exception:
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.exception("%s: drawing a frame failed (%d so far)", self.name, self.errors)
        self._last = self._loop.time()
        self.frames += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(self.frames)

    async def next_frame(self, timeout: float | None = 10.0) -> int:
        """Wait until the next frame has been drawn; returns the frame count. Raises at once
        once the throttle has ended (closed, or its source stopped)."""
        if self._task is None:
            raise RuntimeError(f"{self.name} {self._ended}")
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            raise TimeoutError(
                f"{self.name}: no frame within {timeout:g} s (nothing changed meanwhile)"
            ) from None

    async def _run(self) -> None:
        loop = self._loop
        while True:
            await self._wake.wait()
            self._wake.clear()
            delay = self._last + self._interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing: everything marked meanwhile joins this frame
            if self._dirty or self._full:
                self.flush()

    def close(self, why: str = "is closed") -> None:
        """Stop drawing; pending and later `next_frame()` calls raise `RuntimeError` saying
        `why` ("is closed", "stopped: ...")."""
        self._ended = why
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError(f"{self.name} {why}"))


def check_source(event: Any, what: str, why: str) -> None:
    """Refuse to make widget `what` on a stopped source (`event`'s streams have ended)."""
    if not event.streams_open:
        raise RuntimeError(f"cannot create {what}: {why}; make it from an open suite")


class ThrottledView:
    """Controls every live widget shares: frame rate, frames drawn, draw-now, wait for a frame,
    display, close, and stopping when the source stops."""

    throttle: FrameThrottle
    widget: Any
    _closed: bool
    stopped: str | None = None  # why it no longer draws, once its source stopped
    _source: Any = None  # the stream whose end says the source stopped
    _follower: asyncio.Task[None] | None = None  # held: the loop keeps only weak references

    @property
    def fps(self) -> float:
        return self.throttle.fps

    @fps.setter
    def fps(self, value: float) -> None:
        self.throttle.fps = value

    @property
    def frames(self) -> int:
        """Frames drawn so far."""
        return self.throttle.frames

    @property
    def closed(self) -> bool:
        return self._closed

    def refresh(self) -> None:
        """Draw pending changes now instead of at the next frame."""
        self.throttle.flush()

    async def next_frame(self, timeout: float | None = 10.0) -> int:
        """Wait for the next frame; returns the frame count. Raises `RuntimeError` at once
        when the widget is closed or stopped."""
        return await self.throttle.next_frame(timeout)

    def _follow(self, event: Any, why: str) -> None:
        """Stop, saying `why`, when `event`'s streams end (its source stopped); one idle task,
        woken only by that event's own (rare) emissions."""
        self._source = event.stream(1)
        self._follower = asyncio.get_running_loop().create_task(
            self._stop_at_end(why), name=f"{self.throttle.name} source"
        )

    async def _stop_at_end(self, why: str) -> None:
        """Drain the source's rare emissions until its stream ends, then stop."""
        async for _ in self._source:
            pass
        self._stop(why)

    def _stop(self, why: str) -> None:
        """The source stopped: detach, end the frame task, tell the views still open."""
        if self._closed or self.stopped is not None:
            return
        self.stopped = why
        self._detach()
        self.throttle.close(f"stopped: {why}")
        self._show_stopped()

    def _detach(self) -> None:
        """Disconnect from the managers (idempotent)."""
        raise NotImplementedError

    def _show_stopped(self) -> None:
        """Mark the last frame, still shown by open views, as final."""
        raise NotImplementedError

    def close(self) -> None:
        """Stop updating, disconnect from the managers and close the widget."""
        if self._closed:
            return
        self._closed = True
        if self._source is not None:
            self._source.close()  # ends the follower, which finds the widget closed
        self._detach()
        self.throttle.close()
        self.widget.close()

    def _state(self) -> str:
        """The state part of the repr: rate and frames, "stopped: why" or "closed"."""
        if self._closed:
            return "closed"
        if self.stopped is not None:
            return f"stopped: {self.stopped}"
        return f"{self.fps:g} fps, {self.frames} frames"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget; once stopped or closed, a line saying so."""
        if self._closed or self.stopped is not None:
            text = repr(self)
            return {"text/plain": text, "text/html": f"<code>{html.escape(text)}</code>"}
        return self.widget._repr_mimebundle_(**kwargs)
