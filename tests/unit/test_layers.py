"""The package layout is the architecture: imports point down the layers, never in a cycle, and
never at another module's private names. Read from the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qflhw"

#: Subpackages in data-flow order; each may import the ones before it (and itself), never after.
LAYERS = [
    "errors", "_util", "config", "calibration", "circuits", "devices", "execution", "training",
    "federation", "studies", "plugins", "flower", "dashboard", "cli", "primitives",
]  # fmt: skip
TOP = len(LAYERS)  # the package's __init__ (the public API) sits on top, with the CLI and qflhw.primitives


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, source: str, *, is_package: bool = False) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import anywhere in ``source``."""
    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("qflhw")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("qflhw"):
                continue
            names = [a.name for a in node.names]
            submodules = [n for n in names if f"{base}.{n}" in MODULES]  # `from qflhw.x import module`
            out += [(f"{base}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                out.append((base, rest, node.lineno))
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return TOP
    return LAYERS.index(parts[1])


def _upward(module: str, imports: list[tuple[str, list[str], int]]) -> list[str]:
    mine = _layer(module)
    return [f"{target} (line {line})" for target, _, line in imports if target.startswith("qflhw") and _layer(target) > mine]


def _private(module: str, imports: list[tuple[str, list[str], int]]) -> list[str]:
    return [
        f"{target}.{n} (line {line})"
        for target, names, line in imports
        for n in names
        if n.startswith("_") and not n.startswith("__") and target != module
    ]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


GRAPH = {name: _imports(name, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py") for name, path in MODULES.items()}


def test_every_top_level_module_has_a_layer():
    top = {p.stem for p in PACKAGE.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    assert top - {"__init__"} <= set(LAYERS), f"add {sorted(top - {'__init__'} - set(LAYERS))} to LAYERS in data-flow order"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    up = _upward(module, GRAPH[module])
    assert not up, f"{module} imports a higher layer: {up}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules(module):
    private = _private(module, GRAPH[module])
    assert not private, f"{module} imports private names of other modules: {private}; make them public or move them"


def test_no_import_cycles():
    edges = {m: {t for t, _, _ in GRAPH[m] if t in MODULES and t != m} for m in MODULES}
    assert not _cycles(edges), f"import cycles: {_cycles(edges)}"


def test_the_checks_can_fail():
    """Each check finds the fault it is for, in made-up sources."""
    lazy = "def f():\n    from qflhw.federation.loop import Federation, _row\n"
    found = _imports("qflhw.config.spec", lazy)
    assert _upward("qflhw.config.spec", found) == ["qflhw.federation.loop (line 2)"]  # even inside a function
    assert _private("qflhw.config.spec", found) == ["qflhw.federation.loop._row (line 2)"]
    relative = _imports("qflhw.devices.fake", "from ..execution import journal\n")
    assert relative[0][0] == "qflhw.execution.journal" and _upward("qflhw.devices.fake", relative)
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
