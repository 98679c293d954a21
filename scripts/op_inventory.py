"""List every primitive of the Ascend training step and of the exported network; fail on any not allowlisted.

python scripts/op_inventory.py [--config config/voc2012_pspnet50.yaml] [--size H W] [--batch 2]
                               [--allowlist src/tools/ascend_op_allowlist.yaml] [--out FILE.md] [--opts KEY VALUE ...]
Compiles on CPU (no Ascend needed) at the config's crop size unless --size is given; exit 2 names the
primitives that are not on the allowlist.
"""
import os
import runpy

if __name__ == "__main__":  # the bootstrap (docs/ARCHITECTURE.md): run the repository folder, which imports src
    runpy.run_path(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), run_name="__main__",
                   init_globals={"COMMAND": "op-inventory", "DESCRIPTION": __doc__, "PROG": "scripts/op_inventory.py"})
