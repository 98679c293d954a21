"""Evaluate PSPNet by the reference protocol (sliding window, flip, scales) and report mIoU/mAcc/allAcc.

python eval.py --config config/X.yaml --ckpt PATH [--backend ms|mindir|onnx] [--opts KEY VALUE ...]
"""
import argparse
import logging
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--ckpt", required=True, help="MindSpore .ckpt, or the .mindir / .onnx file for those backends")
    p.add_argument("--backend", default="ms", choices=["ms", "mindir", "onnx", "lite"],
                   help="lite: a MINDIR in MindSpore Lite's runtime (needs the mindspore_lite wheel)")
    p.add_argument("--opts", nargs="*", default=[], help="overrides: KEY VALUE ... or KEY=VALUE ...")
    p.add_argument("--multi-scale", action="store_true",
                   help="use scales 0.5 0.75 1.0 1.25 1.5 1.75 (semseg's multi-scale test)")
    p.add_argument("--results-dir", default=None, help="where results.json and pictures go "
                   "(default eval.save_dir, else <train.save_dir>/eval_<backend>)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into an existing results folder")
    a = p.parse_args(argv)

    from src.errors import PSPNetError
    from src.config import apply_overrides, load_config
    from src.device import setup_device
    from src.distributed import init_distributed, launched_distributed
    from src.evaluation.run import run_eval
    from src.logging_setup import setup_logging

    log = logging.getLogger("eval")
    setup_logging()
    try:
        cfg = load_config(a.config, a.opts)
        if a.multi_scale:
            apply_overrides(cfg, ["eval.scales", "[0.5, 0.75, 1.0, 1.25, 1.5, 1.75]"])
        setup_device(cfg.device.target, cfg.device.mode, cfg.device.device_id, quiet=cfg.device.quiet)
        rank, size = init_distributed() if launched_distributed() else (0, 1)
        setup_logging(rank)
        run_eval(cfg, a.ckpt, a.backend, a.overwrite, a.results_dir, rank, size)
    except PSPNetError as exc:
        log.error("error: %s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
