"""The import graph of src/ (read with ast, nothing imported): packages import only lower layers, no module
imports itself through others, no library module has a ``__main__`` block, src imports nothing of this repository
outside src, docs/ARCHITECTURE.md shows exactly these layers and every module; and every file is written through
the owner, the package src/outputs/."""
import ast
import functools
import re
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[1]

# Lowest first.  A package may import its own modules and anything in a lower layer, nothing else.
LAYERS = [
    ["src.errors"],
    ["src.config", "src.outputs", "src.system", "src.plotting", "src.progress"],
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

@functools.lru_cache(maxsize=None)
def _modules() -> Dict[str, Path]:
    out = {}
    for path in (ROOT / "src").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return out


def _is_main_block(node: ast.AST) -> bool:
    """``if __name__ == "__main__":`` (either side of the comparison)."""
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and any(isinstance(n, ast.Name) and n.id == "__name__" for n in [node.test.left, *node.test.comparators]))


def _imports(path: Path) -> Set[str]:
    """Every ``src`` module ``path`` imports, anywhere in the file (a function's lazy import too); ``from src.a
    import b`` counts ``src.a.b`` as well when ``b`` is a module."""
    modules = _modules()
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "src":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "src")
    return found


def _repository_packages() -> Set[str]:
    """The names this repository's other top-level folders and files would be imported by (examples, tests, ...)."""
    names = {p.stem for p in ROOT.glob("*.py")}
    return (names | {p.name for p in ROOT.iterdir() if p.is_dir() and p.name.isidentifier()}) - {"src"}


def test_no_library_module_has_a_main_block():
    """One way into each command (python -m src COMMAND): a ``__main__`` block in a library module made the
    import circle cli <-> module and a second door to the same command."""
    found = [f"{path.relative_to(ROOT)}:{node.lineno}" for name, path in _modules().items() if name != "src.__main__"
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if _is_main_block(node)]
    assert not found, "__main__ blocks in library modules: " + ", ".join(found)


def test_src_imports_nothing_of_this_repository_outside_src():
    """The library stands alone: no import (lazy ones included, or by name through importlib) of examples/,
    tests/, benchmarks/, scripts/ or an entry file."""
    outside = _repository_packages()
    assert {"examples", "tests", "benchmarks", "train"} <= outside
    found = []
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            named = []
            if isinstance(node, ast.Import):
                named = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                named = [node.module]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
                  in ("import_module", "__import__", "run_module") and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                named = [node.args[0].value]
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in named if n.split(".")[0] in outside]
    assert not found, "src imports from outside src:\n" + "\n".join(found)


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
        if module.endswith(".__main__"):  # an entry file (python -m src.data.synthetic): above every layer, as src/__main__
            continue
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


# --- one owner of every file the program writes (src/outputs/) ---------------------------------------------------

OWNER = ROOT / "src" / "outputs"  # the package: every file in it may write
# Methods that write, rename, create or remove whatever they are called on (a path, an image, a figure, an array).
WRITE_ATTRS = {"write_text", "write_bytes", "tofile", "savefig", "save_checkpoint", "imwrite", "save", "savez",
               "savez_compressed", "savetxt", "unlink", "rename", "rmdir", "mkdir", "symlink_to", "hardlink_to",
               "touch", "FileHandler"}
# Functions, named by their module whatever alias or ``from`` import brought them in, that write or remove files.
WRITE_FUNCS = ({f"shutil.{n}" for n in ("copyfile", "copy", "copy2", "copytree", "move", "rmtree", "make_archive",
                                        "unpack_archive")}
               | {f"os.{n}" for n in ("remove", "unlink", "rename", "renames", "replace", "rmdir", "removedirs",
                                      "symlink", "link", "truncate", "makedirs", "mkdir", "mkfifo", "mknod")}
               | {f"numpy.{n}" for n in ("save", "savez", "savez_compressed", "savetxt")}
               | {"json.dump", "pickle.dump", "mindspore.export", "mindspore.save_checkpoint", "logging.FileHandler",
                  "cv2.imwrite"})
