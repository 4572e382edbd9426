"""The package's structure: its imports (static, and by string: ``import_module``, ``"module:attr"``
handlers, the registry's recipes) form no circle and never run from a lower floor to a higher one;
no source file is over 400 lines; the training, masks and workflow paths name no method."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

from faulttune import methods

SRC = REPO / "src" / "faulttune"
# Floors, lowest first: a module may import its own floor's modules and any lower floor's. A
# module belongs to the longest prefix listed; a new module must be placed here.
FLOORS = [
    ("faulttune", "faulttune.io", "faulttune.timings", "faulttune.resume", "faulttune.stats_synthetic"),
    # pure algorithms and engines
    ("faulttune.masks", "faulttune.losses", "faulttune.stats", "faulttune.sandbox", "faulttune.models",
     "faulttune.generate"),
    # data, the benchmarks' scorers, bugs, training examples as tensors, shards' files
    ("faulttune.data", "faulttune.evaluate", "faulttune.bigcodebench", "faulttune.bugs",
     "faulttune.contamination", "faulttune.batching", "faulttune.shards"),
    # the registry: methods, their examples and mask kinds, their training behaviour
    ("faulttune.methods",),
    # what the registry drives
    ("faulttune.mask_table", "faulttune.tracing", "faulttune.training", "faulttune.config",
     "faulttune.codeflow", "faulttune.sensitivity", "faulttune.mask_view", "faulttune.manifest"),
    # every stage's settings, the DAG's plan, what each experiment will train on, the report
    ("faulttune.settings", "faulttune.dag", "faulttune.plan", "faulttune.report"),
    # entry points: the rules' stages and the command line
    ("faulttune.stages", "faulttune.cli"),
]
HANDLER = re.compile(r"^(faulttune(?:\.\w+)+):\w+$")  # "module:attr", imported by string


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SRC.rglob("*.py")}


def known(name: str) -> str | None:
    """The module ``name`` denotes (a name inside a module: that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def type_checking_nodes(tree: ast.AST) -> set[int]:
    return {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}


def imports_of(module: str, path: Path) -> set[str]:
    """The modules ``module`` imports when it runs: import statements anywhere in it (not under
    ``if TYPE_CHECKING``), ``import_module("...")`` calls and ``"module:attr"`` strings."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip, out = type_checking_nodes(tree), set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {known(a.name) for a in node.names if a.name.startswith("faulttune")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            if base.startswith("faulttune"):
                out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else known(base)
                        for a in node.names}
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and ast.unparse(node.func).split(".")[-1] in ("import_module", "__import__")):
            out.add(known(str(node.args[0].value)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = HANDLER.match(node.value)
            if match:
                out.add(known(match.group(1)))
    return out - {None, module}


def import_graph() -> dict[str, set[str]]:
    graph = {module: imports_of(module, path) for module, path in MODULES.items()}
    # the registry imports each method's training behaviour by the name its entry holds
    for method in methods.METHODS.values():
        if isinstance(method.training, str):
            graph["faulttune.methods.registry"].add(known(method.training.partition(":")[0]))
    return graph


def floor(module: str) -> int | None:
    found = [(len(prefix), i) for i, group in enumerate(FLOORS) for prefix in group
             if module == prefix or module.startswith(prefix + ".")]
    return max(found)[1] if found else None


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_reads_imports_of_every_kind():
    graph = import_graph()
    assert "faulttune.methods.cct" in graph["faulttune.methods.registry"]  # the registry's string
    assert "faulttune.stages.eval" in graph["faulttune.cli"]  # a "module:attr" handler
    assert "faulttune.methods.registry" not in graph["faulttune.methods.recipe"]  # TYPE_CHECKING
    assert "faulttune.training.setup" in graph["faulttune.training.loop"]


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_no_import_from_a_lower_floor_to_a_higher_one():
    graph = import_graph()
    assert [m for m in graph if floor(m) is None] == []
    upward = [f"{m} (floor {floor(m)}) -> {target} (floor {floor(target)})"
              for m, targets in graph.items() for target in targets if floor(target) > floor(m)]
    assert upward == []


def test_the_checks_would_catch_a_circle_and_an_upward_import():
    graph = {"faulttune.io": {"faulttune.methods.registry"}, "faulttune.methods.registry": {"faulttune.io"}}
    assert circles(graph) == [["faulttune.io", "faulttune.methods.registry"]]
    assert floor("faulttune.io") < floor("faulttune.methods.registry")


def test_no_source_file_is_over_400_lines():
    lines = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in lines.items() if n > 400} == {}


# Where no method may be named: the trainer, the masks stage, the mask table, the training and
# masks rules and their scripts (the registry, the methods' own modules and losses, the docs and
# the config files are where they are named).
UNNAMED = [SRC / "training", SRC / "mask_table", SRC / "batching.py", SRC / "tracing",
           SRC / "stages" / "masks.py", SRC / "stages" / "train.py", SRC / "stages" / "traces.py",
           *(REPO / "workflow" / "rules" / f"{r}.smk" for r in ("common", "masks", "train")),
           *(REPO / "workflow" / "scripts" / f"{s}.py" for s in ("masks", "train", "traces"))]


@pytest.mark.parametrize("path", UNNAMED, ids=lambda p: str(p.relative_to(REPO)))
def test_the_training_and_masks_paths_name_no_method(path):
    names = {*methods.METHODS, *(k for e in methods.EXAMPLES.values() for k in e.row_kinds())}
    names -= {"base"}  # "base" is also an ordinary word
    pattern = re.compile(r"\b(" + "|".join(sorted(names, key=len, reverse=True)) + r")\b", re.IGNORECASE)
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    found = [f"{f.relative_to(REPO)}:{n}: {line.strip()}" for f in files
             for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
             if pattern.search(line)]
    assert found == []
