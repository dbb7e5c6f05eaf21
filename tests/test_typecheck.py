"""The package type-checks with mypy (configured in pyproject.toml, pydantic plugin on)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_is_clean():
    assert importlib.util.find_spec("mypy"), "mypy is part of the test extra"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "src/servegen"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
