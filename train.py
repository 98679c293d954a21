"""Train PSPNet.  python train.py --config config/X.yaml [--opts KEY VALUE ...] [--resume PATH|auto]

Single device by default; under msrun (or a rank-table launcher) it runs data-parallel.
"""
import argparse
import logging
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True, help="YAML config (see config/)")
    p.add_argument("--opts", nargs="*", default=[], help="overrides: KEY VALUE ... or KEY=VALUE ...")
    p.add_argument("--resume", default=None, help="checkpoint to resume from, or 'auto' for the newest in save_dir")
    p.add_argument("--allow-schedule-change", action="store_true",
                   help="resume even if batch size, epochs, lr, crop or device count differ from the checkpoint's run")
    a = p.parse_args(argv)

    from src.errors import PSPNetError
    from src.config import load_config
    from src.device import setup_device
    from src.distributed import init_distributed, launched_distributed
    from src.logging_setup import setup_logging
    from src.train.loop import run_training

    try:
        cfg = load_config(a.config, a.opts)
        target = setup_device(cfg.device.target, cfg.device.mode, cfg.device.device_id, seed=cfg.train.seed,
                              quiet=cfg.device.quiet)
        rank, size = init_distributed() if (cfg.train.distributed or launched_distributed()) else (0, 1)
        setup_logging(rank)
        summary = run_training(cfg, target, rank, size, a.resume, allow_schedule_change=a.allow_schedule_change)
    except PSPNetError as exc:
        logging.getLogger("train").error("error: %s", exc)
        return 2
    logging.getLogger("train").info("done: %s", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
