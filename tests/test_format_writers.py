"""Requests.to_format finds its writers through the entry-point group ``servegen.formats``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import servegen as sg
from servegen import _format_writers
from servegen.formats import WRITE_FORMATS, write

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh():
    """Forget the entry points read so far (and the test plugin), before and after the test."""
    _format_writers.refresh()
    yield
    _format_writers.refresh()
    sys.modules.pop("sg_plugin", None)


def requests() -> sg.Requests:
    cols = {
        "timestamp": np.array([0.0, 0.5, 1.25]),
        "client": np.array([0, 1, 0], np.int32),
        "input_tokens": np.array([40, 16, 530]),
        "output_tokens": np.array([20, 3, 7]),
    }
    return sg.Requests(cols, clients=["chat", "api"])


def test_pyproject_declares_every_write_format():
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert declared["servegen.formats"] == {name: "servegen.formats:write" for name in WRITE_FORMATS}


def test_installed_metadata_declares_every_write_format():
    assert _format_writers.format_names() == sorted(WRITE_FORMATS), (
        "servegen's installed entry points are stale: re-run `pip install -e .`"
    )


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_to_format_writes_what_write_writes(fmt, tmp_path):
    a = requests().to_format(tmp_path / f"a.{fmt}", fmt)
    b = write(requests(), tmp_path / f"b.{fmt}", fmt)
    assert a == tmp_path / f"a.{fmt}"
    assert a.read_bytes() == b.read_bytes()


def test_to_format_passes_options(tmp_path):
    p = requests().to_format(tmp_path / "v.jsonl", "vllm", block_size=4)
    first = p.read_text().splitlines()[0]
    assert '"hash_ids": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]' in first  # 40 tokens in blocks of 4
    with pytest.raises(TypeError, match=r"format 'vllm' takes no option\(s\) \['blocksize'\]"):
        requests().to_format(tmp_path / "x", "vllm", blocksize=4)


@pytest.mark.parametrize("bad", ["sharegpt", "", ["mooncake"], None])
def test_unknown_format_names_the_valid_ones(bad, tmp_path):
    with pytest.raises(
        ValueError, match=r"to_format: unknown format .*; valid formats are \['aiperf', 'azure'"
    ):
        requests().to_format(tmp_path / "x", bad)
    assert not (tmp_path / "x").exists()


def test_no_entry_points_at_all_says_to_install(fresh, monkeypatch, tmp_path):
    # servegen run from a source tree without being installed: no metadata at all.
    monkeypatch.setattr(_format_writers, "_entry_points", lambda group: [])
    with pytest.raises(ValueError, match=r"no format writers are installed .*`pip install -e \.`"):
        requests().to_format(tmp_path / "x", "mooncake")


def _install_plugin(root: Path, formats: dict[str, str]) -> None:
    """A package installed in ``root`` (its module and its metadata), as pip would leave it."""
    (root / "sg_plugin.py").write_text(
        "from pathlib import Path\n"
        "def write(requests, path, format, **options):\n"
        "    Path(path).write_text(f'{format} {len(requests)} {sorted(options)}')\n"
        "    return Path(path)\n"
    )
    meta = root / "sg_plugin-1.0.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: sg-plugin\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in formats.items())
    (meta / "entry_points.txt").write_text("[servegen.formats]\n" + lines)


def test_another_package_adds_a_format(fresh, monkeypatch, tmp_path):
    _install_plugin(tmp_path, {"tabular": "sg_plugin:write"})
    monkeypatch.syspath_prepend(str(tmp_path))
    p = requests().to_format(tmp_path / "out.txt", "tabular", level=3)
    assert p.read_text() == "tabular 3 ['level']"
    assert "tabular" in _format_writers.format_names() and "mooncake" in _format_writers.format_names()


def test_a_format_declared_twice_is_an_error(fresh, monkeypatch, tmp_path):
    _install_plugin(tmp_path, {"mooncake": "sg_plugin:write"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=r"format 'mooncake' is declared by several installed packages"):
        requests().to_format(tmp_path / "x", "mooncake")
