"""PSPNet (Zhao et al., CVPR 2017) with hszhao/semseg's layout and parameter names.

``layer0..layer4`` (dilated ResNet), ``ppm.features.N`` (pool, 1x1 conv, BN,
ReLU), ``cls.0/1/4`` and, for training only, ``aux.0/1/4`` on layer3.

For ONNX export the network can be built for one fixed input size
(``static_hw``): adaptive pooling and the align_corners bilinear resizes are
then constant matrices applied with matmuls (``L @ x @ R^T``), which
MindSpore's ONNX exporter can convert and Ascend runs as AI Core matmuls.  The numbers are the same as the dynamic form.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.config import ModelConfig
from src.model.resnet import NormFactory, batch_norm, build_resnet_stages, conv, zero_residual_gammas


def adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) matrix doing PyTorch's adaptive average pooling along one axis."""
    m = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil
        m[i, start:end] = 1.0 / (end - start)
    return m


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) matrix doing 1-D linear interpolation with align_corners=True."""
    m = np.zeros((out_size, in_size), dtype=np.float32)
    if in_size == 1 or out_size == 1:
        m[:, 0] = 1.0
        return m
    scale = (in_size - 1) / (out_size - 1)
    for i in range(out_size):
        src = i * scale
        i0 = min(int(math.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        frac = src - i0
        m[i, i0] += 1.0 - frac
        m[i, i1] += frac
    return m


def feature_size(size: int, output_stride: int) -> int:
    """Spatial size of the backbone output for an input of ``size`` pixels.

    Every stride-2 step (3x3 or 7x7 conv, or max pool 3x3/2 pad 1) maps n to
    ``(n - 1) // 2 + 1``.
    """
    steps = int(round(math.log2(output_stride)))
    for _ in range(steps):
        size = (size - 1) // 2 + 1
    return size


class SeparableMatmul(nn.Cell):
    """Apply ``L @ x @ R^T`` over the last two axes of an NCHW tensor (constant L and R)."""

    def __init__(self, left: np.ndarray, right: np.ndarray) -> None:
        super().__init__()
        self.left = ms.Tensor(left, ms.float32)
        self.right_t = ms.Tensor(np.ascontiguousarray(right.T), ms.float32)
        self.out_hw = (left.shape[0], right.shape[0])

    def construct(self, x):
        n, c, h, w = x.shape
        y = ops.matmul(x.reshape(n * c * h, w), self.right_t)  # (NCH, W')
        y = y.reshape(n * c, h, self.out_hw[1]).transpose(1, 0, 2).reshape(h, -1)  # (H, NC*W')
        y = ops.matmul(self.left, y)  # (H', NC*W')
        return y.reshape(self.out_hw[0], n * c, self.out_hw[1]).transpose(1, 0, 2).reshape(
            n, c, self.out_hw[0], self.out_hw[1])


class Resize(nn.Cell):
    """Bilinear resize with align_corners=True to a size given at call time."""

    def construct(self, x, size):
        return ops.interpolate(x, size=size, mode="bilinear", align_corners=True)


class FixedResize(nn.Cell):
    """Resize for one known (input, output) pair, as constant matrices (exportable to ONNX)."""

    def __init__(self, in_hw: Tuple[int, int], out_hw: Tuple[int, int]) -> None:
        super().__init__()
        self.op = SeparableMatmul(bilinear_matrix(in_hw[0], out_hw[0]), bilinear_matrix(in_hw[1], out_hw[1]))

    def construct(self, x, size=None):
        return self.op(x)


class PPM(nn.Cell):
    """Pyramid Pooling Module: concat(x, up(relu(bn(conv1x1(pool_b(x))))) for b in bins)."""

    def __init__(self, in_dim: int, reduction_dim: int, bins: Sequence[int],
                 norm: NormFactory = batch_norm, static_hw: Optional[Tuple[int, int]] = None) -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        features = []
        ups = []
        for b in self.bins:
            if static_hw is None:
                pool = nn.AdaptiveAvgPool2d(b)
                ups.append(Resize())
            else:
                pool = SeparableMatmul(adaptive_pool_matrix(static_hw[0], b), adaptive_pool_matrix(static_hw[1], b))
                ups.append(FixedResize((b, b), static_hw))
            features.append(nn.SequentialCell([pool, conv(in_dim, reduction_dim, 1), norm(reduction_dim), nn.ReLU()]))
        self.features = nn.CellList(features)
        self.ups = nn.CellList(ups)
        self.concat = ops.Concat(axis=1)

    def construct(self, x):
        size = (x.shape[2], x.shape[3])
        outs = (x,)
        for feature, up in zip(self.features, self.ups):
            outs = outs + (up(feature(x), size),)
        return self.concat(outs)


class ChannelDropout(nn.Cell):
    """PyTorch's ``Dropout2d``: in training each (sample, channel) map is zeroed with probability ``p``, the rest
    scaled by 1/(1-p); the identity in eval.

    ``nn.Dropout2d`` compiles to the ``Dropout2D`` primitive, which MindSpore 2.10 registers for Ascend only as an
    AI CPU kernel.  This draws the same per-channel mask with ``nn.Dropout`` on an (N, C, 1, 1) tensor of ones
    (the ``Dropout`` primitive, no AI CPU registration) and multiplies: the same distribution.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.dropout = nn.Dropout(p=p) if p > 0 else None

    def construct(self, x):
        if not self.training or self.dropout is None:
            return x
        return x * self.dropout(ops.ones((x.shape[0], x.shape[1], 1, 1), x.dtype))


