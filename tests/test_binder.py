"""Binder launch: `binder/start` brings up a simulator that answers, then execs the command it was
given; the install files name every package the tutorials import."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_start_script_launches_a_simulator_then_execs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PROJECTX_SIM_PORT": str(free_port()),
        "TMPDIR": str(tmp_path),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    probe = (
        "import httpx, os; base = os.environ['PROJECTX_API_URL'];"
        "print(httpx.get(base + '/api/Status/ping').json());"
        "creds = {'userName': os.environ['PROJECTX_USERNAME'],"
        " 'apiKey': os.environ['PROJECTX_API_KEY']};"
        "print(httpx.post(base + '/api/Auth/loginKey', json=creds).json()['success'])"
    )
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "binder" / "start"), sys.executable, "-c", probe],
            env=env, capture_output=True, text=True, timeout=60, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["pong", "True"]
    finally:
        pid_file = tmp_path / "projectx-sim.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)


def notebook_imports() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            source = TransformerManager().transform_cell(source)  # magics → plain calls
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names


def test_install_files_name_what_the_notebooks_import() -> None:
    requirements = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    listed = {
        line.split(">")[0].split("=")[0].split("[")[0].strip().lower().replace("-", "_")
        for line in requirements
        if line.strip() and not line.startswith("#")
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = [*project["dependencies"], *project["optional-dependencies"]["notebook"]]
    declared = {d.split(">")[0].split("[")[0].strip().lower().replace("-", "_") for d in deps}
    third_party = notebook_imports() - set(sys.stdlib_module_names) - {"projectx_lab"}
    assert third_party, "the tutorials import nothing?"
    assert third_party <= listed, third_party - listed
    assert third_party <= declared, third_party - declared
    assert "--no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_notebooks_use_the_kernel_the_project_installs() -> None:
    installs = [(ROOT / "binder" / "postBuild").read_text(), (ROOT / "Makefile").read_text()]
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        name = json.loads(path.read_text())["metadata"]["kernelspec"]["name"]
        assert all(f"--name {name}" in text for text in installs), (path.name, name)
        outputs = [c.get("outputs") for c in json.loads(path.read_text())["cells"]]
        assert not any(outputs), f"{path.name} has saved outputs: strip them"
