"""The house's structure, read from the imports (DESIGN.md "Layout"): no import cycle inside synth_datasets/,
and no private name taken across packages (``from x import _private`` where x is another top-level module or
subpackage of synth_datasets, or any synth_datasets module seen from builders/ or the evaluate modules).

Imports are read with ``ast`` (nothing is imported): absolute and relative ones, at module level and inside
functions alike, since a lazy import is still a dependency. ``from pkg import name`` depends on the module
``pkg.name`` when there is one, else on ``pkg`` (its ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "synth_datasets"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for each import of a synth_datasets module in ``path``."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, None, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found += [(base, a.name, node.lineno) for a in node.names]
    return [(m, n, line) for m, n, line in found if m == PACKAGE or m.startswith(PACKAGE + ".")]


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    graph = {}
    for mod, path in files.items():
        deps = set()
        for base, name, _ in _imports(path):
            target = f"{base}.{name}" if name and f"{base}.{name}" in files else base
            if target in files and target != mod:
                deps.add(target)
        graph[mod] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (``[a, b, ..., a]``) of ``graph``, or None: an iterative depth-first search.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set()}) is None
    True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _unit(module: str) -> str:
    """The top-level module or subpackage a module belongs to (``synth_datasets.hub.card`` -> ``hub``); a file
    outside the package (a builder, an evaluate module) is a unit of its own."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return "outside: " + module
    return parts[1] if len(parts) > 1 else "(package)"


def private_imports() -> list[str]:
    """``from x import _name`` where x is in another unit than the importer: synth_datasets/ by unit, plus
    builders/ and the evaluate modules (metrics/*/), for which every synth_datasets module is another unit."""
    files = [*(ROOT / PACKAGE).rglob("*.py"), *(ROOT / "builders").glob("*.py"), *(ROOT / "metrics").glob("*/*.py")]
    modules = {_module_name(p) for p in (ROOT / PACKAGE).rglob("*.py")}
    bad = []
    for path in files:
        here = _module_name(path)
        for base, name, line in _imports(path):
            private = name is not None and name.startswith("_") and not name.startswith("__")
            if private and f"{base}.{name}" not in modules and _unit(base) != _unit(here):
                bad.append(f"{path.relative_to(ROOT)}:{line}: from {base} import {name}")
    return bad


def test_the_import_graph_is_read_from_relative_absolute_and_lazy_imports():
    graph = _graph()
    assert len(graph) == len(list((ROOT / PACKAGE).rglob("*.py")))  # every module of the package is in it
    # relative at module level, relative inside a function, absolute: each is an edge
    assert "synth_datasets.record" in graph["synth_datasets.hub.publish"]
    assert "synth_datasets.recipe" in graph["synth_datasets.cli"]  # `from .recipe import llms_of` in a function
    assert "synth_datasets.metrics.faithfulness" in graph["synth_datasets.metrics.downstream"]  # absolute
    assert "synth_datasets.hub" in graph[PACKAGE]  # `from .hub import publish`: the package, as publish is a name


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_record_and_recipe_sit_below_publishing():
    graph = _graph()
    assert graph["synth_datasets.record"] == set()  # the ground floor imports nothing of the library
    below = {m for m in graph if m.startswith("synth_datasets.hub")}
    reach, todo = set(), ["synth_datasets.recipe"]
    while todo:
        for d in graph[todo.pop()] - reach:
            reach.add(d)
            todo.append(d)
    assert not reach & below, f"recipe reaches hub/: {sorted(reach & below)}"


def test_no_private_name_is_imported_across_packages():
    bad = private_imports()
    assert not bad, "private names crossing packages (make them public in the owning module):\n" + "\n".join(bad)


def readme_layout() -> list[str]:
    """The modules README.md's "Layout" lists under ``synth_datasets/``, in order (a package's
    ``__init__`` stands after its last module: it imports them)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Layout\n", 1)[1]
    block = text.split("```\n", 2)[1]
    order, folders = [], []
    for line in block.splitlines():
        name = line.strip().split(" ", 1)[0]
        depth = (len(line) - len(line.lstrip())) // 2
        if depth == 0 and name != PACKAGE + "/":
            if folders:
                break
            continue
        while len(folders) > depth:
            closed = ".".join(folders)
            order.append(closed)  # the package (its __init__) comes after its modules
            folders.pop()
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        elif name.endswith(".py"):
            module = ".".join([*folders, name.removesuffix(".py")])
            order.append(PACKAGE if name == "__init__.py" and len(folders) == 1 else module)
    return order


def test_readme_layout_lists_every_module_in_an_order_the_imports_respect():
    order = readme_layout()
    position = {m: i for i, m in enumerate(order)}
    graph = _graph()
    assert sorted(set(order)) == sorted(order), "a module is listed twice"
    assert set(position) == set(graph), (f"README Layout misses {sorted(set(graph) - set(position))}, "
                                         f"lists {sorted(set(position) - set(graph))} that do not exist")
    upward = [f"{m} imports {d}" for m, deps in graph.items() for d in deps
              if position[d] > position[m] and not m.startswith(d + ".") and m != PACKAGE]
    assert not upward, "README Layout lists these after the modules that import them:\n" + "\n".join(upward)
