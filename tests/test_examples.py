"""Every example runs: ``examples/*.py`` scripts and the ``examples/*.ipynb`` notebooks.

Each runs in a fresh interpreter in a scratch directory, with a timeout. Notebooks are
executed by running their code cells in order as one script: that needs no Jupyter
kernel (nbclient would pull in pyzmq, tornado and a kernel just to run plain Python),
and the notebooks use no IPython magics (checked below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
TIMEOUT = 300


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def test_there_are_examples():
    assert SCRIPTS and NOTEBOOKS


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
@pytest.mark.slow
def test_script_runs(script, tmp_path):
    proc = _run(script.read_text(), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), f"{script.name} printed nothing"


def _code_cells(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    assert nb["nbformat"] == 4
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for c in cells:
        assert not c.get("outputs"), (
            f"{notebook.name}: clear outputs before committing (keeps the repo small)"
        )
        source = "".join(c["source"])
        magic = [line for line in source.splitlines() if line.lstrip().startswith(("%", "!"))]
        assert not magic, f"{notebook.name}: IPython magics cannot run as a script: {magic}"
    return ["".join(c["source"]) for c in cells]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
@pytest.mark.slow
def test_notebook_runs(notebook, tmp_path):
    cells = _code_cells(notebook)
    assert cells
    proc = _run("\n\n".join(cells), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
