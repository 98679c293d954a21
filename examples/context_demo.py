"""The global-context demonstration, kept here for users who import it from ``examples``.

The code lives in the library (``src/tools/context_demo.py``) and runs as ``python -m src context-demo``;
this file only names it.
"""
from src.tools.context_demo import (ambiguous_gain, boat_car_confusion, comparison_plot,  # noqa: F401
                                    effective_receptive_field, hull_receptive_field, markdown_table,
                                    mean_per_variant, run_context_demo)
