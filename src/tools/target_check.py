"""Check another device target (the GPU fallback) against the CPU: the same short training, the same logits.

``scripts/check_gpu.sh`` trains a few steps from one seed on one synthetic set on the CPU and on the target,
has each target compute the logits of the CPU run's checkpoint on one fixed input
(``python -m src.tools.target_check logits``), then compares losses and logits
(``python -m src.tools.target_check compare``) and writes ``result.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from src.errors import PSPNetError
from src.outputs import npy_bytes, write_bytes, write_json

logger = logging.getLogger(__name__)

LOSS_RTOL_FIRST = 1e-3  # the first step: same weights, same batch; only kernel rounding differs
LOSS_RTOL_ALL = 5e-2    # later steps drift apart with rounding through the updates
LOGIT_RTOL = 1e-3       # of the logits' range


def read_losses(run_dir: str | Path) -> List[float]:
    """The per-step training losses of a run (its ``metrics.jsonl``)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: did the training run finish?")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [float(r["loss"]) for r in rows if r.get("kind") == "step"]


def fixed_input(hw: Sequence[int], seed: int = 0) -> np.ndarray:
    """The one (1, 3, H, W) input every target's logits are computed on."""
    return np.random.default_rng(seed).standard_normal((1, 3, *hw)).astype(np.float32)


def dump_logits(config: str, run_dir: str, target: str, out: str, overrides: Sequence[str] = ()) -> np.ndarray:
    """Logits of the run's newest checkpoint on :func:`fixed_input` at the crop size, on ``target``; saved to ``out``."""
    from src.train.run_state import epoch_checkpoints
    from src.config import load_config
    from src.device import setup_device
    from src.runtime.backends import load_eval_network, ms_predict

    cfg = load_config(config, list(overrides))
    found = epoch_checkpoints(Path(run_dir) / "checkpoints")
    if not found:
        raise FileNotFoundError(f"no epoch checkpoint in {run_dir}/checkpoints")
    setup_device(target, "GRAPH")
    net = load_eval_network(cfg.model, cfg.data.classes, str(found[-1][1]))
    logits = ms_predict(net)(fixed_input((cfg.train.crop_h, cfg.train.crop_w)))
    write_bytes(out, npy_bytes(logits))
    return logits


def compare(ref_losses: Sequence[float], losses: Sequence[float], ref_logits: np.ndarray,
            logits: np.ndarray) -> Dict:
    """How far the target is from the CPU: loss differences per step and the logits' largest difference."""
    n = min(len(ref_losses), len(losses))
    rel = [abs(a - b) / max(abs(a), 1e-12) for a, b in zip(ref_losses[:n], losses[:n])]
    scale = float(np.ptp(ref_logits)) or 1.0
    logit_diff = float(np.abs(ref_logits - logits).max()) if ref_logits.shape == logits.shape else float("inf")
    checks = {
        "same number of steps": len(ref_losses) == len(losses) and n > 0,
        f"first step loss within {LOSS_RTOL_FIRST:g} (relative)": bool(rel) and rel[0] <= LOSS_RTOL_FIRST,
        f"every step loss within {LOSS_RTOL_ALL:g} (relative)": bool(rel) and max(rel) <= LOSS_RTOL_ALL,
        f"logits within {LOGIT_RTOL:g} of their range": np.isfinite(logit_diff) and logit_diff <= LOGIT_RTOL * scale,
    }
    return {"steps": n, "loss_rel_diff_first": rel[0] if rel else None, "loss_rel_diff_max": max(rel) if rel else None,
            "logits_max_abs_diff": logit_diff, "logits_range": scale, "checks": checks,
            "agree": all(checks.values())}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``logits`` (on one target) or ``compare`` (two runs); exit 0 when they agree, 1 when not."""
    p = argparse.ArgumentParser(prog="python -m src.tools.target_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits", help="logits of a run's newest checkpoint on the fixed input, on one target")
    lg.add_argument("--config", required=True)
    lg.add_argument("--run", required=True, help="the training run's save_dir")
    lg.add_argument("--target", required=True, choices=["CPU", "GPU", "Ascend"])
    lg.add_argument("--out", required=True, help=".npy file")
    lg.add_argument("--opts", nargs="*", default=[])
    cp = sub.add_parser("compare", help="compare a target's run and logits with the CPU's")
    for name in ("ref-run", "run", "ref-logits", "logits", "out"):
        cp.add_argument(f"--{name}", required=True)
    cp.add_argument("--target", default="GPU")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        if a.cmd == "logits":
            dump_logits(a.config, a.run, a.target, a.out, a.opts)
            return 0
        result = {"target": a.target, **compare(read_losses(a.ref_run), read_losses(a.run), np.load(a.ref_logits),
                                                np.load(a.logits))}
    except (OSError, PSPNetError) as exc:
        logger.error("error: %s", exc)
        return 2
    write_json(a.out, result)
    print(json.dumps(result, indent=1))
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
