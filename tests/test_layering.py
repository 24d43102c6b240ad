"""The package map holds: packages import one way (no cycles between them), and the
torch-free runtime (``facemtl/infer``) imports no torch, not even inside a function."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "facemtl"


def _unit(path: Path) -> str:
    """The package-level unit a file belongs to: ``data`` for ``facemtl/data/x.py``,
    ``contract`` for ``facemtl/contract.py``."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (relative imports resolved)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            names.append(module)
            if node.module is None or module == "facemtl":
                names += [f"{module}.{a.name}" for a in node.names]  # `from facemtl import contract`
    return names


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "facemtl" or len(parts) == 1 or parts[1] == unit:
                continue
            if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file():
                graph.setdefault(unit, set()).add(parts[1])
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return (path + [node])[(path + [node]).index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_packages_import_one_way():
    graph = _graph()
    assert "contract" in graph["infer"] and "data" in graph["train"]  # the walk sees the package
    cycle = _cycle(graph)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


def test_infer_imports_no_torch():
    offenders = [f"{path.relative_to(PACKAGE.parent)}: {name}"
                 for path in sorted((PACKAGE / "infer").rglob("*.py"))
                 for name in _imports(path) if name.split(".")[0] == "torch"]
    assert not offenders, "torch imported in the torch-free runtime:\n" + "\n".join(offenders)