def _head(in_dim: int, mid_dim: int, classes: int, dropout: float, norm: NormFactory) -> nn.SequentialCell:
    # Indices 0, 1, 4 carry parameters, as in semseg's cls/aux Sequential.
    return nn.SequentialCell([conv(in_dim, mid_dim, 3), norm(mid_dim), nn.ReLU(),
                              ChannelDropout(dropout), conv(mid_dim, classes, 1, has_bias=True)])


class PSPNet(nn.Cell):
    """PSPNet on a dilated ResNet; returns logits at input size, plus aux logits when training.

    Args:
        classes: number of output classes.
        layers: ResNet depth (50, 101, 152).
        bins: pyramid pooling output sizes.
        use_ppm: False gives the FCN baseline (cls directly on layer4).
        use_aux: build the auxiliary head on layer3 (used in training only).
        deep_stem: semseg's 3x(3x3) stem; False gives the torchvision 7x7 stem.
        output_stride: 8 (dilation 2/4 in layer3/4), 16 or 32.
        norm: factory for the normalization layers (BatchNorm2d or SyncBatchNorm).
        static_hw: build for this fixed input (H, W) with export-friendly ops.
        width_divisor: divides every channel count (test-only; 1 is the paper's network).
        zero_init_residual: start every bottleneck's last BatchNorm scale at 0 (from-scratch training).
    """

    def __init__(self, classes: int = 21, layers: int = 50, bins: Sequence[int] = (1, 2, 3, 6),
                 use_ppm: bool = True, use_aux: bool = True, dropout: float = 0.1, deep_stem: bool = True,
                 output_stride: int = 8, norm: NormFactory = batch_norm,
                 static_hw: Optional[Tuple[int, int]] = None, width_divisor: int = 1,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes}")
        self.layer0, self.layer1, self.layer2, self.layer3, self.layer4 = build_resnet_stages(
            layers, deep_stem, output_stride, norm, width_divisor)
        if zero_init_residual:
            zero_residual_gammas(self)
        fea_dim = 2048 // width_divisor
        feat_hw = None
        if static_hw is not None:
            feat_hw = (feature_size(static_hw[0], output_stride), feature_size(static_hw[1], output_stride))
        self.use_ppm = use_ppm
        if use_ppm:
            self.ppm = PPM(fea_dim, fea_dim // len(bins), bins, norm, feat_hw)
            fea_dim = fea_dim + len(bins) * (fea_dim // len(bins))
        self.cls = _head(fea_dim, 512 // width_divisor, classes, dropout, norm)
        self.use_aux = use_aux
        if use_aux:
            self.aux = _head(1024 // width_divisor, 256 // width_divisor, classes, dropout, norm)
        if static_hw is None:
            self.up_main = Resize()
            self.up_aux = Resize()
        else:
            self.up_main = FixedResize(feat_hw, static_hw)
            aux_stride = min(output_stride, 16)  # layer3 keeps stride 16 when layer4 goes to 32
            self.up_aux = FixedResize((feature_size(static_hw[0], aux_stride), feature_size(static_hw[1], aux_stride)),
                                      static_hw)

    def construct(self, x):
        size = (x.shape[2], x.shape[3])
        x = self.layer1(self.layer0(x))
        x = self.layer2(x)
        x_tmp = self.layer3(x)
        x = self.layer4(x_tmp)
        if self.use_ppm:
            x = self.ppm(x)
        main = self.up_main(self.cls(x), size)
        if self.training and self.use_aux:
            aux = self.up_aux(self.aux(x_tmp), size)
            return main, aux
        return main


def training_input_hw(graph_form: str, device_target: str, crop_hw: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """The fixed input size to build the training network for, or None for the dynamic form.

    ``auto`` is fixed on Ascend: adaptive pooling then becomes constant
    matmuls, so the graph holds no AdaptiveAvgPool2D, which MindSpore
    registers only as an AI CPU kernel there.  Both forms compute the same
    loss and gradients (tests/model/test_numerics_pins.py).
    """
    fixed = graph_form == "fixed" or (graph_form == "auto" and device_target == "Ascend")
    return (int(crop_hw[0]), int(crop_hw[1])) if fixed else None


def build_pspnet(model_cfg: ModelConfig, classes: int, for_training: bool, norm: NormFactory = batch_norm,
                 static_hw: Optional[Tuple[int, int]] = None) -> PSPNet:
    """Build PSPNet from a :class:`src.config.ModelConfig`; the aux head only when training."""
    return PSPNet(classes=classes, layers=model_cfg.layers, bins=model_cfg.bins, use_ppm=model_cfg.use_ppm,
                  use_aux=model_cfg.use_aux and for_training, dropout=model_cfg.dropout,
                  deep_stem=model_cfg.deep_stem, output_stride=model_cfg.output_stride, norm=norm,
                  static_hw=static_hw, width_divisor=model_cfg.width_divisor,
                  zero_init_residual=model_cfg.zero_init_residual)
