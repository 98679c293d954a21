"""The tests the documentation cites exist where it says: every `tests/x/test_y.py`, `test_y.py::test_z` and bare
`test_z` in README.md and docs/*.md names a real test file or test function, so a moved or renamed test fails here
until the pages follow it."""
import ast
import functools
import re
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[1]
CONFIG_KEYS = {"test_h", "test_w", "test_list", "test_gpu"}  # eval.test_h, semseg's TEST.test_list, the zoo's test_gpu: keys
FILE_REF = re.compile(r"^((?:[\w.]+/)*test_\w+\.py)(?:::(test_\w+))?$")


@functools.lru_cache(maxsize=None)
def _test_files() -> Dict[Path, Set[str]]:
    """Every test file under tests/ -> the test functions defined in it."""
    out = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out[path] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return out


def _cited():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for token in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8")):
            if "test_" in token and token not in CONFIG_KEYS and re.fullmatch(r"[\w./:]+", token):
                yield page.relative_to(ROOT), token


def _files_named(ref: str):
    """The test files a reference names: a path from the repository or from tests/, or a bare file name."""
    if "/" in ref:
        return [p for p in _test_files() if p in (ROOT / ref, ROOT / "tests" / ref) or str(p).endswith("/" + ref)]
    return [p for p in _test_files() if p.name == ref]


def _problem(token: str):
    every_function = set().union(*_test_files().values())
    match = FILE_REF.match(token)
    if match:
        files = _files_named(match.group(1))
        if not files:
            return "no such test file"
        if match.group(2) and not any(match.group(2) in _test_files()[f] for f in files):
            return f"{match.group(1)} has no {match.group(2)}"
        return None
    if re.fullmatch(r"test_\w+", token):
        stems = {p.stem for p in _test_files()}
        return None if token in every_function or token in stems else "no test function or file of that name"
    return None  # a command line or a path that is not a test reference


def test_every_test_the_documentation_cites_exists():
    wrong = [f"{page}: `{token}`: {why}" for page, token in _cited() for why in [_problem(token)] if why]
    assert not wrong, "documentation cites tests that are not there:\n" + "\n".join(wrong)
