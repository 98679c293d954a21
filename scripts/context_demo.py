"""Train PSPNet and the no-PPM baseline on the synthetic boat-vs-car set with the same budget and compare.

python scripts/context_demo.py [--config config/demo_context.yaml] [--out outputs/context_demo]
                               [--num 120] [--size 128] [--task context|context_far] [--train-seeds 0 1 2]
                               [--opts KEY VALUE ...]
The design that shows the PPM's effect (README: Results; ~45 min for 3 seeds):
python scripts/context_demo.py --config config/demo_context_far.yaml --task context_far --size 192 --num 400 --train-seeds 0 1 2 --out outputs/context_far
Writes OUT/results.md (table), OUT/results.json, OUT/predictions.png and OUT/comparison.png (matplotlib).
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "context-demo", "DESCRIPTION": __doc__, "PROG": "scripts/context_demo.py"})
