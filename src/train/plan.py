"""``train.py --plan``: a run's memory and time, measured on three real training steps, with nothing written.

The network, the pipeline, the optimizer and the step cell are built by the same functions a run uses
(:mod:`src.train.setup`, :func:`src.data.pipeline.build_train_pipeline`); the steps' weights are thrown
away. No output folder, log, lock or checkpoint is made: the only file (the pipeline's record of a broken
sample) lives in a private temporary folder removed at the end."""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import mindspore as ms

from src.config import Config
from src.data.dataset import read_list
from src.data.pipeline import build_train_pipeline, pipeline_error
from src.system.device import device_peak_gb, peak_rss_gb
from src.outputs.atomic import private_folder
from src.progress import eta_text
from src.train.finetune import load_config_pretrained
from src.train.setup import (StepPlan, build_network, loss_scale_for, sink_steps, training_optimizer,
                             training_pyramid, training_step)

logger = logging.getLogger(__name__)

PLAN_STEPS = 3  # the first compiles; the others give the step time


@dataclass(frozen=True)
class TrainPlan:
    """The figures ``--plan`` prints (times in seconds, memory in GiB)."""

    steps_run: int
    compile_s: float  # the first step's call minus a steady step's: graph compilation and kernel set-up
    s_per_step: float  # mean of steps 2..3, reading the batch included (what the training loop sees)
    steps_per_epoch: int
    total_steps: int  # the whole schedule (train.max_steps applied)
    estimate_s: float  # s_per_step x total_steps: the schedule's steps, without compilation and validation
    host_peak_gb: float  # this process's peak resident memory
    device_peak_gb: Optional[float]  # the device pool's peak; None where MindSpore has none (CPU)
    validations: int  # in-training validations the schedule runs (not in estimate_s)


def validations_in_schedule(cfg: Config, plan: StepPlan) -> int:
    """How many times the run validates: after every ``eval_interval``-th epoch it reaches, and after the last."""
    t = cfg.train
    if not t.eval_interval:
        return 0
    epochs_run = min(t.epochs, math.ceil(plan.total_steps / plan.steps_per_epoch))
    return sum(1 for e in range(1, epochs_run + 1) if e % t.eval_interval == 0 or e == t.epochs)


def _timed_steps(step_cell, train_ds, source, list_file: str) -> Tuple[List[float], List[float], List[float]]:
    """``PLAN_STEPS`` steps on the pipeline's batches: (seconds reading each batch, seconds of each step call up
    to its loss on the host, the losses)."""
    batches = iter(train_ds.create_tuple_iterator(num_epochs=1, output_numpy=True))
    read_s, step_s, losses = [], [], []
    try:
        for _ in range(PLAN_STEPS):
            start = time.perf_counter()
            image, label = next(batches)
            read = time.perf_counter()
            total, _, _ = step_cell(ms.Tensor(image), ms.Tensor(label))
            losses.append(float(total.asnumpy()))  # waits for the device: the step is done
            read_s.append(read - start)
            step_s.append(time.perf_counter() - read)
    except RuntimeError as exc:
        raise pipeline_error(exc, source, list_file) from None
    return read_s, step_s, losses


