"""python <repository folder> COMMAND [args]: the project's commands, from any working directory.

The one bootstrap (docs/ARCHITECTURE.md, "Entry points"): the aliases in convert/, inference/ and scripts/
run this file with ``runpy.run_path(<repository folder>)``, which puts the repository on ``sys.path`` so
that ``import src`` works however they are started; they pass their command as ``COMMAND`` (and ``DESCRIPTION``, ``PROG`` for --help).
From the repository folder, ``python -m src COMMAND`` is the same.
"""
import sys

from src.cli import main

if __name__ == "__main__":
    sys.exit(main(command=globals().get("COMMAND"), description=globals().get("DESCRIPTION"),
                  prog=globals().get("PROG")))
