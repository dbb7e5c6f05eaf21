from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import matplotlib
import pytest

import _synthetic

matplotlib.use("Agg")

# SERVEGEN_SHARED_DATA moves it (point it at a missing directory to try a plain clone)
SHARED = Path(
    os.environ.get("SERVEGEN_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
_STAND_INS: list[str] = []  # files replaced by stand-ins in this run, for the summary


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only upstream data beside the checkout; CI always has it."""
    if not SHARED.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must have the shared data at {SHARED}")
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED


def _source(
    tmp_path_factory: pytest.TempPathFactory, relpath: str, make: Callable[[Path], Path]
) -> _synthetic.Source:
    """The shared file, or (only outside CI, when the shared data is absent) a stand-in."""
    if SHARED.exists():
        return _synthetic.Source(SHARED / relpath, real=True)
    if os.environ.get("CI"):
        pytest.fail(f"CI must have the shared data at {SHARED}")
    _STAND_INS.append(relpath)
    return _synthetic.Source(make(tmp_path_factory.mktemp("standin") / Path(relpath).name), real=False)


@pytest.fixture(scope="session")
def conversation_trace(tmp_path_factory) -> _synthetic.Source:
    """Mooncake's conversation_trace.jsonl, or a stand-in like it (tests/_synthetic.py)."""
    return _source(tmp_path_factory, f"mooncake/{_synthetic.CONVERSATION}", _synthetic.write_conversation)


@pytest.fixture(scope="session")
def synthetic_trace(tmp_path_factory) -> _synthetic.Source:
    """Mooncake's synthetic_trace.jsonl, or a stand-in like it (tests/_synthetic.py)."""
    return _source(tmp_path_factory, f"mooncake/{_synthetic.SYNTHETIC}", _synthetic.write_synthetic)


@pytest.fixture(scope="session")
def release_zip(tmp_path_factory) -> _synthetic.Source:
    """The ServeGen release zip (its MISSING list beside it), or a stand-in written from
    the shipped profiles (tests/_synthetic.py)."""
    return _source(tmp_path_factory, _synthetic.RELEASE, _synthetic.write_release)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if "shared data not found" in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_sep(
            "=",
            f"{len(skipped)} tests SKIPPED for lack of the shared data at {SHARED} "
            "(give them a stand-in from tests/_synthetic.py)",
            red=True,
        )
    if _STAND_INS:
        terminalreporter.write_sep(
            "=",
            f"shared data not found at {SHARED}: fidelity tests ran on generated stand-ins for "
            f"{', '.join(_STAND_INS)} (tests/_synthetic.py); run with the data to check the real files",
            yellow=True,
        )
