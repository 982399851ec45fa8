"""cnnfast's Python layers point one way: the import graph inside the package has no cycle.

Every module is parsed (not imported), and every import counts -- at the top, inside functions,
under ``if TYPE_CHECKING`` -- so a lazy import that closes a cycle fails here too. The intended
layering, bottom to top (CONTRIBUTING.md): ``_core``/``_utils``/``_gemm``/``_random``/``_version``;
``_ndarray`` (array math); ``autograd`` (Tensor operations); ``functional`` (the ndarray-or-Tensor
edge); ``nn``, ``optim``, ``models`` and the rest.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import cnnfast

PKG = pathlib.Path(cnnfast.__file__).parent
NAME = "cnnfast"


def _module_name(path: pathlib.Path) -> str:
    parts = [NAME, *path.relative_to(PKG).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    mods = {_module_name(p): p for p in PKG.rglob("*.py")}
    mods.update({_module_name(p): p for p in PKG.rglob("*.pyi") if _module_name(p) not in mods})  # _core
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the cnnfast modules it imports (``from pkg import name`` counts as pkg.name when
    that is a module, else as pkg)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        is_pkg = path.stem == "__init__"
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    deps.add(sub if sub in mods else base)
        # importing a.b.c imports a and a.b first: an edge to the deepest module that exists
        resolved = set()
        for d in deps:
            while d and d not in mods:
                d = d.rpartition(".")[0]
            if d and d != mod:
                resolved.add(d)
        graph[mod] = resolved
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the DFS stack, 2 = done
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w) :] + [w]
            if w not in state and (c := visit(w)) is not None:
                return c
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (c := visit(v)) is not None:
            return c
    return None


def test_graph_sees_lazy_imports():
    """The parser finds imports inside functions (the kind that used to close cycles)."""
    g = import_graph()
    assert "cnnfast.autograd.ops" in g["cnnfast.functional.conv"]
    assert "cnnfast._random" in g["cnnfast._ndarray.misc"]  # imported inside _dropout_mask
    assert "cnnfast._core" in g["cnnfast._ndarray.conv"]


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_inside_cnnfast():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "lower,upper",
    [
        ("cnnfast._ndarray", ("cnnfast.autograd", "cnnfast.functional", "cnnfast.nn")),
        ("cnnfast.autograd", ("cnnfast.functional", "cnnfast.nn")),
    ],
)
def test_lower_layers_do_not_import_upper_ones(lower, upper):
    g = import_graph()
    bad = {
        (m, d) for m, deps in g.items() if m == lower or m.startswith(lower + ".") for d in deps if d.startswith(upper)
    }
    assert not bad, f"{lower} imports a layer above it: {sorted(bad)}"
