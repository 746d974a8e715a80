"""Executed tutorials never show a token or the API key in their saved output."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
API_KEY = "sim-demo-key"


def rendered_outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts.extend(str(v) for v in output.get("data", {}).values())
            parts.append(str(output.get("evalue", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "08_going_live.ipynb"])
def test_executed_notebook_output_holds_no_secret(name: str) -> None:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(ROOT)}}).execute()
    text = rendered_outputs(nb)
    assert "OK" in text  # the notebook ran to its checks
    assert API_KEY not in text
    assert not JWT.search(text), JWT.search(text).group(0)[:12] + "…"
