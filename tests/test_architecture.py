"""The import graph of src/ (read with ast, nothing imported): packages import only lower layers, no module
imports itself through others, and docs/ARCHITECTURE.md shows exactly these layers and every module."""
import ast
import re
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[1]

# Lowest first.  A package may import its own modules and anything in a lower layer, nothing else.
LAYERS = [
    ["src.errors"],
    ["src.config", "src.paths", "src.logging_setup", "src.device", "src.distributed", "src.launch", "src.plotting",
     "src.progress"],
    ["src.checkpoint", "src.runlock"],
    ["src.data"],
    ["src.model"],
    ["src.convert", "src.evaluation"],
    ["src.train", "src.deploy"],
    ["src.tools"],
    ["src.cli"],
    ["src.__main__"],
]

def _modules() -> Dict[str, Path]:
    out = {}
    for path in (ROOT / "src").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` - a module's own command-line alias, not a library import."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _imports(path: Path) -> Set[str]:
    found: Set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_block(node):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "src":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "src")
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _layer_of() -> Dict[str, int]:
    return {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def test_every_package_has_a_layer():
    layer = _layer_of()
    missing = sorted({_package(m) for m in _modules()} - set(layer) - {"src"})
    assert not missing, f"packages without a layer in LAYERS: {missing}"


def test_packages_import_only_lower_layers():
    layer = _layer_of()
    upward = []
    for module, path in _modules().items():
        here = _package(module)
        for target in _imports(path):
            there = _package(target)
            if there != here and there != "src" and layer[there] >= layer.get(here, 0):
                upward.append(f"{module} imports {target} (layer {layer[there]} >= {layer.get(here)})")
    assert not upward, "\n".join(upward)


def test_no_module_imports_itself_through_others():
    modules = _modules()
    graph = {m: {t for t in _imports(p) if t in modules and t != m} for m, p in modules.items()}
    state: Dict[str, int] = {}
    cycles = []

    def walk(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, stack + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert not cycles, "\n".join(cycles)


def test_architecture_doc_shows_these_layers_and_every_module():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = re.search(r"## Layers.*?```\n(.*?)```", text, re.S)
    assert block, "docs/ARCHITECTURE.md has no '## Layers' block"
    shown = [line.split(":", 1)[1].split() for line in block.group(1).strip().splitlines()]
    assert shown == LAYERS, "the Layers block of docs/ARCHITECTURE.md differs from tests/test_architecture.py"
    files = {str(p.relative_to(ROOT)) for p in _modules().values()}
    unnamed = sorted(f for f in files if not f.endswith("__init__.py") and Path(f).name not in text)
    assert not unnamed, f"modules docs/ARCHITECTURE.md does not mention: {unnamed}"
