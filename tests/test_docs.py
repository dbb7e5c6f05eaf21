"""The documentation site: it builds without warnings, and every example on it runs.

Examples on the pages are of two kinds, both run here in document order, one scratch
directory per page: ```` ```pycon ```` blocks are doctests (``>>>`` prompts, expected
output compared with ELLIPSIS and NORMALIZE_WHITESPACE), and ``$ servegen ...`` lines in
```` ```console ```` blocks run through :func:`servegen.cli.main` and must exit 0.
```` ```bash ```` blocks (installs, other tools' commands) are shown, not executed.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import servegen as sg
from servegen import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
FENCE = re.compile(r"^```(pycon|console)[^\n]*\n(.*?)^```", re.M | re.S)
SPHINX = ("sphinx", "numpydoc", "pydata_sphinx_theme", "myst_parser")


def _blocks(page: Path) -> list[tuple[str, str, int]]:
    text = page.read_text()
    return [(m[1], m[2], text.count("\n", 0, m.start(2))) for m in FENCE.finditer(text)]


def _commands(block: str) -> list[list[str]]:
    """The ``$ servegen ...`` lines of a console block (``\\`` continues a line)."""
    joined = block.replace("\\\n", " ")
    return [shlex.split(line[2:]) for line in joined.splitlines() if line.startswith("$ ")]


EXAMPLES = [p for p in PAGES if _blocks(p)]


@pytest.mark.parametrize("page", EXAMPLES, ids=[str(p.relative_to(DOCS)) for p in EXAMPLES])
@pytest.mark.slow
def test_page_examples_run(page, tmp_path, monkeypatch, capsys):
    blocks = _blocks(page)
    monkeypatch.chdir(tmp_path)
    globs: dict = {"__name__": "__docs__"}
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    parser = doctest.DocTestParser()
    for kind, body, line in blocks:
        if kind == "pycon":
            test = parser.get_doctest(body, globs, f"{page.name}:{line + 1}", str(page), line)
            report: list[str] = []
            runner.run(test, out=report.append, clear_globs=False)
            globs = test.globs  # DocTest copies its globals: carry them to the next block
            assert not runner.failures, "".join(report)
        else:
            for argv in _commands(body):
                assert argv[0] == "servegen", (
                    f"{page.name}:{line + 1}: console blocks run servegen only: {argv}"
                )
                code = cli.main(argv[1:])
                err = capsys.readouterr().err
                assert code == 0, f"{page.name}:{line + 1}: {shlex.join(argv)} -> {code}: {err}"


def test_api_reference_lists_every_public_name():
    text = (DOCS / "api.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", text, re.M))
    assert set(sg.__all__) - {"__version__"} <= listed
    modules = {
        "arrivals",
        "sessions",
        "warm_start",
        "burst_fit",
        "formats",
        "metrics",
        "plot",
        "replay",
        "results",
        "cli",
    }
    assert listed - set(sg.__all__) == modules | {"dask_sample"}


def test_cli_page_covers_every_command():
    text = (DOCS / "cli.md").read_text()
    parser = cli._build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert f"$ servegen {name}" in text, f"docs/cli.md has no example of 'servegen {name}'"


def test_every_page_is_in_a_toctree():
    text = "\n".join(p.read_text() for p in PAGES)
    for page in PAGES:
        if page.name != "index.md":
            rel = page.relative_to(DOCS).with_suffix("").as_posix()
            name = rel.split("/")[-1]
            assert re.search(rf"^{re.escape(name)}$|^{re.escape(rel)}$", text, re.M), (
                f"{rel} is in no toctree"
            )


@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in SPHINX),
    reason="the docs extra (sphinx, numpydoc, pydata-sphinx-theme, myst-parser) is not installed",
)
@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    # Build from a copy: autosummary writes its stub pages into the source tree.
    src = tmp_path / "src"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("_build", "generated"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env["MPLBACKEND"] = "Agg"
    html = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src), str(html)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for name in set(sg.__all__) - {"__version__"}:
        assert (html / "generated" / f"servegen.{name}.html").exists(), name
    background = (html / "background.html").read_text()
    figures = re.findall(r'<img [^>]*src="([^"]+\.png)"', background)
    assert len(set(figures)) == 3 and all((html / f).stat().st_size > 10_000 for f in figures)
