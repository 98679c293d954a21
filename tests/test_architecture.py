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
    ["src.config", "src.outputs", "src.logging_setup", "src.device", "src.distributed", "src.launch", "src.plotting",
     "src.progress", "src.checkpoint_format"],
    ["src.checkpoint", "src.compat"],
    ["src.data"],
    ["src.model"],
    ["src.runtime"],
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


# --- one owner of every file the program writes (src/outputs.py) -------------------------------------------------

OWNER = ROOT / "src" / "outputs.py"
WRITE_ATTRS = {"write_text", "write_bytes", "tofile", "savefig", "save_checkpoint", "imwrite", "save", "unlink",
               "rename", "rmdir", "symlink_to", "hardlink_to", "touch", "FileHandler"}
SHUTIL_ATTRS = {"copyfile", "copy", "copy2", "copytree", "move", "rmtree"}
OS_ATTRS = {"remove", "unlink", "rename", "replace", "rmdir", "removedirs", "symlink", "link", "open", "fdopen",
            "truncate"}
RUNS_EXPORTER = {"export_files", "put_export"}  # the owner runs an exporter (a lambda) in its private folder


def _python_files():
    for folder in ("src", "scripts", "inference", "benchmarks", "convert", "examples"):
        yield from (ROOT / folder).rglob("*.py")
    yield from ROOT.glob("*.py")


WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND", "O_TMPFILE"}


def _reads_only(attr: str, call: ast.Call) -> bool:
    """``os.open(path, os.O_RDONLY | ...)`` without a flag that writes, or ``os.fdopen(fd, "rb")``: a read (a
    user's file opened without blocking), visible in the call itself."""
    arg = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg in ("flags", "mode")),
                                                       None)
    if attr == "open" and arg is not None:
        flags = {n.attr for n in ast.walk(arg) if isinstance(n, ast.Attribute)}
        return "O_RDONLY" in flags and not flags & WRITE_FLAGS
    if attr == "fdopen":
        return isinstance(arg, ast.Constant) and isinstance(arg.value, str) and not set(arg.value) & set("wax+")
    return False


def _writes_around_owner(tree: ast.AST):
    """(line, what) for each call that writes, renames or removes a file without the owner."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in RUNS_EXPORTER:
            skip.update(id(n) for arg in node.args if isinstance(arg, ast.Lambda) for n in ast.walk(arg))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in skip:
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
                yield node.lineno, f"open(..., {mode.value!r})"
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner == "os" and func.attr in OS_ATTRS and not _reads_only(func.attr, node):
                yield node.lineno, f"os.{func.attr}"
            elif owner == "shutil" and func.attr in SHUTIL_ATTRS:
                yield node.lineno, f"shutil.{func.attr}"
            elif owner == "json" and func.attr == "dump":
                yield node.lineno, "json.dump"
            elif owner in ("ms", "mindspore") and func.attr == "export":
                yield node.lineno, "ms.export"
            elif func.attr in WRITE_ATTRS and not (owner == "logging" and func.attr != "FileHandler"):
                yield node.lineno, f".{func.attr}(...)"


def test_only_a_visibly_read_only_open_passes_the_owner_check():
    calls = {"os.open(p, os.O_RDONLY | os.O_NONBLOCK)": False, "os.fdopen(fd, 'rb')": False,
             "os.open(p, os.O_RDONLY | os.O_CREAT)": True, "os.open(p, os.O_WRONLY)": True, "os.open(p, flags)": True,
             "os.fdopen(fd, 'wb')": True, "os.fdopen(fd)": True}
    for code, writes in calls.items():
        assert bool(list(_writes_around_owner(ast.parse(code)))) is writes, code


def test_nothing_writes_files_around_the_owner():
    """Every write, rename and removal of a file goes through src/outputs.py (atomic, no symlinks, manifest)."""
    found = []
    for path in _python_files():
        if path == OWNER:
            continue
        for line, what in _writes_around_owner(ast.parse(path.read_text(encoding="utf-8"))):
            found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, "writes around src/outputs.py:\n" + "\n".join(found)


def test_the_owner_check_catches_each_kind_of_write():
    """The check itself: each way of writing is found, and the owner's own exporter lambda is not."""
    code = ("open(p, 'w'); open(p, mode='ab'); np.save(p, x); Path(p).write_text('x'); os.remove(p); os.replace(a, b);"
            "shutil.rmtree(d); json.dump(r, f); ms.export(n, x, file_name=b); fig.savefig(p); cv2.imwrite(p, x);"
            "logging.FileHandler(p); p.unlink(); export_files(lambda base: ms.export(n, x, file_name=base), p);"
            "open(p); open(p, 'rb'); logging.getLogger(); s.replace('a', 'b')")
    found = [what for _, what in _writes_around_owner(ast.parse(code))]
    assert found == ["open(..., 'w')", "open(..., 'ab')", ".save(...)", ".write_text(...)", "os.remove", "os.replace",
                     "shutil.rmtree", "json.dump", "ms.export", ".savefig(...)", ".imwrite(...)", ".FileHandler(...)",
                     ".unlink(...)"]
