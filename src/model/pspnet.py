"""PSPNet (Zhao et al., CVPR 2017) with hszhao/semseg's layout and parameter names.

``layer0..layer4`` (dilated ResNet), ``ppm.features.N`` (pool, 1x1 conv, BN,
ReLU), ``cls.0/1/4`` and, for training only, ``aux.0/1/4`` on layer3.

For ONNX export the network can be built for one fixed input size
(``static_hw``): adaptive pooling and the align_corners bilinear resizes are
then constant matrices applied with matmuls (``L @ x @ R^T``), which
MindSpore's ONNX exporter can convert and Ascend runs as AI Core matmuls.  The numbers are the same as the dynamic form.

``pyramid="zoo"`` builds the MindSpore model zoo's pyramid (research/cv/PSPNet) for its own checkpoints: its four
stages on a fixed 60x60 map (a mean over the whole map, no pooling at all in the second, means of 20x20 blocks,
a 10x10 average pool), each resized back with align_corners, concatenated after the map as here, and the stem's max
pool padded 'same'. Parameter names are the same in both forms.
"""
from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.checkpoint.files import read_pyramid_evidence
from src.config import ConfigError, ModelConfig
from src.model.resnet import NormFactory, batch_norm, build_resnet_stages, conv, zero_residual_gammas

logger = logging.getLogger(__name__)


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


ZOO_MAP = 60  # the model zoo's PSPNet pools a fixed 60x60 map (its feature_size: a 473 input at output stride 8)
ZOO_BINS = (1, 2, 3, 6)  # its four stages, in this order (pool_sizes [1, 2, 3, 6])


class MapMean(nn.Cell):
    """The mean over the whole map, kept as 1x1 (the zoo's ``AdaPool1``: ReduceMean over the last two axes)."""

    def construct(self, x):
        return x.mean(axis=(2, 3), keep_dims=True)


class BlockMean(nn.Cell):
    """Means of ``bins`` x ``bins`` equal blocks of a fixed ``size`` x ``size`` map (the zoo's ``AdaPool3``: the map
    reshaped to (N, C, bins, size/bins, bins, size/bins), then ReduceMean over the block axes)."""

    def __init__(self, bins: int, size: int) -> None:
        super().__init__()
        self.bins, self.block = bins, size // bins

    def construct(self, x):
        n, c = x.shape[0], x.shape[1]
        return x.reshape(n, c, self.bins, self.block, self.bins, self.block).mean(axis=(3, 5))


class Unchanged(nn.Cell):
    """The map as it is: the zoo's second stage has no pooling (its ``AdaPool2`` is defined but never used), and its
    align_corners resize from 60x60 to 60x60 is the identity."""

    def construct(self, x, size=None):
        return x