# Openers: the position of their mode argument and the flags or modes that make them read-only.
OPENERS = {"open": 1, "builtins.open": 1, "io.open": 1, "codecs.open": 1, "gzip.open": 1, "bz2.open": 1,
           "lzma.open": 1, "tarfile.open": 1, "zipfile.ZipFile": 1}
# Calls that run a command: one that removes, moves or copies files is a write around the owner.
RUNNERS = {"subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
           "subprocess.Popen", "os.system", "os.popen"} | {f"os.{n}" for n in ("execv", "execvp", "execl", "execlp",
                                                                               "spawnv", "spawnvp", "spawnl")}
FILE_COMMANDS = {"rm", "mv", "cp", "rmdir", "mkdir", "ln", "touch", "rsync", "install", "shred", "truncate", "dd"}
BUFFERS = {"io.BytesIO", "io.StringIO"}  # in-memory files: writing into one touches no file
CONVENTIONAL = {"np": "numpy", "ms": "mindspore"}  # the usual aliases, for a snippet that does not import them
# A writer (a lambda: MindSpore's exporter, its checkpoint writer) run into the path the owner gives, in its private folder
RUNS_EXPORTER = {"export_files", "put_export", "put_written", "written_file"}


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


def _aliases(tree: ast.AST) -> Dict[str, str]:
    """Each name an import binds -> the dotted name it stands for (``sh`` -> ``shutil``, ``rmtree`` ->
    ``shutil.rmtree``, ``np`` -> ``numpy``)."""
    names = dict(CONVENTIONAL)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, names: Dict[str, str]):
    """``(dotted name, rooted in an import)`` of a call's function; ``(None, False)`` for a method of a value."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None, False
    root = names.get(node.id)
    return ".".join([root or node.id] + parts[::-1]), root is not None


def _writes_mode(mode) -> bool:
    """A mode that may write: a literal with w/a/x/+, or anything not a literal (``open(p, mode)``)."""
    if mode is None:
        return False
    return not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)) or bool(set(mode.value) & set("wax+"))


def _mode_text(mode) -> str:
    return repr(mode.value) if isinstance(mode, ast.Constant) else "<non-literal mode>"


def _arg(call: ast.Call, index: int, *keywords: str):
    if len(call.args) > index and not any(isinstance(a, ast.Starred) for a in call.args[:index + 1]):
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg in keywords), None)


def _buffer_names(tree: ast.AST, names: Dict[str, str]) -> Set[str]:
    """Names bound to an in-memory file (``buf = io.BytesIO()``, ``with io.StringIO() as s``)."""
    found = set()
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, (ast.AnnAssign, ast.NamedExpr)) and node.value is not None:
            pairs = [(node.target, node.value)]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            pairs = [(i.optional_vars, i.context_expr) for i in node.items if i.optional_vars is not None]
        for target, value in pairs:
            if isinstance(target, ast.Name) and isinstance(value, ast.Call) and _is_buffer(value, names):
                found.add(target.id)
    return found


def _is_buffer(node, names: Dict[str, str], buffers: Set[str] = frozenset()) -> bool:
    if isinstance(node, ast.Name):
        return node.id in buffers
    if isinstance(node, ast.Call):
        name, _ = _dotted(node.func, names)
        return name in BUFFERS or (name or "").rsplit(".", 1)[-1] in ("BytesIO", "StringIO")
    return False


def _command_words(call: ast.Call):
    """The program names a command line starts with: the first item of a literal list, the first word of each
    part of a literal shell string (``a; rm -rf b && c``)."""
    cmd = _arg(call, 0, "args", "command", "cmd", "path", "file")
    items = cmd.elts if isinstance(cmd, (ast.List, ast.Tuple)) else [cmd]
    if items and isinstance(items[0], ast.Constant) and isinstance(items[0].value, str):
        yield Path(items[0].value).name
    for node in items:
        for const in ast.walk(node) if node is not None else ():
            if isinstance(const, ast.Constant) and isinstance(const.value, str):
                for part in re.split(r"[;&|\n()`]+|\$\(", const.value):
                    words = part.split()
                    if words:
                        yield Path(words[0]).name


def _writes_around_owner(tree: ast.AST):
    """(line, what) for each call that writes, renames, creates or removes a file without the owner.  Names are
    resolved through the file's imports and aliases; a write into an in-memory buffer is no write."""
    names = _aliases(tree)
    buffers = _buffer_names(tree, names)
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in RUNS_EXPORTER:
            skip.update(id(n) for arg in node.args if isinstance(arg, ast.Lambda) for n in ast.walk(arg))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or id(node) in skip:
            continue
        name, imported = _dotted(node.func, names)
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else None
        target = _arg(node, 1, "fp", "file") if name in ("json.dump", "pickle.dump") else _arg(node, 0, "file", "fname")
        if _is_buffer(target, names, buffers):
            continue
        if name in OPENERS:
            mode = _arg(node, OPENERS[name], "mode")
            if _writes_mode(mode):
                yield node.lineno, f"{name}(..., {_mode_text(mode)})"
        elif name in ("os.open", "os.fdopen"):
            if not _reads_only(name[3:], node):
                yield node.lineno, name
        elif name in WRITE_FUNCS:
            yield node.lineno, name
        elif name in RUNNERS:
            words = sorted(set(_command_words(node)) & FILE_COMMANDS)
            if words:
                yield node.lineno, f"{name}: {' '.join(words)}"
        elif attr is None or (name or "").startswith(("src.", "logging.")):
            continue  # a plain function of this file, the project's own API (the owner's), or logging
        elif attr == "open" and not imported:  # Path(p).open("w"), p.open(mode=m), Path(p).open(m)
            mode = _arg(node, 0, "mode")
            base = node.func.value
            on_path = isinstance(base, ast.Call) and (_dotted(base.func, names)[0] or "").endswith("Path")
            literal = isinstance(mode, ast.Constant) or any(k.arg == "mode" for k in node.keywords)
            if _writes_mode(mode) and (literal or on_path):  # x.open(name) of another kind (a zip, a store) reads
                yield node.lineno, f".open({_mode_text(mode)})"
        elif attr in WRITE_ATTRS or (attr == "replace" and len(node.args) == 1 and not node.keywords):
            yield node.lineno, f".{attr}(...)"  # Path.replace(target): str.replace takes two arguments


