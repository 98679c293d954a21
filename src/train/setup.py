"""The builders a training run is made of, each one job: the network, the step plan, sinking."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Mapping, Optional, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn

from src.checkpoint.files import load_params_strict, saved_pyramid
from src.config import Config, ConfigError, ModelConfig, TrainConfig
from src.model.lean import lean_backward
from src.model.pspnet import (build_pspnet, check_zoo_input, resolve_pyramid, resolve_pyramid_of_file,
                               training_input_hw)
from src.model.resnet import batch_norm
from src.train.lr import build_optimizer
from src.train.step import NetWithLoss, TrainStep, apply_amp, make_loss_scale

logger = logging.getLogger(__name__)


def norm_factory(device_target: str, group_size: int, sync_bn: bool):
    """BatchNorm, or SyncBatchNorm across the devices where MindSpore has it (Ascend)."""
    if not sync_bn or group_size <= 1:
        return batch_norm
    if device_target != "Ascend":
        logger.warning("train.sync_bn needs Ascend; on %s each device normalizes with its own batch statistics",
                       device_target)
        return batch_norm
    return lambda c: nn.SyncBatchNorm(c, eps=1e-5, momentum=0.9)


def check_eval_fits(cfg: Config, static_hw: Optional[Tuple[int, int]]) -> None:
    """A fixed-size network evaluates only inputs of its size: the full protocol's windows must be the crop."""
    t, e = cfg.train, cfg.eval
    if static_hw and t.eval_interval and t.eval_mode == "full" and (e.test_h, e.test_w) != static_hw:
        raise ConfigError(f"model.graph_form {cfg.model.graph_form} builds the network for {static_hw[0]}x"
                          f"{static_hw[1]} inputs, but train.eval_mode full runs {e.test_h}x{e.test_w} windows: set "
                          f"eval.test_h/test_w to the crop, use train.eval_mode fast, or model.graph_form dynamic")


def training_pyramid(cfg: Config, resumed: Optional[Mapping[str, np.ndarray]] = None, resumed_from: str = "") -> Config:
    """``cfg`` with ``model.pyramid`` resolved for a training run (logged, and so written into its config.yaml):
    the form the checkpoint of the run being resumed (``resumed``: its entries) records, else the form of
    ``model.pretrained``'s weights (a model zoo PSPNet fine-tunes in the zoo form; its backbone and a fresh
    network in the semseg form). The zoo form's training crop and evaluation window are checked."""
    m = cfg.model
    recorded = saved_pyramid(resumed, resumed_from) if resumed else None
    if recorded is not None:
        if m.pyramid not in ("auto", recorded):
            raise ConfigError(f"model.pyramid {m.pyramid}, but the run being resumed ({resumed_from}) trained the "
                              f"{recorded} form: resume with model.pyramid {recorded} (or auto), or start a fresh run")
        model = resolve_pyramid(m, resumed_from, "", recorded)
    else:
        model = resolve_pyramid_of_file(m, m.pretrained)
    t, e = cfg.train, cfg.eval
    check_zoo_input(model, (t.crop_h, t.crop_w), "the training crop (train.crop_h/crop_w)", t.output_stride)
    check_zoo_input(model, (e.test_h, e.test_w), "the evaluation window (eval.test_h/test_w)")
    return replace(cfg, model=model)


def loss_scale_for(train_cfg: TrainConfig, device_target: str):
    """The loss-scale cell of the config; mixed precision and scaling are refused on CPU."""
    if device_target == "CPU" and (train_cfg.amp_level != "O0" or train_cfg.loss_scale != "none"):
        raise ConfigError(f"train.amp_level {train_cfg.amp_level} / train.loss_scale {train_cfg.loss_scale}: "
                          f"mixed precision and loss scaling are not used on CPU (fp16 is slower there); set O0/none")
    return make_loss_scale(train_cfg.loss_scale, train_cfg.loss_scale_value)


def build_network(cfg: Config, device_target: str, group_size: int) -> nn.Cell:
    """The training network (seeded, so every rank and every run starts from the same weights), in the form the
    target needs (fixed-size on Ascend by default), with the lean convolution backward on CPU (train.lean_backward)
    and the config's AMP level off CPU."""
    t = cfg.train
    static_hw = training_input_hw(cfg.model.graph_form, device_target, (t.crop_h, t.crop_w))
    check_eval_fits(cfg, static_hw)
    ms.set_seed(t.seed)
    model = training_model(cfg)
    net = build_pspnet(model, cfg.data.classes, for_training=True,
                       norm=norm_factory(device_target, group_size, t.sync_bn), static_hw=static_hw)
    if model.output_stride != cfg.model.output_stride:
        logger.info("train.output_stride %d: training at output stride %d; validation, eval.py and export.py run "
                    "the same weights at model.output_stride %d", t.output_stride, t.output_stride,
                    cfg.model.output_stride)
    if static_hw:
        logger.info("model.graph_form %s: network built for %dx%d inputs (constant-matrix pooling and resizes)",
                    cfg.model.graph_form, *static_hw)
    if t.lean_backward == "on" or (t.lean_backward == "auto" and device_target == "CPU"):
        count = lean_backward(net)
        logger.info("train.lean_backward %s: %d convolutions compute their input gradient as a forward "
                    "convolution (less memory on MindSpore's CPU kernels)", t.lean_backward, count)
    return apply_amp(net, t.amp_level) if device_target != "CPU" else net


