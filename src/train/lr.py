"""Poly learning-rate schedule and the 10x head parameter groups (semseg tool/train.py)."""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

HEAD_PREFIXES = ("ppm.", "cls.", "aux.")


def poly_lr(base_lr: float, total_steps: int, power: float = 0.9, warmup_steps: int = 0) -> np.ndarray:
    """``base_lr * (1 - it / total_steps) ** power`` for it = 0 .. total_steps - 1 (float32).

    With ``warmup_steps`` > 0 the first steps are scaled by ``(it + 1) / (warmup_steps + 1)``,
    a linear ramp up to the poly curve (0 = the reference schedule, no warm-up).
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    it = np.arange(total_steps, dtype=np.float64)
    lr = base_lr * (1.0 - it / total_steps) ** power
    lr *= np.minimum(1.0, (it + 1.0) / (warmup_steps + 1.0))
    return lr.astype(np.float32)


def split_params(net: nn.Cell, head_prefixes: Sequence[str] = HEAD_PREFIXES) -> Tuple[List, List]:
    """Trainable parameters of the backbone and of the head (ppm/cls/aux), selected by name."""
    backbone, head = [], []
    for p in net.trainable_params():
        (head if p.name.startswith(tuple(head_prefixes)) else backbone).append(p)
    return backbone, head


def build_optimizer(net: nn.Cell, base_lr: float, total_steps: int, power: float = 0.9,
                    head_lr_mult: float = 10.0, momentum: float = 0.9, weight_decay: float = 1e-4,
                    warmup_steps: int = 0) -> nn.Momentum:
    """SGD with momentum and weight decay; the head's per-step lr is ``head_lr_mult`` x the backbone's.

    ``nn.Momentum`` is PyTorch's ``SGD(momentum, weight_decay)`` step for step (the buffer starts at 0, so the
    first step's buffer is the gradient) and is ~1/3 cheaper on CPU than ``nn.SGD``, which also keeps a
    first-step flag per weight. The parameters go in groups, so MindSpore decays BatchNorm's gamma/beta too, as
    the reference does (ungrouped, it would skip them). The schedule is a per-step array indexed by the
    optimizer's ``global_step``, so a resumed run continues it exactly.
    """
    backbone, head = split_params(net)
    lr = poly_lr(base_lr, total_steps, power, warmup_steps)
    groups: List[Dict] = [{"params": backbone, "lr": ms.Tensor(lr)}]
    if head:
        groups.append({"params": head, "lr": ms.Tensor((lr * np.float32(head_lr_mult)).astype(np.float32))})
    # The lr goes by position: MindSpore has announced renaming the keyword ``learning_rate`` to ``lr``.
    return nn.Momentum(groups, float(lr[0]), momentum, weight_decay=weight_decay)


def lr_tables(optimizer: nn.Optimizer) -> List[np.ndarray]:
    """The per-step lr array of each parameter group (backbone, then head), copied to the host once."""
    groups: Dict[str, np.ndarray] = {}
    for p in optimizer.parameters:
        lr_param = optimizer.get_lr_parameter(p)
        if lr_param.name not in groups:
            groups[lr_param.name] = lr_param.asnumpy().reshape(-1)
    return list(groups.values())


def lrs_at(tables: Sequence[np.ndarray], step: int) -> List[float]:
    """Each group's lr at 0-based ``step`` (the last value past the end of the schedule)."""
    return [float(t[min(step, t.size - 1)]) for t in tables]


def current_lrs(optimizer: nn.Optimizer) -> List[float]:
    """The learning rate of each parameter group (backbone, then head) at the optimizer's current step."""
    return lrs_at(lr_tables(optimizer), int(optimizer.global_step.asnumpy().reshape(-1)[0]))
