"""The backend's modules import each other without a cycle, counting imports inside functions.

Why: a cycle hidden in a function-level import (the train CLI importing the inference CLI and
back) works until someone moves an import to the top, and it ties modules that should each
have one job. The graph is read with ``ast``, so nothing is imported to build it.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: (folder holding top-level packages, package) for every package whose imports are checked.
PACKAGES = ((REPO / "src", "ptycho"), (REPO / "src", "ptycho_torch"), (REPO, "bench"), (REPO, "harness"))


def module_names(packages: tuple[tuple[Path, str], ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the packages (``__init__`` is the package)."""
    names: dict[str, Path] = {}
    for root, package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Every dotted name an import statement may load (``from a import b`` may load ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against the importing module's package
        anchor = module.split(".")
        anchor = anchor if is_package else anchor[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(packages: tuple[tuple[Path, str], ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports anywhere in its body (functions included)."""
    names = module_names(packages)
    graph: dict[str, set[str]] = {}
    for module, path in names.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                targets.update(name for name in _imported(node, module, is_package) if name in names)
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None if the graph is acyclic."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_backend_bench_and_harness_imports_are_acyclic():
    graph = import_graph(PACKAGES)
    assert {"ptycho.params", "ptycho_torch.train", "ptycho_torch.inference", "bench.quality", "harness.collate"} <= set(graph)
    assert "harness.collation" in graph["harness.collate"], "the graph lost a known harness edge"
    assert "ptycho_torch.model" in graph["ptycho_torch.workflows.components"], "the graph lost a known edge"
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle (function-level imports count): {' -> '.join(cycle or [])}"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    "files",
    [
        {"pkg/a.py": "import pkg.b\n", "pkg/b.py": "from pkg import a\n"},
        {"pkg/a.py": "def f():\n    from pkg.b import g\n", "pkg/b.py": "def g():\n    from pkg import a\n"},
        {"pkg/a.py": "from . import b\n", "pkg/b.py": "from .sub.c import x\n", "pkg/sub/c.py": "from ..a import y\n"},
    ],
    ids=["top-level", "inside-functions", "relative"],
)
def test_a_cycle_is_found(tmp_path, files):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", **files})
    cycle = find_cycle(import_graph(((tmp_path, "pkg"),)))
    assert cycle is not None and cycle[0] == cycle[-1], f"expected a cycle among {sorted(files)}, got {cycle}"


def test_a_chain_is_not_a_cycle(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "import pkg.b\nimport os\n", "pkg/b.py": "def f():\n    import pkg.c\n",
                      "pkg/c.py": "import numpy\n"})
    graph = import_graph(((tmp_path, "pkg"),))
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.c"}, "pkg.c": set()}
    assert find_cycle(graph) is None
