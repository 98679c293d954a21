"""The training loop: :class:`Trainer` builds a run from the config and steps, logs, saves and evaluates it.

Checkpoint files (names, save, resume) are :mod:`src.checkpoint`'s; the step cell is :mod:`src.train.step`'s."""
from __future__ import annotations

import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

from src.checkpoint import (SCHEDULE_PREFIX, TrainState, epoch_checkpoints, load_checkpoint_strict, load_train_state,
                            open_resume, read_best_miou, resume_position, remove_partial_checkpoints, rotate_checkpoints,
                            save_best_checkpoint, save_train_checkpoint, schedule_changes, schedule_of)
from src.config import Config, ConfigError, TrainConfig, save_config
from src.data.dataset import DataError, read_list
from src.data.labels import spec_of
from src.data.pipeline import build_train_pipeline, build_val_pipeline
from src.distributed import allreduce_sum, shard
from src.errors import PSPNetError
from src.model.formats import ms_predict
from src.evaluation.evaluate import evaluate_samples
from src.evaluation.protocol import protocol_from_config, run_batches
from src.evaluation.metrics import ConfusionMatrix, scores_from_matrix
from src.model.pspnet import build_pspnet, training_input_hw
from src.model.resnet import batch_norm
from src.paths import ensure_output_dir
from src.train.lr import build_optimizer, current_lrs, lr_tables, lrs_at
from src.train.progress import Clock, LossWindow, first_non_finite
from src.train.records import MetricsLog, plot_curves
from src.train.step import NetWithLoss, TrainStep, apply_amp, make_loss_scale

logger = logging.getLogger(__name__)

CKPT_RE = re.compile(r"^epoch_(\d+)\.ckpt$")


class TrainingError(PSPNetError, RuntimeError):
    """Training cannot go on (non-finite loss, unusable resume checkpoint...)."""


def check_same_resume(step: int, resume_path: Optional[Path], rank: int, group_size: int) -> None:
    """Every rank must continue from the same point (or all start fresh); else one clear error on every rank.

    Only rank 0 writes checkpoints, so on nodes whose ``train.save_dir`` is
    not shared the other ranks find none and would train from step 0 while
    rank 0 continues.  Each rank contributes the step it would resume at
    (-1 for a fresh start); the vectors are summed over the group.
    """
    if group_size <= 1:
        return
    mine = np.zeros(group_size, np.int64)
    mine[rank] = step + 1  # non-negative for the exact integer all-reduce
    seen = allreduce_sum(mine, group_size) - 1
    if len(set(seen.tolist())) > 1:
        what = ", ".join(f"rank {r}: {'fresh start' if s < 0 else f'step {s}'}" for r, s in enumerate(seen.tolist()))
        raise TrainingError(f"ranks disagree on where to resume ({what}; this rank read {resume_path or 'nothing'}). "
                            f"Only rank 0 writes checkpoints: put train.save_dir on a file system every node "
                            f"shares, or copy rank 0's checkpoint to the same path on every node")


def pipeline_error(exc: BaseException, list_file: str) -> BaseException:
    """The :class:`DataError` inside a MindSpore pipeline failure as one line, or ``exc`` itself if there is none.

    MindSpore wraps an exception raised while reading a sample in a long
    RuntimeError; the project's own message is the line after ``DataError:``.
    """
    match = re.search(r"DataError: (.+)", str(exc))
    if match is None:
        return exc
    return DataError(f"{match.group(1).strip()} (while reading {list_file})")


def _norm_factory(device_target: str, group_size: int, sync_bn: bool):
    if not sync_bn or group_size <= 1:
        return batch_norm
    if device_target != "Ascend":
        logger.warning("train.sync_bn needs Ascend; on %s each device normalizes with its own batch statistics",
                       device_target)
        return batch_norm
    return lambda c: nn.SyncBatchNorm(c, eps=1e-5, momentum=0.9)


def _check_eval_fits(cfg: Config, static_hw: Optional[Tuple[int, int]]) -> None:
    """A fixed-size network evaluates only inputs of its size: the full protocol's windows must be the crop."""
    t, e = cfg.train, cfg.eval
    if static_hw and t.eval_interval and t.eval_mode == "full" and (e.test_h, e.test_w) != static_hw:
        raise ConfigError(f"model.graph_form {cfg.model.graph_form} builds the network for {static_hw[0]}x"
                          f"{static_hw[1]} inputs, but train.eval_mode full runs {e.test_h}x{e.test_w} windows: set "
                          f"eval.test_h/test_w to the crop, use train.eval_mode fast, or model.graph_form dynamic")


