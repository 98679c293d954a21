"""Cut the images of a list into the evaluation protocol's windows as binary inputs for the 310 app.

python inference/preprocess.py --config config/X.yaml --out WORK [--list LIST] [--batch_size N]
Writes WORK/input/*.bin (float32, batch x 3 x crop_h x crop_w) and WORK/meta.json.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True, help="work folder")
    p.add_argument("--list", default=None, help="list file (default: data.val_list under data.data_root)")
    p.add_argument("--batch_size", type=int, default=None, help="the exported model's batch (default eval.batch_size)")
    p.add_argument("--opts", nargs="*", default=[])
    a = p.parse_args(argv)
    from src.errors import PSPNetError
    from src.config import load_config
    from src.evaluation.inference import protocol_from_config
    from src.evaluation.offline import preprocess
    from src.logging_setup import setup_logging

    setup_logging()
    try:
        cfg = load_config(a.config, a.opts)
        if a.batch_size:
            cfg.eval.batch_size = a.batch_size
        lst = a.list or os.path.join(cfg.data.data_root, cfg.data.val_list)
        preprocess(lst, cfg.data.data_root, a.out, protocol_from_config(cfg.data, cfg.eval))
    except PSPNetError as exc:
        logging.getLogger("preprocess").error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