def zoo_pool(b: int, size: int = ZOO_MAP) -> nn.Cell:
    """The model zoo's pooling of stage ``b`` (1, 2, 3, 6) on its fixed ``size`` map, cell for cell as it is written."""
    if b == 1:
        return MapMean()
    if b == 2:
        return Unchanged()
    if b == 3:
        return BlockMean(3, size)
    return nn.AvgPool2d(kernel_size=size // b, stride=size // b)


class PPM(nn.Cell):
    """Pyramid Pooling Module: concat(x, up(relu(bn(conv1x1(pool_b(x))))) for b in bins).

    ``pyramid="zoo"``: the model zoo's stages (:func:`zoo_pool`) on its fixed 60x60 map; ``bins`` must be
    (1, 2, 3, 6) and ``static_hw``, when given, (60, 60).
    """

    def __init__(self, in_dim: int, reduction_dim: int, bins: Sequence[int],
                 norm: NormFactory = batch_norm, static_hw: Optional[Tuple[int, int]] = None,
                 pyramid: str = "semseg") -> None:
        super().__init__()
        self.bins = tuple(int(b) for b in bins)
        zoo = pyramid == "zoo"
        if zoo and (self.bins != ZOO_BINS or static_hw not in (None, (ZOO_MAP, ZOO_MAP))):
            raise ValueError(f"the model zoo's pyramid has bins {list(ZOO_BINS)} on a {ZOO_MAP}x{ZOO_MAP} map, got "
                             f"bins {list(self.bins)} on {static_hw}")
        features = []
        ups = []
        for b in self.bins:
            if zoo:
                pool = zoo_pool(b)
                ups.append(Unchanged() if b == 2 else Resize() if static_hw is None else FixedResize((b, b), static_hw))
            elif static_hw is None:
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
        pyramid: ``semseg`` (the reference) or ``zoo`` (the model zoo's pyramid and 'same' stem pool; needs a
            60x60 map at output stride 8: a 473 to 480 pixel input).
    """

    def __init__(self, classes: int = 21, layers: int = 50, bins: Sequence[int] = (1, 2, 3, 6),
                 use_ppm: bool = True, use_aux: bool = True, dropout: float = 0.1, deep_stem: bool = True,
                 output_stride: int = 8, norm: NormFactory = batch_norm,
                 static_hw: Optional[Tuple[int, int]] = None, width_divisor: int = 1,
                 zero_init_residual: bool = False, pyramid: str = "semseg") -> None:
        super().__init__()
        if classes < 1:
            raise ValueError(f"classes must be >= 1, got {classes}")
        if pyramid not in ("semseg", "zoo"):
            raise ValueError(f"pyramid must be semseg or zoo, got {pyramid!r}")
        if pyramid == "zoo" and (not use_ppm or output_stride != 8):
            raise ValueError(f"the model zoo's pyramid needs use_ppm and output stride 8, got {use_ppm}, "
                             f"{output_stride}")
        self.pyramid = pyramid
        self.layer0, self.layer1, self.layer2, self.layer3, self.layer4 = build_resnet_stages(
            layers, deep_stem, output_stride, norm, width_divisor, same_pool=pyramid == "zoo")
        if zero_init_residual:
            zero_residual_gammas(self)
        fea_dim = 2048 // width_divisor
        feat_hw = None
        if static_hw is not None:
            feat_hw = (feature_size(static_hw[0], output_stride), feature_size(static_hw[1], output_stride))
        self.use_ppm = use_ppm
        if use_ppm:
            self.ppm = PPM(fea_dim, fea_dim // len(bins), bins, norm, feat_hw, pyramid)
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
    """Build PSPNet from a :class:`src.config.ModelConfig`; the aux head only when training.

    ``model.pyramid`` should be resolved first (:func:`resolve_pyramid`): ``auto`` reaching here builds the semseg
    form, what ``auto`` is without a model zoo PSPNet's weights."""
    pyramid = "semseg" if model_cfg.pyramid == "auto" else model_cfg.pyramid
    if pyramid == "zoo":
        check_zoo_model(model_cfg)
    return PSPNet(classes=classes, layers=model_cfg.layers, bins=model_cfg.bins, use_ppm=model_cfg.use_ppm,
                  use_aux=model_cfg.use_aux and for_training, dropout=model_cfg.dropout,
                  deep_stem=model_cfg.deep_stem, output_stride=model_cfg.output_stride, norm=norm,
                  static_hw=static_hw, width_divisor=model_cfg.width_divisor,
                  zero_init_residual=model_cfg.zero_init_residual, pyramid=pyramid)


# --- model.pyramid: which form, and why -------------------------------------------------------------------------

ZOO_WINDOW = 473  # the model zoo's crop; 473 to 480 pixels give its 60x60 map at output stride 8


def check_zoo_model(model_cfg: ModelConfig) -> None:
    """The zoo's pyramid is four fixed stages behind the pyramid module: one ConfigError line otherwise."""
    if not model_cfg.use_ppm or tuple(model_cfg.bins) != ZOO_BINS:
        raise ConfigError(f"model.pyramid zoo is the model zoo's pyramid module with its four stages (bins "
                          f"{list(ZOO_BINS)}): model.use_ppm is {str(model_cfg.use_ppm).lower()} and model.bins "
                          f"{list(model_cfg.bins)}; set model.use_ppm true and model.bins {list(ZOO_BINS)}, or "
                          f"model.pyramid semseg")


def check_zoo_input(model_cfg: ModelConfig, hw: Tuple[int, int], what: str, output_stride: int = 0) -> None:
    """In the zoo form, an input of ``hw`` (``what``: the keys or options that set it) at ``output_stride`` (default
    model.output_stride) must give the zoo's fixed 60x60 map; one ConfigError line naming every key that sets it
    otherwise. Nothing to check in the semseg form."""
    if model_cfg.pyramid != "zoo":
        return
    stride = output_stride or model_cfg.output_stride
    fh, fw = feature_size(int(hw[0]), stride), feature_size(int(hw[1]), stride)
    if stride == 8 and (fh, fw) == (ZOO_MAP, ZOO_MAP):
        return
    raise ConfigError(f"model.pyramid zoo computes the model zoo's pyramid on its fixed {ZOO_MAP}x{ZOO_MAP} map, a "
                      f"{ZOO_WINDOW}x{ZOO_WINDOW} window at output stride 8 ({ZOO_WINDOW} to 480 pixels a side); "
                      f"{what} is {hw[0]}x{hw[1]} at output stride {stride}, a {fh}x{fw} map: set eval.test_h/test_w "
                      f"and train.crop_h/crop_w to {ZOO_WINDOW} and model.output_stride to 8 (train.output_stride 0 or "
                      f"8), or model.pyramid semseg")


STAGE2_NOTE = ("its stage-2 branch (the zoo's ppm.stage2, ppm.features.1 here) learned a 1x1 convolution of the whole "
               "60x60 map, and the semseg form pools that map to 2x2 first: every tensor loads, but that branch "
               "computes something else than it was trained for (model.pyramid auto or zoo computes it as the zoo "
               "does)")


def pyramid_for(requested: str, source: str = "", zoo_kind: str = "", recorded: Optional[str] = None) -> str:
    """The form ``model.pyramid`` ``requested`` resolves to for weights from ``source`` (a checkpoint path, "" for a
    fresh network): ``zoo_kind`` is the kind of model zoo names the file had ("pspnet", "backbone" or ""), and
    ``recorded`` the form a training checkpoint of this program recorded (None: none). ``auto`` is the zoo form
    for a model zoo PSPNet and for weights trained in that form, the semseg form otherwise. Logs which and why."""
    zoo_weights = zoo_kind == "pspnet" or recorded == "zoo"
    why = ("a model zoo PSPNet checkpoint" if zoo_kind == "pspnet" else
           "trained with the model zoo's pyramid (the checkpoint records it)" if recorded == "zoo" else
           "trained with the semseg pyramid (the checkpoint records it)" if recorded == "semseg" else
           "the model zoo's backbone (resnet_deepbase)" if zoo_kind == "backbone" else
           "not a model zoo PSPNet checkpoint")
    if requested != "auto":
        logger.info("model.pyramid %s (set in the config)%s", requested, f": {source} is {why}" if source else "")
        if requested == "semseg" and zoo_weights:
            logger.warning("model.pyramid semseg: %s is %s; %s", source, why, STAGE2_NOTE)
        elif requested == "zoo" and recorded == "semseg":
            logger.warning("model.pyramid zoo: %s was %s; the zoo's stage-2 branch convolves the whole map where "
                           "these weights learned a 2x2 pool, so it computes something else (model.pyramid auto "
                           "follows the checkpoint)", source, why)
        return requested
    form = "zoo" if zoo_weights else "semseg"
    if not source:
        logger.info("model.pyramid auto -> semseg: no trained PSPNet weights to follow (a fresh network)")
    elif form == "zoo":
        logger.info("model.pyramid auto -> zoo: %s is %s, so the network computes the zoo's pyramid (its stages on "
                    "a fixed 60x60 map, the second without pooling; the stem's max pool padded 'same') as the zoo "
                    "does", source, why)
    else:
        logger.info("model.pyramid auto -> semseg: %s is %s", source, why)
    return form


def resolve_pyramid(model_cfg: ModelConfig, source: str = "", zoo_kind: str = "",
                    recorded: Optional[str] = None) -> ModelConfig:
    """``model_cfg`` with ``model.pyramid`` resolved for weights from ``source`` (:func:`pyramid_for`); the zoo
    form's structure is checked (:func:`check_zoo_model`)."""
    resolved = replace(model_cfg, pyramid=pyramid_for(model_cfg.pyramid, source, zoo_kind, recorded))
    if resolved.pyramid == "zoo":
        check_zoo_model(resolved)
    return resolved


def resolve_pyramid_of_file(model_cfg: ModelConfig, path: str) -> ModelConfig:
    """:func:`resolve_pyramid` for the weights of checkpoint ``path`` ("" for none), reading only the entries that
    tell the form (:func:`src.checkpoint.read_pyramid_evidence`), also for an explicit model.pyramid: a model zoo
    PSPNet loaded into the semseg form is said."""
    if not path:
        return resolve_pyramid(model_cfg)
    zoo_kind, recorded = read_pyramid_evidence(path)
    return resolve_pyramid(model_cfg, path, zoo_kind, recorded)