def _loss_scale(train_cfg: TrainConfig, device_target: str):
    if device_target == "CPU" and (train_cfg.amp_level != "O0" or train_cfg.loss_scale != "none"):
        raise ConfigError(f"train.amp_level {train_cfg.amp_level} / train.loss_scale {train_cfg.loss_scale}: "
                          f"mixed precision and loss scaling are not used on CPU (fp16 is slower there); set O0/none")
    return make_loss_scale(train_cfg.loss_scale, train_cfg.loss_scale_value)


def evaluate_net(net: nn.Cell, cfg: Config, mode: str, rank: int, group_size: int) -> Tuple[np.ndarray, int]:
    """This rank's confusion matrix on its shard of the val list; ``fast`` = center crops, ``full`` = protocol."""
    net.set_train(False)
    cm = ConfusionMatrix(cfg.data.classes, cfg.data.ignore_label)
    count = 0
    if mode == "fast":
        ds, _, _ = build_val_pipeline(cfg.data, cfg.train.crop_h, cfg.train.crop_w, cfg.eval.batch_size, rank,
                                      group_size)
        predict = ms_predict(net)
        for image, label in ds.create_tuple_iterator(num_epochs=1, output_numpy=True):
            # The last batch is zero-padded to the full size, so only one graph is compiled.
            pred = run_batches(predict, image, cfg.eval.batch_size).argmax(axis=1)
            cm.update(pred, label)
            count += len(label)
    else:
        spec = spec_of(cfg.data)
        samples = shard(read_list(os.path.join(cfg.data.data_root, cfg.data.val_list), cfg.data.data_root), rank,
                        group_size)
        cm.merge(evaluate_samples(samples, spec, ms_predict(net), protocol_from_config(cfg.data, cfg.eval),
                                  cfg.data.ignore_label))
        count = len(samples)
    net.set_train(True)
    return cm.matrix, count


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


