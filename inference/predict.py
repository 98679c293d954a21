"""Segment images (files or folders) and write color masks and overlays with the dataset palette.

python inference/predict.py --config config/X.yaml --model PATH [--backend ms|mindir|onnx] --input A.jpg DIR ... --out OUT
Any image size: the evaluation protocol (sliding windows, flip) is used.
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "predict", "DESCRIPTION": __doc__, "PROG": "inference/predict.py"})
