"""`%load_ext projectx_lab`: the trading magics, and how a synchronous magic finishes async work.

IPython calls magics synchronously; ours do network I/O on the event loop. Three cases:

* Jupyter (ipykernel 7.4+, autoawait on): a post-input transformer rewrites each line calling one
  of our I/O magics into `await get_ipython().run_line_magic(...)`, so IPython runs the cell as a
  coroutine on the kernel's loop — the same path as any top-level `await`. The magic finishes
  inside its cell, its output and errors land there, and the loop keeps serving streams between
  cells. Only applied when a loop is running at transform time and the rewritten cell compiles.
* Anywhere else a loop is running (a magic inside a `def`, `%autoawait off`, `run_line_magic`
  from code): the magic returns a `MagicCall`. `await` it for the result, or leave it: it starts
  on the loop once the cell yields and prints its outcome when done.
* No loop running in this thread (IPython terminal, scripts): the magic blocks while its
  coroutine runs on the shared background loop of `loop.py` (the sync bridge), which keeps the
  connection alive between commands; use `projectx_lab.notebook.run(...)` with what it returns.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sys
import traceback
from collections.abc import Callable, Coroutine, Generator
from typing import Any

ASYNC_MAGICS = frozenset({"px_connect", "px_disconnect", "bracket", "flatten", "positions",
                          "orders", "cancel", "px_arm"})  # fmt: skip
_MAGIC_CALL = re.compile(
    r"^(?P<head>\s*(?P<target>[^=#'\"()]+?=\s*)?)"
    r"(?P<call>get_ipython\(\)\.run_(?:line|cell)_magic\((?P<q>['\"])(?P<name>\w+)(?P=q),.*?)"
    r"(?P<nl>\n?)$",
    re.DOTALL,
)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics and the await transformer on `ipython` (idempotent)."""
    from .magic_commands import ProjectXMagics  # IPython is imported only when loading

    unload_ipython_extension(ipython)
    magics = ProjectXMagics(ipython)
    ipython.register_magics(magics)
    ipython.input_transformers_post.append(AwaitMagics(ipython, magics))


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the transformer and close the connection the magics hold."""
    kept = []
    for transformer in ipython.input_transformers_post:
        if isinstance(transformer, AwaitMagics):
            transformer.magics.close()
        else:
            kept.append(transformer)
    ipython.input_transformers_post[:] = kept


class AwaitMagics:
    """Post-input transformer: `await` the I/O magics when the cell will run on a live loop."""

    def __init__(self, shell: Any, magics: Any, names: frozenset[str] = ASYNC_MAGICS) -> None:
        self.shell = shell
        self.magics = magics
        self.names = names

    def __repr__(self) -> str:
        return f"AwaitMagics({sorted(self.names)})"

    def __call__(self, lines: list[str]) -> list[str]:
        if not self._applies():
            return lines
        out: list[str] = []
        changed = False
        for line in lines:
            match = _MAGIC_CALL.match(line)
            if match is None or match["name"] not in self.names:
                out.append(line)
                continue
            bare = match["target"] is None  # a bare call: `;` keeps its value off Out[]
            out.append(f"{match['head']}await {match['call']}{';' if bare else ''}{match['nl']}")
            changed = True
        if not changed or not _compiles_async("".join(out)):
            return lines
        return out

    def _applies(self) -> bool:
        from IPython.core.async_helpers import _asyncio_runner

        shell = self.shell
        if not getattr(shell, "autoawait", False) or shell.loop_runner is not _asyncio_runner:
            return False
        return _running_loop() is not None


def _compiles_async(source: str) -> bool:
    try:
        compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (SyntaxError, ValueError):
        return False
    return True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class MagicCall:
    """A magic's work scheduled on the running loop: `await` it for the result. Not awaited by
    the time the cell yields, it runs in the background and prints its outcome when done."""

    __slots__ = ("_coro", "_report", "_task", "name")

    def __init__(
        self,
        name: str,
        coro: Coroutine[Any, Any, Any],
        loop: asyncio.AbstractEventLoop,
        report: Callable[[str, BaseException], None],
    ) -> None:
        self.name = name
        self._coro = coro
        self._report = report
        self._task: asyncio.Task[Any] | None = None
        loop.call_soon(self._start_unawaited)  # the cell's context (its output area) is kept

    def __await__(self) -> Generator[Any, None, Any]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._coro)
        return (yield from self._task.__await__())

    def _start_unawaited(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._coro)
            self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            print(f"%{self.name} cancelled", file=sys.stderr)
        elif task.exception() is not None:
            self._report(self.name, task.exception())  # type: ignore[arg-type]

    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def result(self) -> Any:
        """The result once done (raises its error); `InvalidStateError` before."""
        if self._task is None:
            raise asyncio.InvalidStateError(f"%{self.name} has not started yet")
        return self._task.result()

    def cancel(self) -> bool:
        if self._task is None:
            self._task = asyncio.ensure_future(self._coro)
        return self._task.cancel()

    def __getattr__(self, attribute: str) -> Any:
        """Used like its result, without `await` (e.g. `%load_ext projectx_lab` and
        `suite = %px_connect` in one cell, read before the extension could add the `await`):
        say what it is and how to get the result."""
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        raise AttributeError(
            f"{attribute!r}: this is %{self.name}'s call, not its result. Take the result with "
            f"`x = await x` (or `x = x.result()` once done). A cell that loads the extension "
            "is read before the extension can await its magics: use them from the next cell."
        )

    def __repr__(self) -> str:
        state = "pending" if self._task is None else "done" if self._task.done() else "running"
        return f"<MagicCall %{self.name} {state}>"


def print_error(name: str, error: BaseException) -> None:
    """Outcome of a background magic that failed: one line for expected errors, else a
    traceback."""
    from IPython.core.error import UsageError

    if isinstance(error, UsageError):
        print(f"UsageError: {error}", file=sys.stderr)
    else:
        print(f"%{name} failed:", file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
