"""``python -m src.data.prepare`` (the form earlier docs used): an alias of ``python -m src prepare``."""
import sys

from src.cli import main

sys.exit(main(command="prepare"))