def test_only_a_visibly_read_only_open_passes_the_owner_check():
    calls = {"os.open(p, os.O_RDONLY | os.O_NONBLOCK)": False, "os.fdopen(fd, 'rb')": False,
             "os.open(p, os.O_RDONLY | os.O_CREAT)": True, "os.open(p, os.O_WRONLY)": True, "os.open(p, flags)": True,
             "os.fdopen(fd, 'wb')": True, "os.fdopen(fd)": True}
    for code, writes in calls.items():
        assert bool(list(_writes_around_owner(ast.parse(code)))) is writes, code


def test_nothing_writes_files_around_the_owner():
    """Every write, rename and removal of a file goes through src/outputs/ (atomic, no symlinks, manifest)."""
    found = []
    for path in _python_files():
        if OWNER in path.parents:
            continue
        for line, what in _writes_around_owner(ast.parse(path.read_text(encoding="utf-8"))):
            found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not found, "writes around src/outputs/:\n" + "\n".join(found)


def test_the_owner_check_catches_each_kind_of_write():
    """The check itself: each way of writing is found, and the owner's own exporter lambda is not."""
    code = ("open(p, 'w'); open(p, mode='ab'); np.save(p, x); Path(p).write_text('x'); os.remove(p); os.replace(a, b);"
            "shutil.rmtree(d); json.dump(r, f); ms.export(n, x, file_name=b); fig.savefig(p); cv2.imwrite(p, x);"
            "logging.FileHandler(p); p.unlink(); export_files(lambda base: ms.export(n, x, file_name=base), p);"
            "open(p); open(p, 'rb'); logging.getLogger(); s.replace('a', 'b')")
    found = [what for _, what in _writes_around_owner(ast.parse(code))]
    assert found == ["open(..., 'w')", "open(..., 'ab')", "numpy.save", ".write_text(...)", "os.remove", "os.replace",
                     "shutil.rmtree", "json.dump", "mindspore.export", ".savefig(...)", "cv2.imwrite",
                     "logging.FileHandler", ".unlink(...)"]


