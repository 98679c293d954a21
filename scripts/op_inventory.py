"""List every primitive of the Ascend training step and of the exported network; fail on any not allowlisted.

python scripts/op_inventory.py [--config config/voc2012_pspnet50.yaml] [--size H W] [--batch 2]
                               [--allowlist src/tools/ascend_op_allowlist.yaml] [--out FILE.md] [--opts KEY VALUE ...]
Compiles on CPU (no Ascend needed) at the config's crop size unless --size is given; exit 2 names the
primitives that are not on the allowlist.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/voc2012_pspnet50.yaml")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size (default: train crop)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--allowlist", default=None)
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")
    p.add_argument("--opts", nargs="*", default=[])
    a = p.parse_args(argv)
    from src.config import load_config
    from src.device import setup_device
    from src.errors import PSPNetError
    from src.logging_setup import setup_logging
    from src.paths import ensure_output_file
    from src.tools.op_inventory import ALLOWLIST, ascend_graphs, check_graphs, load_allowlist, report

    setup_logging()
    log = logging.getLogger("op_inventory")
    try:
        cfg = load_config(a.config, a.opts)
        allowlist_path = a.allowlist or str(ALLOWLIST)
        allowlist = load_allowlist(allowlist_path)
        if a.out:
            ensure_output_file(a.out, "--out")
        setup_device("CPU", "GRAPH", quiet=cfg.device.quiet)
        hw = tuple(a.size) if a.size else (cfg.train.crop_h, cfg.train.crop_w)
        log.info("compiling the training step and the export network at %dx%d on CPU ...", *hw)
        graphs = ascend_graphs(cfg.model, cfg.data.classes, hw, a.batch)
        table = "\n".join(report(graphs, allowlist))
        print(table)
        if a.out:
            with open(a.out, "w", encoding="utf-8") as f:
                f.write(table + "\n")
        check_graphs(graphs, allowlist, allowlist_path)
    except PSPNetError as exc:
        log.error("error: %s", exc)
        return 2
    log.info("all %d primitives are on the allowlist", len(set().union(*[set(g) for g in graphs.values()])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
