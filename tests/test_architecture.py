"""The import structure of ``src/servegen`` follows docs/architecture.md.

Every import is read with :mod:`ast`, module-level and deferred (inside a function)
alike, and checked against the layer table on the architecture page: no upward import,
no circle, no private name imported across modules, no file over 600 lines.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "servegen"
PAGE = ROOT / "docs" / "architecture.md"
MAX_LINES = 600

# Violations tolerated for a while (a module being rewritten on another branch), one line
# and a comment each. Empty since issue #12 closed its last ones; the test fails when a
# listed violation no longer exists, so the list can only shrink.
KNOWN: set[tuple[str, ...]] = set()


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # a module of servegen
    name: str | None  # the name taken from it, when it is not itself a module
    line: int


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _imports(module: str, path: Path) -> list[Import]:
    """Every servegen import of ``module``, at any depth of its syntax tree."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES:
                    found.append(Import(module, alias.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source not in MODULES:
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:
                    found.append(Import(module, sub, None, node.lineno))
                else:
                    found.append(Import(module, source, alias.name, node.lineno))
    return [i for i in found if i.target != module]


IMPORTS = [i for m, p in MODULES.items() for i in _imports(m, p)]


def _layers() -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """The layer table of docs/architecture.md: patterns per layer, layers each may import."""
    text = PAGE.read_text().split("## Layers", 1)[1]
    patterns: dict[str, list[str]] = {}
    allowed: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or cells[0] in ("Layer", "---"):
            if patterns and not line.startswith("|"):
                break  # the end of the table
            continue
        layer, modules, may = cells
        patterns[layer] = re.findall(r"`([^`]+)`", modules)
        allowed[layer] = {w.strip() for w in may.split(",")} if not may.startswith("(") else set()
    return patterns, allowed


PATTERNS, ALLOWED = _layers()
RANK = {layer: i for i, layer in enumerate(PATTERNS)}


def _layer(module: str) -> str | None:
    hits = [layer for layer, pats in PATTERNS.items() if any(fnmatch.fnmatchcase(module, p) for p in pats)]
    assert len(hits) <= 1, f"{module} matches several layers: {hits}"
    return hits[0] if hits else None


def _upward() -> set[tuple[str, ...]]:
    bad = set()
    for i in IMPORTS:
        lo, hi = _layer(i.importer), _layer(i.target)
        if lo != hi and hi not in ALLOWED[lo]:  # type: ignore[index]
            bad.add(("upward", i.importer, i.target))
    return bad


def _private() -> set[tuple[str, ...]]:
    """``from .x import _y`` of a private (non-dunder) name that is not a module."""
    return {
        ("private", i.importer, f"{i.target}.{i.name}")
        for i in IMPORTS
        if i.name and i.name.startswith("_") and not i.name.startswith("__")
    }


def _long() -> set[tuple[str, ...]]:
    return {("long", m) for m, p in MODULES.items() if len(p.read_text().splitlines()) > MAX_LINES}


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def _where(importer: str, target: str) -> str:
    lines = sorted({i.line for i in IMPORTS if i.importer == importer and i.target == target})
    return f"{MODULES[importer].relative_to(ROOT)}:{','.join(map(str, lines))}"


def test_layer_table_is_read():
    assert list(PATTERNS) == [
        "foundation",
        "data",
        "engine",
        "drivers",
        "models",
        "workload",
        "outputs",
        "plots",
        "sources",
        "interface",
        "namespace",
    ]
    for layer, may in ALLOWED.items():
        assert may <= set(PATTERNS), f"{layer!r} may import unknown layers {may - set(PATTERNS)}"
        assert all(RANK[m] < RANK[layer] for m in may), f"{layer!r} may import a layer above it"


def test_every_module_has_a_layer():
    missing = sorted(m for m in MODULES if _layer(m) is None)
    assert not missing, f"modules in no layer of docs/architecture.md (add them to the table): {missing}"


def test_no_upward_import():
    bad = _upward() - KNOWN
    assert not bad, "imports across layers upward:\n" + "\n".join(
        f"  {imp} -> {tgt} ({_where(imp, tgt)})" for _, imp, tgt in sorted(bad)
    )


def test_no_import_cycle():
    # The allow-listed upward imports are the ones that close today's circles; without
    # them the graph must be acyclic, so no new circle can hide behind a known one.
    known = {(k[1], k[2]) for k in KNOWN if k[0] == "upward"}
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if (i.importer, i.target) not in known:
            edges[i.importer].add(i.target)
    assert _cycles(edges) == []


def test_no_private_name_imported_across_modules():
    bad = _private() - KNOWN
    assert not bad, f"private names imported from another module: {sorted(b[1:] for b in bad)}"


def test_no_file_over_600_lines():
    bad = _long() - KNOWN
    assert not bad, f"files over {MAX_LINES} lines: {sorted(b[1] for b in bad)}"


def test_known_violations_still_exist():
    """The allow-list only shrinks: a fixed violation must be removed from ``KNOWN``."""
    stale = KNOWN - (_upward() | _private() | _long())
    assert not stale, f"fixed; delete from KNOWN in tests/test_architecture.py: {sorted(stale)}"


# The checker itself, on small graphs: it must see what it claims to see.
def test_cycle_finder():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []
    assert sorted(_cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}})) == [["a", "b"], ["c", "d"]]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from .requests import Requests", [("servegen.requests", "Requests")]),
        ("def f():\n    from .workload import Workload", [("servegen.workload", "Workload")]),
        ("from . import _rng", [("servegen._rng", None)]),
        ("from servegen.pools._pmf import _x", [("servegen.pools._pmf", "_x")]),
        ("import servegen", [("servegen", None)]),
        ("from ..requests import Requests", []),  # above the package: not servegen
    ],
)
def test_import_reader(source, expected, tmp_path):
    path = tmp_path / "servegen" / "probe.py"
    path.parent.mkdir()
    path.write_text(source)
    got = [(i.target, i.name) for i in _imports("servegen.probe", path)]
    assert got == expected