IDIOMS = {  # each way a file is written, moved, created or removed -> what the check reports
    "Path(p).open('w')": ".open('w')",
    "Path(p).open(mode='a')": ".open('a')",
    "Path(p).open(m)": ".open(<non-literal mode>)",
    "import io\nio.open(p, 'wb')": "io.open(..., 'wb')",
    "import codecs\ncodecs.open(p, 'w', 'utf-8')": "codecs.open(..., 'w')",
    "from io import open as o\no(p, 'w')": "io.open(..., 'w')",
    "open(p, mode)": "open(..., <non-literal mode>)",
    "open(p, mode=m)": "open(..., <non-literal mode>)",
    "from shutil import rmtree\nrmtree(d)": "shutil.rmtree",
    "import shutil as sh\nsh.rmtree(d)": "shutil.rmtree",
    "from shutil import move as mv\nmv(a, b)": "shutil.move",
    "import numpy as n\nn.save(p, x)": "numpy.save",
    "import numpy\nnumpy.savez(p, x=x)": "numpy.savez",
    "np.savez_compressed(p, x=x)": "numpy.savez_compressed",
    "from numpy import savetxt\nsavetxt(p, x)": "numpy.savetxt",
    "from os import remove\nremove(p)": "os.remove",
    "from os import replace as r\nr(a, b)": "os.replace",
    "import os as o\no.unlink(p)": "os.unlink",
    "os.makedirs(d, exist_ok=True)": "os.makedirs",
    "os.mkdir(d)": "os.mkdir",
    "Path(d).mkdir(parents=True)": ".mkdir(...)",
    "Path(a).replace(b)": ".replace(...)",
    "from mindspore import export\nexport(net, x, file_name=p)": "mindspore.export",
    "import json\njson.dump(r, f)": "json.dump",
    "import subprocess\nsubprocess.run(['rm', '-rf', d])": "subprocess.run: rm",
    "import subprocess as s\ns.check_call(['/bin/mv', a, b])": "subprocess.check_call: mv",
    "from subprocess import Popen\nPopen('cd x && cp a b', shell=True)": "subprocess.Popen: cp",
    "subprocess.run(['bash', '-c', f'rm -f {p}'])": "subprocess.run: rm",
    "import os\nos.system('rm -rf ' + d)": "os.system: rm",
}
READS = ["open(p)", "open(p, 'rb')", "open(p, mode='r', encoding='utf-8')", "io.open(p, 'r')", "Path(p).open()",
         "Path(p).open('rb')", "os.open(p, os.O_RDONLY | os.O_NONBLOCK)", "store.open(name)", "zf.open(name)",
         "from PIL import Image\nImage.open(p)", "import io\nbuf = io.BytesIO()\nnp.save(buf, x)",
         "from io import BytesIO\nb = BytesIO()\nimg.save(b, format='PNG')\nfig.savefig(b)",
         "import io\nwith io.StringIO() as s:\n    json.dump(r, s)", "np.save(io.BytesIO(), x)",
         "s.replace('a', 'b')", "subprocess.run(['git', 'status'])", "os.system('ls -l')",
         "from src.outputs import write_text\nwrite_text(p, t)", "logging.getLogger(__name__)"]


def test_the_owner_check_resolves_names_and_aliases_of_every_idiom():
    """Every idiom that writes, moves, creates or removes a file is caught, however it was imported; reads and
    writes into an in-memory buffer pass."""
    for code, what in IDIOMS.items():
        assert [w for _, w in _writes_around_owner(ast.parse(code))] == [what], code
    for code in READS:
        assert not list(_writes_around_owner(ast.parse(code))), code


