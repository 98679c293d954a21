"""Run an exported model on every preprocessed input file (the 310 app's contract, in Python).

python inference/run.py --work WORK --model pspnet50.onnx [--backend onnx|mindir]
Reads WORK/input/*.bin, writes WORK/output/*_0.bin (float32 logits).
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "infer", "DESCRIPTION": __doc__, "PROG": "inference/run.py"})
