"""The package's import graph has no circles: every beacon module (each beacon.model module on
its own) imports only modules that do not import it back, directly or through others. Imports
inside functions count (a lazy import only hides a circle); imports under TYPE_CHECKING do not."""
from __future__ import annotations

import ast
from pathlib import Path

BEACON = Path(__file__).resolve().parent.parent / "beacon"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(BEACON.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.AST) -> list[str]:
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def _import_graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in BEACON.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found = _runtime_imports(ast.parse(path.read_text()))
        # a package's __init__ re-exports its modules: importing them is not a circle back
        graph[name] = {dep for dep in found if dep in paths and dep != name
                       and not (path.name == "__init__.py" and dep.startswith(name + "."))}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                circles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                walk(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    return circles


def test_beacon_has_no_import_circles():
    assert _circles(_import_graph()) == []


def test_the_former_circles_are_gone():
    graph = _import_graph()
    assert "beacon.evaluate" not in {d for m, deps in graph.items()
                                     if m.startswith("beacon.model") for d in deps}
    assert "beacon.training" not in graph["beacon.versions"]


def test_model_is_a_package_with_one_role_per_module():
    modules = {p.stem for p in (BEACON / "model").glob("*.py")}
    assert {"network", "trainer", "validator", "serialization", "fold_in", "hybrid"} <= modules
    assert not (BEACON / "model.py").exists()
    assert max(len(p.read_text().splitlines()) for p in (BEACON / "model").glob("*.py")) < 400


def test_public_names_still_import_from_beacon_model():
    from beacon.model import EpochReport, EventMatrix, HybridModel, place_planes  # noqa: F401
    from beacon.model import _best_epoch, _pairs, _prepare, _Trainer  # noqa: F401


def test_no_beacon_module_is_too_long_to_read_at_once():
    """recommend.py reached 1,063 lines before its cache, scoring and reasons moved out."""
    lengths = {str(p.relative_to(BEACON.parent)): len(p.read_text().splitlines())
               for p in BEACON.rglob("*.py")}
    assert {path: n for path, n in lengths.items() if n > 1000} == {}
