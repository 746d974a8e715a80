"""The one real-browser test: JupyterLab on 127.0.0.1 driven by headless Debian Chromium through
Playwright runs a notebook that connects the magics to the embedded simulator and shows a live
`CandlestickChart`; the page must show the candlestick's last bar advancing on a `date` x axis.

Hermetic: a temporary root dir, `JUPYTER_*` / `IPYTHONDIR` dirs under tmp, a random port, a
token, and a kernelspec installed into the temporary data dir whose argv is this venv's python.
Skipped (with the reason printed) only when Chromium or Playwright is missing; `.ci/run`
installs Debian's `chromium` first.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path(os.environ.get("PROJECTX_LAB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
KERNEL_NAME = "projectx-lab-browser-test"
KERNEL_DISPLAY = "projectx_lab (test venv)"
SERVER_START = 45.0  # seconds
CELLS = [
    "%load_ext projectx_lab",
    "suite = %px_connect --speed 60 --timeframes 1min",
    "%px_doctor",
    "from projectx_lab.notebook.charts import CandlestickChart\n"
    'chart = CandlestickChart(suite.data, timeframe="1min", bars=200)\n'
    "chart",
]
# The status bar names the notebook's kernel (from its metadata) and says it is idle.
KERNEL_IDLE = f"""() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
  .some(e => e.innerText.trim() === '{KERNEL_DISPLAY} | Idle')"""
# The plotly graph div of the candlestick: x axis type and the last bar's time (as axis ms).
READ_CHART = """() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    if (!gd._fullLayout || !gd.data) continue;
    const trace = gd.data.find(t => t.type === 'candlestick');
    if (!trace || !trace.x || trace.x.length === 0) continue;
    const xa = gd._fullLayout.xaxis;
    const last = trace.x[trace.x.length - 1];
    return {type: xa.type, last: String(last), lastMs: xa.d2c(last), bars: trace.x.length,
            close: trace.close[trace.close.length - 1]};
  }
  return null;
}"""
ADVANCED = f"(ms) => {{ const c = ({READ_CHART})(); return c !== null && c.lastMs > ms; }}"


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install -y chromium; .ci/run does it)"
    return None


SKIP = _skip_reason()  # shown by `-ra` (the default addopts) in the summary
pytestmark = [pytest.mark.browser, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: list[str]


def _write_notebook(root: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": KERNEL_DISPLAY,
        "language": "python",
    }
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    path = root / "browser_notebook.ipynb"
    nbformat.write(notebook, path)
    return path


def _write_lab_settings(settings: Path) -> None:
    """Start the notebook's kernel without asking; no news or update toasts."""
    for plugin, values in {
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _install_kernelspec(env: dict[str, str]) -> Path:
    """`ipykernel install --user` into the temporary JUPYTER_DATA_DIR: argv[0] is this python."""
    subprocess.run(
        [sys.executable, "-m", "ipykernel", "install", "--user", "--name", KERNEL_NAME,
         "--display-name", KERNEL_DISPLAY],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    spec = Path(env["JUPYTER_DATA_DIR"]) / "kernels" / KERNEL_NAME / "kernel.json"
    assert json.loads(spec.read_text())["argv"][0] == sys.executable
    return spec


def _pump(stream: object, lines: queue.Queue[str], log: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        log.append(line)
        lines.put(line)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    root = tmp_path / "root"
    root.mkdir()
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        path = tmp_path / name.lower()
        path.mkdir()
        env[name] = str(path)
    env.pop("JUPYTER_PATH", None)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    (Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json").write_text(
        json.dumps({"LabApp": {"news_url": None, "extension_manager": "readonly",
                               "check_for_updates_class": "jupyterlab.NeverCheckForUpdate"}})
    )  # fmt: skip
    _write_lab_settings(Path(env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings" / "@jupyterlab")
    _install_kernelspec(env)
    _write_notebook(root)
    token = secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
    ]  # fmt: skip
    if os.geteuid() == 0:  # CI containers run as root
        command.append("--allow-root")
    server = subprocess.Popen(
        command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    log: list[str] = []
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(server.stderr, lines, log), daemon=True).start()
    try:
        url = _wait_for_url(server, lines, log)
        yield Lab(url, token, root, log)
    finally:
        _stop_server(server, token, log)


def _wait_for_url(server: subprocess.Popen[str], lines: queue.Queue[str], log: list[str]) -> str:
    deadline = time.monotonic() + SERVER_START
    pattern = re.compile(r"(http://127\.0\.0\.1:\d+)/lab")
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or server.poll() is not None:
            tail = "".join(log[-30:])
            raise AssertionError(f"JupyterLab did not start (exit {server.poll()}):\n{tail}")
        try:
            line = lines.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        match = pattern.search(line)
        if match:
            return match[1]


def _stop_server(server: subprocess.Popen[str], token: str, log: list[str]) -> None:
    """Shut down through the API (kernels included), SIGTERM if that fails, SIGKILL last."""
    if server.poll() is None:
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", "".join(log))
        if match:
            request = urllib.request.Request(
                f"{match[1]}/api/shutdown", method="POST",
                headers={"Authorization": f"token {token}"},
            )  # fmt: skip
            try:
                urllib.request.urlopen(request, timeout=5).close()
            except OSError:
                server.send_signal(signal.SIGTERM)
        else:
            server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def test_live_candlestick_in_jupyterlab(lab: Lab) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "browser_candlestick.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{lab.url}/lab/tree/browser_notebook.ipynb?token={lab.token}")
            page.wait_for_function(KERNEL_IDLE, timeout=30_000)
            _run_all_cells(page)
            try:
                page.wait_for_function(READ_CHART, timeout=30_000)
            except Exception:
                page.screenshot(path=str(screenshot), full_page=True)
                raise AssertionError(
                    f"no candlestick rendered; outputs: {_outputs(page)}; page errors: {errors}"
                ) from None
            first = page.evaluate(READ_CHART)
            assert first["type"] == "date", first
            # at speed 60 a 1-minute bar lasts one real second: a new last bar within seconds
            page.wait_for_function(ADVANCED, arg=first["lastMs"], timeout=15_000)
            later = page.evaluate(READ_CHART)
            page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot))
            outputs = _outputs(page)
        finally:
            browser.close()
    assert later["type"] == "date", later
    assert later["lastMs"] > first["lastMs"] and later["last"] != first["last"]
    assert later["bars"] <= 200
    # the magics ran in the real kernel: connected in their cell, and the doctor saw the stack
    assert any("connected: embedded simulator" in o for o in outputs), outputs
    doctor = next(o for o in outputs if "projectx_lab doctor" in o)
    assert "Jupyter server (JupyterLab or Notebook 7)" in doctor, doctor
    assert re.search(r"ipykernel\s+7\.(\d+)", doctor) and "market connected" in doctor, doctor
    assert screenshot.stat().st_size > 0


def _run_all_cells(page: object) -> None:
    """Run > Run All Cells from the menu bar."""
    page.get_by_role("menuitem", name="Run", exact=True).click()  # type: ignore[attr-defined]
    page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()  # type: ignore[attr-defined]


def _outputs(page: object) -> list[str]:
    return page.eval_on_selector_all(  # type: ignore[attr-defined]
        ".jp-OutputArea-output", "els => els.map(e => e.innerText.slice(0, 4000))"
    )
