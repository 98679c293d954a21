"""Check another device target (the GPU fallback) against the CPU: the same short training, the same logits.

``scripts/check_gpu.sh`` trains a few steps from one seed on one synthetic set on the CPU and on the target,
has each target compute the logits of the CPU run's checkpoint on one fixed input
(``python -m src target-check logits``), then compares losses and logits
(``python -m src target-check compare``) and writes ``result.json``.
"""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from src.errors import PSPNetError
from src.outputs.folder import put_file

logger = logging.getLogger(__name__)


class TargetCheckError(PSPNetError, RuntimeError):
    """A run or a logits file the check needs is missing or unreadable."""

LOSS_RTOL_FIRST = 1e-3  # the first step: same weights, same batch; only kernel rounding differs
LOSS_RTOL_ALL = 5e-2    # later steps drift apart with rounding through the updates
LOGIT_RTOL = 1e-3       # of the logits' range


def read_losses(run_dir: str | Path) -> List[float]:
    """The per-step training losses of a run (its ``metrics.jsonl``)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise TargetCheckError(f"{path} not found: did the training run finish?")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [float(r["loss"]) for r in rows if r.get("kind") == "step"]


def fixed_input(hw: Sequence[int], seed: int = 0) -> np.ndarray:
    """The one (1, 3, H, W) input every target's logits are computed on."""
    return np.random.default_rng(seed).standard_normal((1, 3, *hw)).astype(np.float32)


def dump_logits(config: str, run_dir: str, target: str, out: str, overrides: Sequence[str] = ()) -> np.ndarray:
    """Logits of the run's newest checkpoint on :func:`fixed_input` at the crop size, on ``target``; saved to ``out``."""
    from src.train.run_state import epoch_checkpoints
    from src.config import load_config
    from src.system.device import setup_device
    from src.runtime.backends import load_eval_network, ms_predict

    cfg = load_config(config, list(overrides))
    found = epoch_checkpoints(Path(run_dir) / "checkpoints")
    if not found:
        raise TargetCheckError(f"no epoch checkpoint in {run_dir}/checkpoints")
    setup_device(target, "GRAPH")
    net = load_eval_network(cfg.model, cfg.data.classes, str(found[-1][1]))
    logits = ms_predict(net)(fixed_input((cfg.train.crop_h, cfg.train.crop_w)))
    buf = io.BytesIO()
    np.save(buf, logits)  # numpy's .npy format, in memory
    put_file(out, buf.getvalue(), "--out", "target-check")
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


def compare_runs(ref_run: str, run: str, ref_logits: str, logits: str, target: str) -> Dict:
    """:func:`compare` of two runs' losses and two logits files (``.npy``), with the target named."""
    try:
        return {"target": target, **compare(read_losses(ref_run), read_losses(run), np.load(ref_logits),
                                            np.load(logits))}
    except OSError as exc:
        raise TargetCheckError(f"cannot read {exc.filename or 'an input'}: {exc.strerror or exc}") from None
