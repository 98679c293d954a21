"""Merge the model outputs of the 310 flow into predictions, score them and write color masks.

python inference/postprocess.py --config config/X.yaml --work WORK [--results-dir DIR]
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "postprocess", "DESCRIPTION": __doc__, "PROG": "inference/postprocess.py"})