def training_optimizer(cfg: Config, net: nn.Cell, total_steps: int) -> nn.Optimizer:
    """The optimizer a run trains ``net`` with: poly lr over ``total_steps``, 10x head groups (:mod:`src.train.lr`)."""
    t = cfg.train
    return build_optimizer(net, t.base_lr, total_steps, t.power, t.head_lr_mult, t.momentum, t.weight_decay,
                           t.warmup_steps)


def training_step(cfg: Config, net: nn.Cell, optimizer: nn.Optimizer, group_size: int, loss_scale,
                  class_weights: Optional[Sequence[float]] = None) -> TrainStep:
    """The step cell a run calls: ``net`` with the loss (weighted by ``class_weights`` when given), gradients
    (averaged over ``group_size`` ranks) and the update, in training mode; ``loss_scale`` is
    :func:`loss_scale_for`'s."""
    t = cfg.train
    cell = TrainStep(NetWithLoss(net, cfg.data.ignore_label, t.aux_weight, class_weights), optimizer, group_size,
                     loss_scale)
    cell.set_train(True)
    return cell


def training_model(cfg: Config) -> ModelConfig:
    """The architecture training builds: the model's, at ``train.output_stride`` where that is set.

    The stride changes only the strides and dilations of layer3/layer4, never a parameter, so weights trained at
    16 load strictly into the stride-8 network (DeepLabv3's recipe: train at 16, evaluate at 8)."""
    return replace(cfg.model, output_stride=cfg.train.output_stride or cfg.model.output_stride)


def validation_network(cfg: Config, device_target: str, train_net: nn.Cell,
                       held: Optional[nn.Cell] = None) -> nn.Cell:
    """The network validation during training runs, so that it scores what eval.py will: ``train_net`` itself,
    or, when ``train.output_stride`` differs from ``model.output_stride``, ``held`` (built here when None) at
    the model's stride holding ``train_net``'s current weights (copied strictly; the aux head is training's)."""
    if training_model(cfg).output_stride == cfg.model.output_stride:
        return train_net
    if held is None:
        t = cfg.train
        held = build_pspnet(cfg.model, cfg.data.classes, for_training=False,
                            static_hw=training_input_hw(cfg.model.graph_form, device_target, (t.crop_h, t.crop_w)))
    weights = {p.name: p.asnumpy().astype(np.float32) for p in train_net.get_parameters()}
    load_params_strict(held, weights, "the training network", allow_unexpected=("aux.",))
    return held


@dataclass(frozen=True)
class StepPlan:
    """How many steps an epoch has and the whole schedule runs (``train.max_steps`` may cut it)."""

    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, train_cfg: TrainConfig, samples_per_rank: int, group_size: int) -> "StepPlan":
        per_epoch = samples_per_rank // (train_cfg.batch_size // group_size)
        total = train_cfg.epochs * per_epoch
        return cls(per_epoch, min(total, train_cfg.max_steps) if train_cfg.max_steps else total)


def sink_steps(requested: int, device_target: str, steps_per_epoch: int, total_steps: int) -> int:
    """Steps per device call in data-sink mode (0: off, one step per call from the host).

    Sinking needs Ascend (or GPU); a chunk never crosses an epoch end or the
    last step, so the count used is the largest divisor of both that is at
    most ``requested``.
    """
    if requested <= 0:
        return 0
    if device_target not in ("Ascend", "GPU"):
        raise ConfigError(f"train.sink_size {requested}: data sinking runs on Ascend (or GPU) only, not on "
                          f"{device_target}; set train.sink_size 0")
    common = math.gcd(steps_per_epoch, total_steps)
    used = max(d for d in range(1, min(requested, common) + 1) if common % d == 0)
    if used != requested:
        logger.warning("train.sink_size %d -> %d so that no sink crosses an epoch end (%d steps/epoch, %d in all)",
                       requested, used, steps_per_epoch, total_steps)
    return used
