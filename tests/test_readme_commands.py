"""Every command the README and the manual pages in docs/ show names a file that exists and only flags that
file accepts.

Commands are the ``python ...`` and ``bash ...`` lines of the ```bash blocks of README.md and docs/*.md.  A
Python entry point is asked for ``--help`` (with its sub-command, if any) and every ``--flag`` of the line
must appear there; a shell script must exist and mention each flag it is given.
"""
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands():
    """``(line, argv)`` for every python/bash command in the bash blocks of the README and docs/*.md (a line
    ending in a backslash goes on in the next one)."""
    found = []
    for doc in DOCS:
        found += _commands(doc.read_text(encoding="utf-8"))
    return found


def _commands(doc_text):
    found, inside, pending = [], False, ""
    for line in doc_text.splitlines():
        if line.startswith("```"):
            inside, pending = line.strip() == "```bash", ""
            continue
        if not inside:
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        line, pending = pending + line.strip(), ""
        text = line.split("#", 1)[0].replace("[", " ").replace("]", " ").strip()
        argv = [t for t in shlex.split(text) if not re.match(r"^[A-Z_]+=", t)]  # drop VAR=value prefixes
        if argv and argv[0] in ("python", "bash"):
            found.append((line.strip(), argv))
    return found


COMMANDS = readme_commands()


def test_the_readme_has_commands_to_check():
    programs = {argv[1] if argv[1] != "-m" else argv[2] for _, argv in COMMANDS}
    assert {"train.py", "eval.py", "export.py", "convert/convert_weights.py"} <= programs


def _help(argv):
    if argv[1] == "-m":
        head, rest = [sys.executable, "-m", argv[2]], argv[3:]
        module = ROOT / argv[2].replace(".", "/")
        assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), argv[2]
    else:
        head, rest = [sys.executable, argv[1]], argv[2:]
        assert (ROOT / argv[1]).is_file(), f"{argv[1]} does not exist"
    sub = []  # the command and its sub-command (python -m src prepare folders ...)
    for word in rest[:2]:
        if word.startswith("-") or os.path.splitext(word)[1] or "/" in word:
            break
        sub.append(word)
    returncode, out, err = _help_text(tuple(head + sub))
    assert returncode == 0, f"{' '.join(argv[:3])} --help failed: {err[-500:]}"
    return out


@functools.lru_cache(maxsize=None)
def _help_text(command):
    """``(status, stdout, stderr)`` of ``command --help``: asked once per program, however many lines use it."""
    proc = subprocess.run(list(command) + ["--help"], cwd=str(ROOT), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GLOG_v": "3"})
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("line,argv", COMMANDS, ids=[c[0][:60] for c in COMMANDS])
def test_readme_command_exists_and_accepts_its_flags(line, argv):
    flags = [t.split("=", 1)[0] for t in argv[1:] if t.startswith("--")]
    if argv[0] == "python":
        text = _help(argv)
    else:
        script = ROOT / argv[1]
        assert script.is_file(), f"{argv[1]} does not exist"
        text = script.read_text()
    for flag in flags:
        assert re.search(re.escape(flag) + r"\b", text), f"README line {line!r}: {flag} is not accepted"
