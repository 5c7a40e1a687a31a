"""The house rules of docs/architecture.md, checked on the package's source: the layer order of its folders, no
import cycle between its modules, no library code importing a command, no file over 450 lines.

Imports are read with ``ast`` from every ``import`` statement of a file, those inside functions too (a lazy import
is still a dependency), so the checks do not import the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "concerto3d"

# Each layer may import itself and the layers before it, never a later one (docs/architecture.md).
LAYERS: list[set[str]] = [
    {"errors", "labels"},
    {"io"},
    {"synth"},
    {"ops"},
    {"device"},
    {"data"},
    {"objectives"},
    {"models"},
    {"config"},
    {"inference"},
    {"training"},
    {"evaluation"},
    {"visualization"},
    {"demo", "cli", "__main__", "__init__"},
]
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``path`` imports (``from concerto3d.x import y`` counts ``concerto3d.x.y`` when that is a
    module, else ``concerto3d.x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules and name != me:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def layer_of(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module}: its folder {top!r} is in no layer of LAYERS (add it where it belongs)")


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checks_can_fail():
    """The helpers see a cycle and a layer violation in a hand-made graph."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    assert layer_of("concerto3d.io.sens") < layer_of("concerto3d.models.concerto")
    with pytest.raises(AssertionError, match="no layer"):
        layer_of("concerto3d.nowhere.x")


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_each_folder_imports_only_the_folders_below_it():
    wrong = [f"{mod} imports {dep}" for mod, deps in import_graph().items() for dep in sorted(deps)
             if layer_of(dep) > layer_of(mod)]
    assert not wrong, "\n".join(wrong)


def test_library_code_imports_no_command_module():
    def is_command(module: str) -> bool:
        last = module.rsplit(".", 1)[-1]
        return last in ("cli", "demo", "command", "__main__") or last.endswith("_command")

    wrong = [f"{mod} imports {dep}" for mod, deps in import_graph().items() for dep in sorted(deps)
             if is_command(dep) and not is_command(mod)]
    assert not wrong, "\n".join(wrong)


def test_files_and_models_stay_in_their_lanes():
    """io and synth never import torch; models and objectives open no files (no io, no preprocessed scenes)."""
    for path in sorted((PACKAGE / "io").rglob("*.py")) + sorted((PACKAGE / "synth").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "torch" not in names, f"{path.relative_to(PACKAGE)} imports torch"
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith(("concerto3d.models", "concerto3d.objectives")):
            bad = [d for d in deps if d.startswith(("concerto3d.io", "concerto3d.data.scene", "concerto3d.inference"))]
            assert not bad, f"{mod} imports {bad}"


def test_no_file_over_the_line_limit():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"
