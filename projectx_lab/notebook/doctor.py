"""`%px_doctor`: what the notebook stack looks like from the kernel, and each known trap found.

Versions come from package metadata (nothing heavy is imported); the frontend is guessed from
the kernel's environment (a kernel cannot see the browser, so it may say "unknown").
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PACKAGES = ("ipykernel", "ipython", "ipywidgets", "anywidget", "plotly", "jupyterlab_widgets",
            "nest_asyncio2", "nest_asyncio")  # fmt: skip
MIN_IPYKERNEL = (7, 4)
MIN_PLOTLY = (6, 0)
MIN_IPYWIDGETS = (8, 0)


def installed_version(package: str) -> str | None:
    """The installed version of `package`, None when it is not installed."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric release parts: `"7.4.0rc1"` → (7, 4, 0)."""
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match[0]))
        if match.end() != len(piece):
            break
    return tuple(parts)


def guess_frontend(env: Mapping[str, str], modules: Mapping[str, Any], shell: Any) -> str:
    """Best guess of the frontend from the kernel side (environment and loaded modules)."""
    if "google.colab" in modules:
        return "Google Colab"
    if env.get("SERVER_SOFTWARE", "").startswith("voila"):
        return "Voila"
    if "VSCODE_PID" in env or "VSCODE_CWD" in env:
        return "VS Code"
    if "PYCHARM_HOSTED" in env:
        return "PyCharm"
    kernel = getattr(shell, "kernel", None) is not None
    if kernel and "JPY_SESSION_NAME" in env:
        return "Jupyter server (JupyterLab or Notebook 7)"
    if kernel:
        return "a Jupyter kernel (frontend unknown)"
    if shell is not None:
        return "IPython terminal (no widgets)"
    return "plain Python (no widgets)"


@dataclass(slots=True)
class DoctorReport:
    """Facts (label, value) and warnings, one per known trap found."""

    facts: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.warnings

    def __str__(self) -> str:
        width = max((len(label) for label, _ in self.facts), default=0)
        lines = ["projectx_lab doctor"]
        lines += [f"  {label.ljust(width)}  {value}" for label, value in self.facts]
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning(s):")
            lines += [f"  ! {w}" for w in self.warnings]
        else:
            lines.append("no known problems found")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"DoctorReport(facts={len(self.facts)}, warnings={len(self.warnings)})"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def loop_patches(loop: asyncio.AbstractEventLoop | None) -> str | None:
    """Which nested-loop patch is active: "nest_asyncio2", "nest_asyncio" (archived) or None."""
    patched = getattr(asyncio, "_nest_patched", False) or (
        loop is not None and getattr(type(loop), "_nest_patched", False)
    )
    if not patched:
        return None
    marker = hasattr(asyncio, "_nest_asyncio2") or (
        loop is not None and hasattr(type(loop), "_nest_asyncio2")
    )
    return "nest_asyncio2" if marker else "nest_asyncio"


def diagnose(
    *,
    shell: Any = None,
    versions: Mapping[str, str | None] | None = None,
    env: Mapping[str, str] | None = None,
    modules: Mapping[str, Any] | None = None,
    loop: asyncio.AbstractEventLoop | bool | None = True,
    connection: list[tuple[str, str]] | None = None,
    connection_warnings: list[str] | None = None,
    version_of: Callable[[str], str | None] = installed_version,
) -> DoctorReport:
    """Inspect the running stack. Every argument defaults to the real thing (`loop=True`: the
    running loop, if any); tests pass their own to exercise each trap."""
    found = dict(versions) if versions is not None else {p: version_of(p) for p in PACKAGES}
    env = os.environ if env is None else env
    modules = sys.modules if modules is None else modules
    running = _running_loop() if loop is True else loop
    report = DoctorReport()
    facts, warn = report.facts, report.warnings

    facts.append(("python", sys.version.split()[0]))
    for package in PACKAGES:
        facts.append((package, found.get(package) or "not installed"))
    facts.append(("frontend", guess_frontend(env, modules, shell)))

    kernel = found.get("ipykernel")
    if kernel is None:
        warn.append("ipykernel is not installed: no Jupyter kernel, no widgets")
    elif version_tuple(kernel) < MIN_IPYKERNEL:
        warn.append(
            f"ipykernel {kernel} < 7.4: widget callbacks run on a side thread (7.0-7.3) where "
            "they cannot wake background tasks; pip install 'ipykernel>=7.4'"
        )
    plotly = found.get("plotly")
    if plotly is None:
        warn.append("plotly is not installed: no live charts; pip install 'plotly>=6'")
    elif version_tuple(plotly) < MIN_PLOTLY:
        warn.append(
            f"plotly {plotly} < 6: FigureWidget is not anywidget-based and needs the old "
            "jupyterlab-plotly extension; pip install 'plotly>=6'"
        )
    if found.get("anywidget") is None:
        warn.append("anywidget is not installed: plotly >= 6 FigureWidget needs it")
    widgets = found.get("ipywidgets")
    if widgets is None:
        warn.append("ipywidgets is not installed: no widgets")
    elif version_tuple(widgets) < MIN_IPYWIDGETS:
        warn.append(f"ipywidgets {widgets} < 8: widgets will not render in JupyterLab 4")

    facts.append(("event loop", type(running).__name__ if running else "none running here"))
    patch = loop_patches(running if isinstance(running, asyncio.AbstractEventLoop) else None)
    facts.append(("loop patches", patch or "none"))
    if patch == "nest_asyncio":
        warn.append(
            "the archived nest_asyncio is patching asyncio (it breaks in known ways on Python "
            "3.12+ and swaps in slow pure-Python tasks); remove `nest_asyncio.apply()`, restart "
            "the kernel, and use projectx_lab.notebook.enable_nested() only if you need nesting"
        )
    if shell is not None:
        autoawait = bool(getattr(shell, "autoawait", False))
        runner = getattr(shell, "loop_runner", None)
        facts.append(("autoawait", f"{autoawait} ({runner})"))
        if not autoawait:
            warn.append(
                "IPython autoawait is off (%autoawait False): top-level await fails and "
                "magics return tasks instead of finishing in their cell; run %autoawait asyncio"
            )
    if shell is not None and getattr(shell, "kernel", None) is not None and running is None:
        warn.append("no asyncio loop is running in the kernel: streams stop between cells")

    facts.extend(connection or [])
    warn.extend(connection_warnings or [])
    return report
