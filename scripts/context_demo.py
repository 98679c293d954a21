"""Train PSPNet and the no-PPM baseline on the synthetic boat-vs-car set with the same budget and compare.

python scripts/context_demo.py [--config config/demo_context.yaml] [--out outputs/context_demo]
                               [--num 120] [--size 128] [--task context|context_far] [--train-seeds 0 1 2]
                               [--opts KEY VALUE ...]
Writes OUT/results.md (table), OUT/results.json, OUT/predictions.png and OUT/comparison.png (matplotlib).
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/demo_context.yaml")
    p.add_argument("--out", default="outputs/context_demo")
    p.add_argument("--num", type=int, default=120, help="images (train + val)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="data set seed")
    p.add_argument("--task", default="context", choices=("context", "context_far"))
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0], help="one run per variant and seed")
    p.add_argument("--opts", nargs="*", default=[])
    a = p.parse_args(argv)
    from src.errors import PSPNetError
    from src.config import load_config
    from src.context_demo import run_context_demo
    from src.device import setup_device
    from src.logging_setup import setup_logging

    setup_logging()
    try:
        cfg = load_config(a.config)
        setup_device(cfg.device.target, cfg.device.mode, quiet=cfg.device.quiet)
        run_context_demo(cfg, a.out, a.num, a.size, a.seed, a.opts, task=a.task, train_seeds=a.train_seeds)
    except PSPNetError as exc:
        logging.getLogger("context_demo").error("error: %s", exc)
        return 2
    print(open(os.path.join(a.out, "results.md")).read())
    print(f"pictures: {os.path.join(a.out, 'predictions.png')} {os.path.join(a.out, 'comparison.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
