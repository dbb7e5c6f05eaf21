from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only upstream data beside the checkout; CI always has it."""
    if not SHARED.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared data at {SHARED}")
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED
