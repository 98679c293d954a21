"""ResNet backbones with the layout of hszhao/semseg's ``model/resnet.py``.

Parameter names follow PyTorch's so that a conversion is a rename: the
bottleneck has ``conv1/bn1/conv2/bn2/conv3/bn3`` and ``downsample.0/1``; the
stem is built by :func:`build_stem` as one sequential ``layer0`` in the order
PSPNet uses (conv, bn, relu, ... maxpool).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.common.initializer import HeNormal

NormFactory = Callable[[int], nn.Cell]

# Bottlenecks per stage. 14 (one per stage) is a test-only depth: every code path and name pattern of
# the real networks with a quarter of the blocks, so test graphs compile fast.
BLOCKS = {14: (1, 1, 1, 1), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def batch_norm(channels: int) -> nn.Cell:
    """BatchNorm2d with PyTorch's defaults (momentum 0.1 in PyTorch's convention, eps 1e-5)."""
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.9)


class AddBiasConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose bias is added by a broadcast ``Add`` rather than the ``BiasAdd`` primitive.

    MindSpore 2.10's wheel registers ``BiasAdd`` (and its gradient) for Ascend only as AI CPU kernels; ``Add``
    has an AI Core (ACLNN) kernel.  Same parameters, same names, same sums.
    """

    def construct(self, x):
        return self.conv2d(x, self.weight) + self.bias.reshape(1, -1, 1, 1)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1,
         has_bias: bool = False, weight_init=None) -> nn.Conv2d:
    """A 2-D convolution padded like PyTorch's ``padding = dilation * (kernel // 2)``."""
    pad = dilation * (kernel // 2)
    kwargs = {}
    if weight_init is not None:
        kwargs["weight_init"] = weight_init
    cls = AddBiasConv2d if has_bias else nn.Conv2d
    return cls(in_ch, out_ch, kernel, stride=stride, pad_mode="pad" if pad else "valid",
               padding=pad, dilation=dilation, has_bias=has_bias, **kwargs)


class StemMaxPool(nn.Cell):
    """Max pool 3x3 / stride 2 / padding 1 as zero padding + an unpadded pool.

    Equal to PyTorch's padded max pool here, values and gradients: the pool
    follows a ReLU, so inputs are >= 0 and a zero border never wins over a
    real value (a tie at 0 carries no gradient through the ReLU anyway).
    Explicit padding keeps ``pad_mode`` off the pooling (announced to go
    away in MindSpore, as ``nn.Pad`` is) and gives a plain MaxPool op
    instead of MaxPool3DWithArgmax, which Ascend runs on its AI CPU and
    MindSpore's ONNX exporter cannot convert.

    The border is concatenated rather than padded: MindSpore 2.10's CPU
    ``Pad`` kernel took 0.23 s for the 128x237x237 stem output at 473x473
    (a quarter of the stem's time), ``Concat`` 0.015 s, with equal values.

    ``same=True`` pads as ``pad_mode='same'`` does (the model zoo's stem): one
    zero row / column after the map, and one before it only where that side
    is odd. For odd sides (237 at a 473 input) both forms are the same.
    """

    def __init__(self, same: bool = False) -> None:
        super().__init__()
        self.same = same
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def construct(self, x):
        n, c, h, w = x.shape
        row = ops.zeros((n, c, 1, w), x.dtype)
        top = not self.same or h % 2 == 1
        x = ops.concat((row, x, row), 2) if top else ops.concat((x, row), 2)
        col = ops.zeros((n, c, x.shape[2], 1), x.dtype)
        left = not self.same or w % 2 == 1
        return self.pool(ops.concat((col, x, col), 3) if left else ops.concat((x, col), 3))


def _he() -> HeNormal:
    # semseg/torchvision ResNet: kaiming_normal_(mode='fan_out', nonlinearity='relu')
    return HeNormal(mode="fan_out", nonlinearity="relu")


class Bottleneck(nn.Cell):
    """ResNet v1.5 bottleneck: the stride (and dilation) sit on the 3x3 conv."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: Optional[nn.Cell] = None, norm: NormFactory = batch_norm) -> None:
        super().__init__()
        self.conv1 = conv(inplanes, planes, 1, weight_init=_he())
        self.bn1 = norm(planes)
        self.conv2 = conv(planes, planes, 3, stride=stride, dilation=dilation, weight_init=_he())
        self.bn2 = norm(planes)
        self.conv3 = conv(planes, planes * 4, 1, weight_init=_he())
        self.bn3 = norm(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def construct(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu(out + identity)


def zero_residual_gammas(cell: nn.Cell) -> int:
    """Set the scale of every bottleneck's last BatchNorm to 0, so each block starts as the identity.

    An option for training from scratch (Goyal et al. 2017, "Accurate, Large
    Minibatch SGD"): the network starts shallow in effect and takes a higher
    learning rate early on. Weights loaded afterwards overwrite it. Returns the
    number of blocks changed.
    """
    count = 0
    for _, sub in cell.cells_and_names():
        if isinstance(sub, Bottleneck):
            gamma = sub.bn3.gamma
            gamma.set_data(Tensor(np.zeros(gamma.shape, np.float32), gamma.dtype))
            count += 1
    return count


def stage_strides(output_stride: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """(stride, dilation) of layer3 and layer4 for an output stride of 8, 16 or 32."""
    table = {8: ((1, 2), (1, 4)), 16: ((2, 1), (1, 2)), 32: ((2, 1), (2, 1))}
    if output_stride not in table:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
    return table[output_stride]


def make_layer(inplanes: int, planes: int, blocks: int, stride: int, dilation: int,
               norm: NormFactory) -> Tuple[nn.SequentialCell, int]:
    """One ResNet stage; every block's 3x3 conv gets ``dilation`` (as semseg sets it)."""
    downsample = None
    if stride != 1 or inplanes != planes * 4:
        downsample = nn.SequentialCell([conv(inplanes, planes * 4, 1, stride=stride, weight_init=_he()),
                                        norm(planes * 4)])
    cells: List[nn.Cell] = [Bottleneck(inplanes, planes, stride, dilation, downsample, norm)]
    inplanes = planes * 4
    for _ in range(1, blocks):
        cells.append(Bottleneck(inplanes, planes, 1, dilation, None, norm))
    return nn.SequentialCell(cells), inplanes


def build_stem(deep_stem: bool, norm: NormFactory, width_divisor: int = 1,
               same_pool: bool = False) -> Tuple[nn.SequentialCell, int]:
    """``layer0``: the deep 3x(3x3) stem (64, 64, 128) or the 7x7 stem, then maxpool 3x3/2 (padded 'same' with
    ``same_pool``, as the model zoo's stem)."""
    pool = StemMaxPool(same_pool)
    c64, c128 = 64 // width_divisor, 128 // width_divisor
    if deep_stem:
        cells = [conv(3, c64, 3, stride=2, weight_init=_he()), norm(c64), nn.ReLU(),
                 conv(c64, c64, 3, weight_init=_he()), norm(c64), nn.ReLU(),
                 conv(c64, c128, 3, weight_init=_he()), norm(c128), nn.ReLU(), pool]
        return nn.SequentialCell(cells), c128
    cells = [conv(3, c64, 7, stride=2, weight_init=_he()), norm(c64), nn.ReLU(), pool]
    return nn.SequentialCell(cells), c64


def check_width_divisor(width_divisor: int) -> None:
    """The divisor must split the narrowest stage (64 channels) evenly."""
    if width_divisor < 1 or 64 % width_divisor:
        raise ValueError(f"width_divisor must be a divisor of 64 (1 is the real network), got {width_divisor}")


def build_resnet_stages(layers: int, deep_stem: bool, output_stride: int,
                        norm: NormFactory = batch_norm, width_divisor: int = 1,
                        same_pool: bool = False) -> Sequence[nn.Cell]:
    """``layer0`` .. ``layer4`` of a dilated ResNet-``layers`` (50, 101 or 152; 14 for tests).

    ``width_divisor`` > 1 divides every channel count: the same layers and
    parameter names with far fewer weights, for tests (1 is the real network).
    ``same_pool``: the stem's max pool pads 'same' (:class:`StemMaxPool`).
    """
    if layers not in BLOCKS:
        raise ValueError(f"ResNet depth must be one of {sorted(BLOCKS)}, got {layers}")
    check_width_divisor(width_divisor)
    counts = BLOCKS[layers]
    (s3, d3), (s4, d4) = stage_strides(output_stride)
    layer0, inplanes = build_stem(deep_stem, norm, width_divisor, same_pool)
    planes = [c // width_divisor for c in (64, 128, 256, 512)]
    layer1, inplanes = make_layer(inplanes, planes[0], counts[0], 1, 1, norm)
    layer2, inplanes = make_layer(inplanes, planes[1], counts[1], 2, 1, norm)
    layer3, inplanes = make_layer(inplanes, planes[2], counts[2], s3, d3, norm)
    layer4, inplanes = make_layer(inplanes, planes[3], counts[3], s4, d4, norm)
    return layer0, layer1, layer2, layer3, layer4
