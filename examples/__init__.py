"""Experiments built on the library, outside it: the global-context demonstration (context_demo.py)."""
