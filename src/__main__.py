"""python -m src COMMAND [args] (from the repository folder): every command of the project; see src/cli.py."""
import sys

from src.cli import main

sys.exit(main())
