"""Experiments built on the library, outside it: the global-context demonstration (context_demo.py, which names
src/tools/context_demo.py)."""
