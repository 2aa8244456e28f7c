"""The layers of ARCHITECTURE.md, held by reading the import graph of the tree.

Every import counts: module level, inside functions (lazy), under ``TYPE_CHECKING``, and string
references to our modules (``importlib.import_module("pkg.mod")``, ``"pkg.mod:attr"`` tables), so a
dependency cannot hide from the graph by being lazy. A package may import itself and the packages its
layer allows; no two modules may import each other, directly or through a longer loop.
"""

from __future__ import annotations

import ast
import os
import re

from tests.fixtures import REPO_ROOT

ROOT = REPO_ROOT
PACKAGES = ("core", "segmentation", "generation", "vla", "synthetic", "training", "orchestrator")
TOP_MODULES = ("workflow_master",)

# package -> the other packages it may import (ARCHITECTURE.md, "Layers")
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "segmentation": frozenset({"core"}),
    "generation": frozenset({"core"}),
    "vla": frozenset({"core"}),
    "synthetic": frozenset({"core"}),
    "training": frozenset({"core", "segmentation", "generation"}),
    "orchestrator": frozenset({"core", "segmentation", "generation", "vla", "synthetic", "training"}),
    "workflow_master": frozenset({"orchestrator"}),
}
# third-party packages a layer must not import at all (the orchestrator image has no torch)
FORBIDDEN_THIRD_PARTY: dict[str, frozenset[str]] = {
    "core": frozenset({"flyte"}),
    "workflow_master": frozenset({"torch", "diffusers", "transformers", "sam2"}),
}
_MODULE_STRING = re.compile(r"^([a-z_]+(?:\.[a-z_0-9]+)+)(?::[A-Za-z_]\w*)?$")


def package_of(module: str) -> str:
    return module.split(".")[0]


def discover(root: str = ROOT) -> dict[str, str]:
    """Dotted module name -> file path, for every module of our packages and the top-level modules."""
    mods: dict[str, str] = {}
    for pkg in PACKAGES:
        for folder, _dirs, files in os.walk(os.path.join(root, pkg)):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, name), root)[:-3]
                    mods[rel.replace(os.sep, ".").removesuffix(".__init__")] = os.path.join(folder, name)
    for top in TOP_MODULES:
        mods[top] = os.path.join(root, f"{top}.py")
    return mods


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of ``name`` that is one of our modules (``a.b.attr`` -> ``a.b``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(path: str, modules: set[str]) -> tuple[set[str], set[str]]:
    """(our modules, third-party top-level packages) that the file at ``path`` refers to."""
    ours: set[str] = set()
    third: set[str] = set()
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            # `from pkg import mod` depends on pkg.mod; `from pkg.mod import name` on pkg.mod
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = _MODULE_STRING.match(node.value.strip())
            if match and package_of(match.group(1)) in ALLOWED:
                names.append(match.group(1))
    for name in names:
        found = _resolve(name, modules)
        if found is not None:
            ours.add(found)
        elif package_of(name) not in ALLOWED:
            third.add(package_of(name))
    return ours, third


def import_graph(root: str = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    mods = discover(root)
    names = set(mods)
    graph, third = {}, {}
    for mod, path in mods.items():
        ours, others = imports_of(path, names)
        graph[mod] = ours - {mod}
        third[mod] = others
    return graph, third


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer_violations(graph: dict[str, set[str]], third: dict[str, set[str]] | None = None) -> list[str]:
    out = []
    for mod, targets in sorted(graph.items()):
        pkg = package_of(mod)
        for target in sorted(targets):
            other = package_of(target)
            if other != pkg and other not in ALLOWED.get(pkg, frozenset()):
                out.append(f"{mod} imports {target}: {pkg} may import only {sorted(ALLOWED.get(pkg, ()))}")
    for mod, packages in sorted((third or {}).items()):
        for bad in sorted(packages & FORBIDDEN_THIRD_PARTY.get(package_of(mod), frozenset())):
            out.append(f"{mod} imports {bad}, which its layer must not")
    return out


def test_the_tree_keeps_its_layers():
    graph, third = import_graph()
    assert len(graph) > 80   # the walk found the tree
    assert layer_violations(graph, third) == []


def test_the_tree_has_no_import_cycle():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_the_checks_fail_on_planted_cycles_and_upward_imports():
    planted = {"core.a": {"core.b"}, "core.b": {"core.c"}, "core.c": {"core.a"},     # a loop of three
               "vla.x": {"vla.y"}, "vla.y": {"vla.x"},                                # a pair
               "generation.z": {"core.a"}}
    assert cycles(planted) == [["core.a", "core.b", "core.c"], ["vla.x", "vla.y"]]
    upward = {"core.storage": {"orchestrator.plan"}, "segmentation.stage": {"generation.stage", "core.ids"},
              "workflow_master": {"orchestrator.dag", "segmentation.stage"}}
    assert layer_violations(upward) == [
        "core.storage imports orchestrator.plan: core may import only []",
        "segmentation.stage imports generation.stage: segmentation may import only ['core']",
        "workflow_master imports segmentation.stage: workflow_master may import only ['orchestrator']",
    ]
    assert layer_violations({"core.x": set()}, {"core.x": {"flyte", "numpy"}}) == ["core.x imports flyte, which its layer must not"]


def test_lazy_and_string_references_count(tmp_path):
    for pkg in ("core", "vla"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "workflow_master.py").write_text("")
    (tmp_path / "core" / "lazy.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vla import stage\n"
        "def f():\n    import importlib\n    return importlib.import_module('vla.report')\n")
    (tmp_path / "vla" / "stage.py").write_text("TABLE = {'x': 'core.lazy:f'}\n")
    (tmp_path / "vla" / "report.py").write_text("")
    graph, _ = import_graph(str(tmp_path))
    assert graph["core.lazy"] == {"vla.stage", "vla.report"}
    assert graph["vla.stage"] == {"core.lazy"}
    assert cycles(graph) == [["core.lazy", "vla.stage"]]
