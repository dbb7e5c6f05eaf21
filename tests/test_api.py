"""The public namespace: flat, documented, and equal to ``__all__``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import servegen as sg

ROOT = Path(__file__).resolve().parents[1]


def test_namespace_equals_all():
    public = {n for n in dir(sg) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(sg, n)).__name__ == "module"}
    assert public - modules == set(sg.__all__) - {"__version__"}
    assert len(sg.__all__) == len(set(sg.__all__))


def test_every_public_name_is_documented():
    for name in sg.__all__:
        obj = getattr(sg, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"servegen.{name} has no docstring"


@pytest.mark.slow
def test_readme_starts_with_two_commands_and_examples_run():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first and text.index(first.group(0)) < 40
    lines = [ln for ln in first.group(1).splitlines() if ln.strip()]
    assert len(lines) == 2 and "pytest" in lines[1]
    # every python block of the README runs, in order, in one fresh interpreter
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks
    code = "\n".join(blocks)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_ci_runs_the_readme_test_command():
    text = (ROOT / "README.md").read_text()
    test_cmd = re.search(r"```bash\n.*?\n(.*?)\s+#", text, re.S).group(1).strip()
    assert test_cmd in (ROOT / ".ci" / "run").read_text()