class Trainer:
    """Everything one training run needs, built from the config; ``run()`` trains.

    Attributes useful to callers and tests: ``net``, ``optimizer``,
    ``step_cell``, ``state``, ``steps_per_epoch``, ``total_steps``.
    """

    def __init__(self, cfg: Config, device_target: str = "CPU", rank: int = 0, group_size: int = 1,
                 resume: Optional[str] = None, allow_schedule_change: bool = False) -> None:
        t = cfg.train
        self.cfg, self.rank, self.group_size = cfg, rank, group_size
        self.save_dir = Path(t.save_dir)
        self.ckpt_dir = self.save_dir / "checkpoints"
        self.is_main = rank == 0
        # Everything that can be checked is checked before the first step: output folder, both lists.
        if self.is_main:
            ensure_output_dir(self.ckpt_dir, "train.save_dir")
            remove_partial_checkpoints(self.ckpt_dir)
        else:
            ensure_output_dir(self.save_dir, "train.save_dir")
        if t.eval_interval:
            read_list(os.path.join(cfg.data.data_root, cfg.data.val_list), cfg.data.data_root)
        self.records = MetricsLog(self.save_dir / "metrics.jsonl") if self.is_main else None

        static_hw = training_input_hw(cfg.model.graph_form, device_target, (t.crop_h, t.crop_w))
        _check_eval_fits(cfg, static_hw)
        ms.set_seed(t.seed)  # the same seed gives the same initial weights on every rank and every run
        net = build_pspnet(cfg.model, cfg.data.classes, for_training=True,
                           norm=_norm_factory(device_target, group_size, t.sync_bn), static_hw=static_hw)
        if static_hw:
            logger.info("model.graph_form %s: network built for %dx%d inputs (constant-matrix pooling and resizes)",
                        cfg.model.graph_form, *static_hw)
        if device_target != "CPU":
            net = apply_amp(net, t.amp_level)
        loss_scale = _loss_scale(t, device_target)
        resume_path, resume_params = open_resume(resume, self.ckpt_dir)
        start_epoch, start_step = resume_position(resume_params, resume_path)
        check_same_resume(start_step, resume_path, rank, group_size)
        if cfg.model.pretrained and resume_path is None:
            load_checkpoint_strict(net, cfg.model.pretrained, allow_missing=("ppm.", "cls.", "aux."),
                                   allow_non_finite=cfg.model.allow_non_finite)

        # The sampler must know the epoch to resume at before the pipeline is built (the pipeline keeps
        # its own copy of it), so the counters are read first and the weights once everything exists.
        bad_log = self.save_dir / f"bad_samples_rank{rank}.tsv"
        if resume_path is None and bad_log.exists():
            bad_log.unlink()  # a fresh run counts its own skipped samples
        self.train_ds, self.source, self.sampler = build_train_pipeline(cfg.data, t, rank, group_size,
                                                                        start_epoch=start_epoch,
                                                                        bad_log=str(bad_log))
        self.start_epoch = start_epoch
        self.steps_per_epoch = len(self.sampler) // (t.batch_size // group_size)
        self.total_steps = t.epochs * self.steps_per_epoch
        if t.max_steps:
            self.total_steps = min(self.total_steps, t.max_steps)
        self.optimizer = build_optimizer(net, t.base_lr, self.total_steps, t.power, t.head_lr_mult, t.momentum,
                                         t.weight_decay, t.warmup_steps)
        self.lr_tables = lr_tables(self.optimizer)  # host copies: the log line needs no device read
        self.sink_size = sink_steps(t.sink_size, device_target, self.steps_per_epoch, self.total_steps)
        self._sink = None
        self.state = TrainState()
        self.schedule = schedule_of(t, group_size, self.total_steps)
        if resume_path is not None:
            self.state = load_train_state(resume_params, resume_path, net, self.optimizer, rank)
            self._check_schedule(resume_params, resume_path, allow_schedule_change)
            del resume_params
            saved_best = read_best_miou(self.ckpt_dir)  # the epoch checkpoint is written before its evaluation
            if saved_best is not None:
                self.state.best_miou = max(self.state.best_miou, saved_best)
            logger.info("resumed from %s: epoch %d, step %d, best mIoU %.4f", resume_path, self.state.epoch,
                        self.state.step, self.state.best_miou)
            if self.records:
                dropped = self.records.truncate_after(self.state.step)
                if dropped:
                    logger.info("metrics.jsonl: dropped %d records after step %d (from the interrupted run)",
                                dropped, self.state.step)
        self.net = net
        self.step_cell = TrainStep(NetWithLoss(net, cfg.data.ignore_label, t.aux_weight), self.optimizer,
                                   group_size, loss_scale)
        self.step_cell.set_train(True)
        if self.is_main:  # only once the run could start, so a failed start keeps the previous run's file
            save_config(cfg, self.save_dir / "config.yaml")

    def _check_schedule(self, params: Mapping[str, np.ndarray], path: Path, allow: bool) -> None:
        saved = {n[len(SCHEDULE_PREFIX):]: float(np.asarray(v).reshape(-1)[0]) for n, v in params.items()
                 if n.startswith(SCHEDULE_PREFIX)}
        if not saved:
            logger.warning("%s records no schedule (older checkpoint): cannot check that batch size, epochs, lr "
                           "and crop match the run it continues", path)
            return
        changes = schedule_changes(saved, self.schedule)
        if changes and not allow:
            raise TrainingError(f"refusing to resume {path} with a different schedule ({'; '.join(changes)}): the "
                                f"poly lr would not continue as it started. Restore those values, or pass "
                                f"--allow-schedule-change to resume anyway")
        if changes:
            logger.warning("resuming with a changed schedule (allowed): %s", "; ".join(changes))

    def _batches(self, batches, count: int, list_file: str):
        """Up to ``count`` batches from the iterator, a sample's DataError reported as one line."""
        for _ in range(count):
            try:
                item = next(batches)
            except StopIteration:
                return
            except RuntimeError as exc:
                raise pipeline_error(exc, list_file) from None
            yield item

    def _chunks(self, batches, count: int):
        """``(steps, losses)`` for ``count`` steps: one step per call from the host, or ``sink_size`` per sink."""
        if not self.sink_size:
            for image, label in self._batches(batches, count, self.cfg.data.train_list):
                yield 1, self.step_cell(ms.Tensor(image), ms.Tensor(label))
            return
        if self._sink is None:
            self._sink = self._make_sink()
        for _ in range(count // self.sink_size):
            try:
                losses = self._sink()
            except RuntimeError as exc:
                raise pipeline_error(exc, self.cfg.data.train_list) from None
            yield self.sink_size, losses

    def _make_sink(self):
        """``sink_size`` training steps per call, fed from the device queue (MindSpore's ``data_sink``)."""
        return ms.data_sink(self.step_cell, self.train_ds, sink_size=self.sink_size, jit_config=ms.JitConfig())

    def _check_and_log(self, window: LossWindow, epoch: int, done: int, clock: Clock) -> None:
        """Fetch the window's losses (one device wait), stop on a non-finite one, log and record the last."""
        t, steps = self.cfg.train, window.steps
        rows = window.fetch()
        bad = first_non_finite(rows)
        if bad is not None:
            raise TrainingError(f"loss is {bad.total} at {bad.where()} (epoch {epoch + 1}; main {bad.main}, "
                                f"aux {bad.aux}); stopping without saving. Last good checkpoint: {self._last_good()}")
        last = rows[-1]
        step_time = clock.lap(steps)
        lrs = lrs_at(self.lr_tables, last.step - 1)  # the lr that step ran with
        logger.info("epoch %d/%d step %d/%d (global %d/%d) loss %.4f (main %.4f aux %.4f) lr %.6f/%.6f %.2fs/step "
                    "%.1f img/s ETA %s", epoch + 1, t.epochs, done, self.steps_per_epoch, last.step,
                    self.total_steps, last.total, last.main, last.aux, lrs[0], lrs[-1], step_time,
                    t.batch_size / step_time, clock.eta(last.step))
        if self.records:
            self.records.write({"kind": "step", "epoch": epoch + 1, "step": last.step, "loss": last.total,
                                "main": last.main, "aux": last.aux, "lr": lrs[0], "head_lr": lrs[-1],
                                "step_s": round(step_time, 4)})

    def _save(self, epoch: int) -> Optional[Path]:
        """The epoch's checkpoint (main rank, when due), then rotation."""
        t, state = self.cfg.train, self.state
        if not self.is_main or not (epoch % t.save_every == 0 or epoch == t.epochs or state.step >= self.total_steps):
            return None
        path = save_train_checkpoint(self.ckpt_dir / f"epoch_{epoch:04d}.ckpt", self.net, self.optimizer, state,
                                     self.schedule)
        rotate_checkpoints(self.ckpt_dir, t.keep_last)
        logger.info("saved %s", path)
        return path

    def _evaluate(self, saved: Optional[Path]) -> float:
        """Evaluate after an epoch; a failure says which checkpoint holds the finished work."""
        try:
            return self._evaluate_and_record()
        except (PSPNetError, RuntimeError) as exc:
            err = pipeline_error(exc, self.cfg.data.val_list) if isinstance(exc, RuntimeError) else exc
            if not isinstance(err, PSPNetError):
                raise
            kept = f"the epoch's checkpoint is saved: {saved}" if saved else f"last checkpoint: {self._last_good()}"
            raise TrainingError(f"evaluation after epoch {self.state.epoch} failed: {err}. {kept}; fix the problem "
                                f"and continue with --resume auto") from None

    def _evaluate_and_record(self) -> float:
        """Global mIoU over every rank's shard; records it, and saves best.ckpt when it improved."""
        state, group_size = self.state, self.group_size
        local, count = evaluate_net(self.net, self.cfg, self.cfg.train.eval_mode, self.rank, group_size)
        local_miou = scores_from_matrix(local).miou
        state.local_best = max(state.local_best, local_miou)
        mine = np.zeros(group_size, np.float32)
        mine[self.rank] = state.local_best
        state.device_bests = [float(v) for v in allreduce_sum(mine, group_size)]  # saved by rank 0 for all
        scores = scores_from_matrix(allreduce_sum(local, group_size))
        improved = scores.miou > state.best_miou
        if improved:
            state.best_miou = scores.miou
        logger.info("eval epoch %d device %d: best mIoU %.4f mIoU %.4f (own shard, %d images) | global mIoU %.4f "
                    "mAcc %.4f allAcc %.4f best %.4f", state.epoch, self.rank, state.local_best, local_miou, count,
                    scores.miou, scores.macc, scores.allacc, state.best_miou)
        if self.records:
            self.records.write({"kind": "eval", "epoch": state.epoch, "step": state.step, "miou": scores.miou,
                                "macc": scores.macc, "allacc": scores.allacc, "best_miou": state.best_miou})
            plot_curves(self.records.read(), self.save_dir / "curves.png")
        if improved and self.is_main:
            save_best_checkpoint(self.ckpt_dir, self.net, self.optimizer, state)
        return scores.miou

    def _last_good(self) -> str:
        found = epoch_checkpoints(self.ckpt_dir)
        return str(found[-1][1]) if found else "none"

    def run(self, stop_after_epoch: Optional[int] = None) -> Dict:
        """Train to ``train.epochs`` (or ``max_steps``); returns a summary dict.

        ``stop_after_epoch`` ends the run early (as an interruption would)
        without changing the schedule, for testing resume.
        """
        t, state = self.cfg.train, self.state
        last_epoch = t.epochs if stop_after_epoch is None else min(t.epochs, stop_after_epoch)
        remaining = max(0, last_epoch - state.epoch)
        planned = min(self.total_steps, last_epoch * self.steps_per_epoch)
        logger.info("training %d epoch(s) x %d steps (global batch %d on %d device(s)); schedule %d steps",
                    remaining, self.steps_per_epoch, t.batch_size, self.group_size, self.total_steps)
        if state.epoch != self.start_epoch:
            raise TrainingError("a Trainer runs once; build a new one (with resume) to continue")
        if state.step >= self.total_steps or state.epoch >= t.epochs:
            logger.warning("nothing left to train: the run in %s is finished (epoch %d of %d, step %d of %d). Raise "
                           "train.epochs (with --allow-schedule-change), choose another train.save_dir, or start "
                           "fresh with --resume none", self.save_dir, state.epoch, t.epochs, state.step,
                           self.total_steps)
            return {"epoch": state.epoch, "step": state.step, "best_miou": state.best_miou, "last_miou": None,
                    "lr": current_lrs(self.optimizer), "bad_samples": 0, "save_dir": str(self.save_dir),
                    "nothing_left": True}
        batches = None if self.sink_size else iter(self.train_ds.create_tuple_iterator(num_epochs=1,
                                                                                      output_numpy=True))
        clock = Clock(time.perf_counter(), state.step, planned)
        last_miou = None
        for epoch in range(state.epoch, last_epoch):
            if state.step >= self.total_steps:
                break
            count = min(self.steps_per_epoch, self.total_steps - state.step)
            window, done = LossWindow(), 0
            clock.restart_lap()  # the previous epoch's save and evaluation are not step time
            for n, losses in self._chunks(batches, count):
                state.step += n
                done += n
                window.add(state.step, n, losses)
                if state.step // t.log_every > (state.step - n) // t.log_every:  # a multiple of log_every
                    self._check_and_log(window, epoch, done, clock)
            if window.pending:  # the epoch's end (or a data set that ran out early): check what is left
                self._check_and_log(window, epoch, done, clock)
            state.epoch = epoch + 1
            saved = self._save(state.epoch)  # before evaluating, so an eval failure loses no training
            if t.eval_interval and (state.epoch % t.eval_interval == 0 or state.epoch == t.epochs):
                last_miou = self._evaluate(saved)
        if self.records:
            plot_curves(self.records.read(), self.save_dir / "curves.png")
        if self.group_size > 1:  # a barrier: no rank leaves before rank 0 has written the last checkpoint
            allreduce_sum(np.zeros(1, np.float32), self.group_size)
        return {"epoch": state.epoch, "step": state.step, "best_miou": state.best_miou, "last_miou": last_miou,
                "lr": current_lrs(self.optimizer), "bad_samples": self.source.bad_count,
                "save_dir": str(self.save_dir)}


def run_training(cfg: Config, device_target: str = "CPU", rank: int = 0, group_size: int = 1,
                 resume: Optional[str] = None, stop_after_epoch: Optional[int] = None,
                 allow_schedule_change: bool = False) -> Dict:
    """Build a :class:`Trainer` and run it; returns its summary."""
    return Trainer(cfg, device_target, rank, group_size, resume, allow_schedule_change).run(stop_after_epoch)
