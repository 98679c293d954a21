"""The training step: loss (total, main, aux), gradients, all-reduce, optional loss scaling, SGD update."""
from __future__ import annotations

from typing import Optional, Sequence

import mindspore as ms
from mindspore import nn, ops

from src.config import DataConfig
from src.model.loss import PSPLoss

# Norm layers that must stay float32 under AMP. MindSpore's own O2 black list lacks SyncBatchNorm
# and GroupNorm, so synced BN would otherwise run in float16.
NORM_CELLS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.LayerNorm)


def apply_amp(net: nn.Cell, level: str) -> nn.Cell:
    """Mixed precision for ``net``: O0 none, O1 MindSpore's white list, O2 float16 except every norm layer.

    Parameter names are unchanged (the norm cells are wrapped, not renamed).
    """
    if level == "O0":
        return net
    if level == "O1":
        return ms.amp.auto_mixed_precision(net, "O1")
    if level == "O2":
        return ms.amp.custom_mixed_precision(net, black_list=list(NORM_CELLS))
    raise ValueError(f"unsupported AMP level {level!r}")


def make_loss_scale(kind: str, value: float = 1024.0):
    """``train.loss_scale`` as :class:`TrainStep` takes it: 0 (none), a fixed number, or a dynamic scaler."""
    if kind == "none":
        return 0.0
    if kind == "fixed":
        return float(value)
    if kind == "dynamic":
        return ms.amp.DynamicLossScaler(scale_value=float(value), scale_factor=2, scale_window=1000)
    raise ValueError(f"loss scale must be none, fixed or dynamic, got {kind!r}")


class NetWithLoss(nn.Cell):
    """The network and :class:`PSPLoss`: ``(main + aux_weight * aux, main, aux)``, aux 0 without an aux head."""

    def __init__(self, net: nn.Cell, ignore_label: int = DataConfig.ignore_label, aux_weight: float = 0.4,
                 class_weights: Optional[Sequence[float]] = None) -> None:
        super().__init__(auto_prefix=False)  # keep the network's parameter names (layer0..., not net.layer0...)
        self.net = net
        self.loss = PSPLoss(ignore_label, aux_weight, class_weights)

    def construct(self, image, label):
        return self.loss(self.net(image), label)


class TrainStep(nn.Cell):
    """One SGD step on ``NetWithLoss``; returns the three losses (before the update).

    ``group_size > 1`` averages gradients over ranks (data parallel).
    ``loss_scale``: 0 for none, a positive number for a fixed scale, or a
    ``ms.amp.DynamicLossScaler`` (steps with inf/nan gradients are skipped
    and the scale lowered).
    """

    def __init__(self, net_with_loss: NetWithLoss, optimizer: nn.Optimizer, group_size: int = 1,
                 loss_scale=0.0) -> None:
        super().__init__(auto_prefix=False)
        self.network = net_with_loss
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.reducer = nn.DistributedGradReducer(self.weights, mean=True, degree=group_size) if group_size > 1 \
            else ops.identity
        self.dynamic = isinstance(loss_scale, ms.amp.DynamicLossScaler)
        self.scaler = loss_scale if self.dynamic else None
        self.fixed_scale = float(loss_scale) if not self.dynamic and loss_scale else 1.0

    def construct(self, image, label):
        total, main, aux = self.network(image, label)
        if self.dynamic:
            scale = self.scaler.scale_value.astype(total.dtype)
        else:
            scale = ops.fill(total.dtype, (), self.fixed_scale)
        sens = (ops.ones_like(total) * scale, ops.zeros_like(main), ops.zeros_like(aux))
        grads = self.grad(self.network, self.weights)(image, label, sens)
        grads = self.reducer(grads)
        if self.dynamic:
            grads = self.scaler.unscale(grads)
            finite = ms.amp.all_finite(grads)
            self.scaler.adjust(finite)
            if finite:
                total = ops.depend(total, self.optimizer(grads))
        else:
            if self.fixed_scale != 1.0:
                grads = ops.HyperMap()(ops.partial(_unscale, scale), grads)
            total = ops.depend(total, self.optimizer(grads))
        return total, main, aux


def _unscale(scale, grad):
    return grad / scale