def plan_training(cfg: Config, device_target: str = "CPU", rank: int = 0, group_size: int = 1) -> TrainPlan:
    """Build the run as training would, run ``PLAN_STEPS`` steps, log the memory and time figures at INFO and
    return them. Writes nothing; the schedule's steps are the config's from step 0 (a fresh run)."""
    cfg = training_pyramid(cfg)
    t = cfg.train
    loss_scale = loss_scale_for(t, device_target)
    val_images = len(read_list(os.path.join(cfg.data.data_root, cfg.data.val_list), cfg.data.data_root)) \
        if t.eval_interval else 0
    net = build_network(cfg, device_target, group_size)
    if cfg.model.pretrained:
        load_config_pretrained(net, cfg)
    with private_folder() as scratch:
        error_log = os.path.join(scratch, f"data_error_rank{rank}.txt")
        train_ds, source, sampler = build_train_pipeline(cfg.data, t, rank, group_size, error_log=error_log)
        plan = StepPlan.of(t, len(sampler), group_size)
        if plan.steps_per_epoch * t.epochs < PLAN_STEPS:  # a schedule shorter than the plan: read more epochs
            train_ds, source, sampler = build_train_pipeline(
                cfg.data, t, rank, group_size, end_epoch=math.ceil(PLAN_STEPS / plan.steps_per_epoch),
                error_log=error_log)
        sink = sink_steps(t.sink_size, device_target, plan.steps_per_epoch, plan.total_steps)
        # an lr table at least PLAN_STEPS long: its length changes no timing
        optimizer = training_optimizer(cfg, net, max(plan.total_steps, PLAN_STEPS))
        step_cell = training_step(cfg, net, optimizer, group_size, loss_scale)
        read_s, step_s, losses = _timed_steps(step_cell, train_ds, source, cfg.data.train_list)
    steps_run = int(optimizer.global_step.asnumpy().reshape(-1)[0])
    s_per_step = float(np.mean(np.add(read_s, step_s)[1:]))
    result = TrainPlan(steps_run=steps_run, compile_s=max(0.0, step_s[0] - float(np.mean(step_s[1:]))),
                       s_per_step=s_per_step, steps_per_epoch=plan.steps_per_epoch, total_steps=plan.total_steps,
                       estimate_s=s_per_step * plan.total_steps, host_peak_gb=peak_rss_gb(),
                       device_peak_gb=device_peak_gb(device_target), validations=validations_in_schedule(cfg, plan))
    _log_plan(cfg, result, device_target, group_size, sink, val_images, losses, step_s[0])
    return result


def _duration(seconds: float) -> str:
    """``12.3 s`` under a minute, else ``HH:MM:SS`` (``Nd HH:MM:SS`` past a day)."""
    return f"{seconds:.1f} s" if seconds < 60 else eta_text(seconds, 1, 1)


def _log_plan(cfg: Config, p: TrainPlan, device_target: str, group_size: int, sink: int, val_images: int,
              losses: List[float], first_step_s: float) -> None:
    t = cfg.train
    logger.info("plan: %d training steps run on %s (%d device(s), global batch %d, crop %dx%d); nothing saved, "
                "train.save_dir not touched", p.steps_run, device_target, group_size, t.batch_size, t.crop_h, t.crop_w)
    if not all(math.isfinite(v) for v in losses):
        logger.warning("plan: a loss was not finite (%s): the run would stop at its first check", losses)
    logger.info("plan: peak host memory %.2f GB (this process's peak RSS)", p.host_peak_gb)
    if p.device_peak_gb is not None:
        logger.info("plan: peak device memory %.2f GB (mindspore.runtime.max_memory_allocated)", p.device_peak_gb)
    else:
        logger.info("plan: peak device memory: not available on %s (MindSpore keeps no device pool there%s)",
                    device_target, "; the host figure is the training's memory" if device_target == "CPU" else "")
    logger.info("plan: compilation %.1f s (first step %.2f s)", p.compile_s, first_step_s)
    logger.info("plan: %.3f s/step (steps 2-%d, reading the batch included), %.2f img/s", p.s_per_step,
                PLAN_STEPS, t.batch_size / p.s_per_step)
    full = t.epochs * p.steps_per_epoch
    logger.info("plan: %d steps/epoch x %d epochs = %d steps in the schedule%s", p.steps_per_epoch, t.epochs, full,
                f"; train.max_steps cuts it to {p.total_steps}" if p.total_steps != full else "")
    logger.info("plan: estimated time %s for the whole schedule (%d steps x %.3f s/step), plus %.0f s of "
                "compilation once", _duration(p.estimate_s), p.total_steps, p.s_per_step, p.compile_s)
    if sink:
        logger.info("plan: train.sink_size %d: the run feeds %d steps per device call; the plan fed steps one by "
                    "one from the host, so the run's steps may be faster", t.sink_size, sink)
    if p.validations:
        logger.info("plan: in-training validation not included: train.eval_interval %d runs %d validation(s) of %d "
                    "image(s) (train.eval_mode %s)", t.eval_interval, p.validations, val_images, t.eval_mode)
    else:
        logger.info("plan: no in-training validation (train.eval_interval 0)")
