"""Cut the images of a list into the evaluation protocol's windows as binary inputs for the 310 app.

python inference/preprocess.py --config config/X.yaml --out WORK [--list LIST] [--batch_size N]
Writes WORK/input/*.bin (float32, batch x 3 x crop_h x crop_w) and WORK/meta.json.
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "preprocess", "DESCRIPTION": __doc__, "PROG": "inference/preprocess.py"})