def test_no_function_in_src_is_over_50_lines():
    """A function a reader can hold in view: every function and method under src/ is at most 50 lines."""
    long = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 50:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, "functions over 50 lines: " + ", ".join(long)


# --- tests mirror modules -----------------------------------------------------------------------------------------

# Tests about the repository as a whole rather than one module: they live at the top of tests/.
REPOSITORY_TESTS = {"test_architecture.py", "test_benchmarks.py", "test_docs_references.py", "test_readme_commands.py",
                    "test_readme_figures.py"}


def _has_logic(path: Path) -> bool:
    """A module with at least one function or method (re-exports, constants and bare exception classes have none)."""
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def _mirror(module: str) -> Path:
    """src.a.b -> tests/a/test_b.py; a package's own logic (src.data.prepare) -> tests/data/test_prepare.py."""
    parts = module.split(".")[1:]
    return ROOT.joinpath("tests", *parts[:-1], f"test_{parts[-1]}.py")


def _logic_modules() -> Dict[str, Path]:
    return {m: p for m, p in _modules().items()
            if m != "src" and not m.endswith("__main__") and _has_logic(p)}


def _imports_module(test: Path, module: str) -> bool:
    for node in ast.walk(ast.parse(test.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == module or a.name.startswith(module + ".")
                                                for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == module or node.module.startswith(module + "."):
                return True
            if any(f"{node.module}.{a.name}" == module for a in node.names):
                return True
    return False


def test_every_module_with_logic_has_its_own_test_file():
    """tests/<package>/test_<module>.py exists for each module of src/ with a function in it, and imports it."""
    missing = [f"{m} -> {_mirror(m).relative_to(ROOT)}" for m in sorted(_logic_modules())
               if not _mirror(m).is_file()]
    assert not missing, "modules without their test file:\n" + "\n".join(missing)
    blind = [str(_mirror(m).relative_to(ROOT)) for m in sorted(_logic_modules()) if not _imports_module(_mirror(m), m)]
    assert not blind, f"test files that do not import the module they are named after: {blind}"


def test_every_unit_test_file_is_named_after_a_module_of_its_folder():
    """A unit test file is test_<module>.py or test_<module>_<topic>.py of a module in the same package (so a reader
    finds a module's tests by its name); cross-package cases live in tests/integration/."""
    mirrors = {_mirror(m) for m in _logic_modules()}
    stray = []
    for test in sorted((ROOT / "tests").rglob("test_*.py")):
        rel = test.relative_to(ROOT / "tests")
        if rel.parts[0] in ("integration", "fixtures") or (len(rel.parts) == 1 and rel.name in REPOSITORY_TESTS):
            continue
        stems = [m.stem for m in mirrors if m.parent == test.parent]
        if not any(test.stem == s or test.stem.startswith(s + "_") for s in stems):
            stray.append(str(rel))
    assert not stray, f"test files named after no module of their folder: {stray}"


# --- one import path per name -------------------------------------------------------------------------------------

def _defined_names(path: Path) -> Set[str]:
    """The names a module binds itself at its top level (functions, classes, assignments; in an if / try too)."""
    names: Set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        for n in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, (ast.Assign, ast.AnnAssign)):
                for target in n.targets if isinstance(n, ast.Assign) else [n.target]:
                    names.update(e.id for e in ast.walk(target) if isinstance(e, ast.Name))
    return names


def test_every_name_is_imported_from_the_module_that_defines_it():
    """No re-exports: src/, tests/ and benchmarks/ import each name of src from the module that binds it (or import a
    module from its package), so a test that patches a name patches the module that looks it up."""
    modules = _modules()
    defined = {m: _defined_names(p) for m, p in modules.items()}
    wrong = []
    for folder in ("src", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                    wrong += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name} from {node.module}" for a in node.names
                              if a.name not in defined[node.module] and f"{node.module}.{a.name}" not in modules]
    assert not wrong, "names imported from a module that only imports them itself: " + ", ".join(wrong)
