"""The README's two example clients, shared by the tests that exercise them."""

import runpy
from pathlib import Path

import servegen as sg

#: builds the README quick start's clients, the one copy of them in code
QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def readme_clients() -> dict[str, sg.Client]:
    """``{"chat": ..., "batch": ...}`` exactly as README.md's quick start builds them."""
    ns = runpy.run_path(str(QUICKSTART), run_name="quickstart")  # not "__main__": no sampling
    return {"chat": ns["chat"], "batch": ns["batch"]}
