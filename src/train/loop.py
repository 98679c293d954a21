"""The training loop: :class:`Trainer` builds a run from the config, then steps, logs, saves and evaluates it.

The builders are :mod:`src.train.setup`'s, the run folder's files :mod:`src.train.run_folder`'s, checkpoint
files and resume policy :mod:`src.train.run_state`'s, the step cell :mod:`src.train.step`'s and the
evaluator :mod:`src.evaluation.evaluate`'s."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import mindspore as ms

from src.config import Config
from src.data.pipeline import build_train_pipeline, pipeline_error
from src.system.distributed import allreduce_sum
from src.errors import PSPNetError, TrainingError
from src.evaluation.evaluate import evaluate_network
from src.outputs.folder import OutputFolder
from src.train.data_check import check_training_data, continued_class_weights
from src.train.finetune import load_config_pretrained, named_classes
from src.train.lr import current_lrs, lr_tables, lrs_at
from src.train.loss_window import Clock, LossWindow, first_non_finite
from src.train.records import plot_curves, validation_due, validation_of, validation_protocol
from src.train.run_folder import CURVES_NAME, RunFolder
from src.train.run_state import ResumePoint, RunCheckpoints, schedule_of
from src.train.setup import (StepPlan, build_network, loss_scale_for, sink_steps, training_model, training_pyramid,
                             training_optimizer, training_step, validation_network)

logger = logging.getLogger(__name__)


class Trainer:
    """Everything one training run needs, built from the config; ``run()`` trains. Attributes useful to callers and
    tests: ``net``, ``optimizer``, ``step_cell``, ``state``, ``steps_per_epoch``, ``total_steps``."""

    def __init__(self, cfg: Config, device_target: str = "CPU", rank: int = 0, group_size: int = 1,
                 resume: Optional[str] = None, allow_schedule_change: bool = False, overwrite: bool = False,
                 outputs: Optional[OutputFolder] = None) -> None:
        """Build the run. ``outputs``: rank 0's output folder, already locked by the caller (opened here
        without a lock when not given); ``overwrite`` lets a fresh run replace an earlier run's files."""
        t = cfg.train
        self.cfg, self.rank, self.group_size, self.is_main = cfg, rank, group_size, rank == 0
        self.folder = RunFolder(cfg, rank, overwrite, outputs)
        self.save_dir, self.outputs, self.error_log = self.folder.save_dir, self.folder.outputs, self.folder.error_log
        self.ckpts = RunCheckpoints(self.save_dir, t, self.folder.owner, named_classes(cfg.data))
        point = self.ckpts.open(resume, rank, group_size)
        cfg = self.cfg = training_pyramid(cfg, point.params, str(point.path or ""))  # config.yaml records the form
        self.folder.prepare(cfg, point)
        self.records = self.folder.records
        # before anything is built: labels that cannot teach the config's classes are refused here, in one line
        weights = check_training_data(cfg, rank, group_size, self.folder.owner)
        self.net = build_network(cfg, device_target, group_size)
        self.device_target, self._val_net = device_target, None  # the validation network, built when first needed
        loss_scale = loss_scale_for(t, device_target)
        if cfg.model.pretrained and point.path is None:
            load_config_pretrained(self.net, cfg)
        self._build_data(point)  # the sampler needs the epoch to resume at; the weights come after
        self.optimizer = training_optimizer(cfg, self.net, self.total_steps)
        self.lr_tables = lr_tables(self.optimizer)  # host copies: the log line needs no device read
        self.sink_size, self._sink = sink_steps(t.sink_size, device_target, self.steps_per_epoch, self.total_steps), None
        self.schedule = schedule_of(t, group_size, self.total_steps, training_model(cfg).output_stride)
        self.state = self.ckpts.restore(point, self.net, self.optimizer, rank, self.schedule, allow_schedule_change)
        self.resumed = point.path is not None
        if self.resumed:
            self.folder.drop_records_after(self.state.step)
        self.state.class_weights = continued_class_weights(t.class_weights, weights,
                                                           self.state.class_weights if self.resumed else None)
        self.step_cell = training_step(cfg, self.net, self.optimizer, group_size, loss_scale, self.state.class_weights)
        if self.is_main:  # only once the run could start, so a failed start keeps the previous run's file
            self.folder.write_config(self.state.class_weights)

    def _build_data(self, point: ResumePoint) -> None:
        """The training pipeline from the resume epoch on, and the step plan it gives."""
        self.train_ds, self.source, self.sampler = build_train_pipeline(
            self.cfg.data, self.cfg.train, self.rank, self.group_size, start_epoch=point.epoch,
            bad_log=self.folder.bad_sample_log(point), error_log=self.error_log)
        self.start_epoch = point.epoch
        if self.cfg.train.batch_size // self.group_size == 1:
            logger.warning("one image per device: the BatchNorm after the pyramid's 1x1 bin sees one value per "
                           "channel, so that branch outputs its bias only (PyTorch refuses this batch); use 2 or more "
                           "images per device")
        plan = StepPlan.of(self.cfg.train, len(self.sampler), self.group_size)
        self.steps_per_epoch, self.total_steps = plan.steps_per_epoch, plan.total_steps

    def _chunks(self, batches, count: int):
        """``(steps, losses)`` for ``count`` steps: one step per call from the host, or ``sink_size`` per sink.

        A sample that breaks the pipeline comes back as its own DataError (one line), not MindSpore's text."""
        try:
            if not self.sink_size:
                for _ in range(count):
                    image, label = next(batches)
                    yield 1, self.step_cell(ms.Tensor(image), ms.Tensor(label))
                return
            if self._sink is None:
                self._sink = self._make_sink()
            for _ in range(count // self.sink_size):
                yield self.sink_size, self._sink()
        except StopIteration:
            return
        except RuntimeError as exc:
            raise pipeline_error(exc, self.source, self.cfg.data.train_list) from None

    def _make_sink(self):
        """``sink_size`` training steps per call, fed from the device queue (MindSpore's ``data_sink``)."""
        return ms.data_sink(self.step_cell, self.train_ds, sink_size=self.sink_size, jit_config=ms.JitConfig())

    def _check_and_log(self, window: LossWindow, epoch: int, done: int, clock: Clock) -> None:
        """Fetch the window's losses (one device wait), stop on a non-finite one, log and record the last."""
        t = self.cfg.train
        rows = window.fetch()  # empties the window: the step count comes from the rows
        bad = first_non_finite(rows)
        if bad is not None:
            raise TrainingError(f"loss is {bad.total} at {bad.where()} (epoch {epoch + 1}; main {bad.main}, "
                                f"aux {bad.aux}); stopping without saving. Last good checkpoint: "
                                f"{self.ckpts.last_good()}")
        last, step_time = rows[-1], clock.lap(sum(r.steps for r in rows))
        lrs = lrs_at(self.lr_tables, last.step - 1)  # the lr that step ran with
        logger.info("epoch %d/%d step %d/%d (global %d/%d) loss %.4f (main %.4f aux %.4f) lr %.6f/%.6f %.2fs/step "
                    "%.1f img/s ETA %s", epoch + 1, t.epochs, done, self.steps_per_epoch, last.step,
                    self.total_steps, last.total, last.main, last.aux, lrs[0], lrs[-1], step_time,
                    t.batch_size / step_time, clock.eta(last.step))
        if self.records:
            self.records.write({"kind": "step", "epoch": epoch + 1, "step": last.step, "loss": last.total,
                                "main": last.main, "aux": last.aux, "lr": lrs[0], "head_lr": lrs[-1],
                                "step_s": round(step_time, 4)})

    def _evaluate(self, saved: Optional[Path]) -> float:
        """Evaluate after an epoch; a failure says which checkpoint holds the finished work."""
        try:
            return self._evaluate_and_record()
        except PSPNetError as exc:
            kept = f"the epoch's checkpoint is saved: {saved}" if saved else f"last checkpoint: {self.ckpts.last_good()}"
            raise TrainingError(f"evaluation after epoch {self.state.epoch} failed: {exc}. {kept}; fix the problem "
                                f"and continue with --resume auto") from None

    def _evaluate_and_record(self) -> float:
        """Global mIoU over every rank's shard; records it, and saves best.ckpt when it improved."""
        state, group_size = self.state, self.group_size
        self._val_net = validation_network(self.cfg, self.device_target, self.net, self._val_net)
        local, count = evaluate_network(self._val_net, self.cfg, self.cfg.train.eval_mode, self.rank, group_size,
                                        self.error_log)
        local_miou, scores, improved = state.add_validation(local, self.rank, group_size)
        t = self.cfg.train  # the log line, record and panel say which mIoU this is: a center crop's or eval.py's
        protocol = validation_protocol(t.eval_mode, t.crop_h, t.crop_w)
        logger.info("validation epoch %d [%s] device %d: best mIoU %.4f mIoU %.4f (own shard, %d images) | global "
                    "mIoU %.4f mAcc %.4f allAcc %.4f best %.4f", state.epoch, protocol, self.rank, state.local_best,
                    local_miou, count, scores.miou, scores.macc, scores.allacc, state.best_miou)
        if improved:  # before the records: a failed picture must not cost the best checkpoint
            self.ckpts.save_best(self.net, self.optimizer, state)
        if self.records:
            self.records.write({"kind": "eval", "epoch": state.epoch, "step": state.step, "miou": scores.miou,
                                "macc": scores.macc, "allacc": scores.allacc, "best_miou": state.best_miou,
                                "protocol": protocol})
            self._plot()
        return scores.miou

    def _plot(self) -> None:
        """``curves.png``; a failed write is a warning: the numbers are in metrics.jsonl and train.log."""
        try:
            plot_curves(self.records.read(), self.save_dir / CURVES_NAME, self.outputs, validation_of(self.cfg.train))
        except OSError as exc:
            logger.warning("cannot write %s (%s); the figures' numbers are in %s", self.save_dir / CURVES_NAME,
                           exc, self.records.path)

    def _eval_pending(self) -> bool:
        """True when the resumed epoch was due for an evaluation that never finished (a kill, a failure):
        rank 0 decides from metrics.jsonl, every rank follows."""
        t, state = self.cfg.train, self.state
        pending = 0
        if self.resumed and state.epoch > 0 and validation_due(t, state.epoch) and self.records is not None:
            pending = int(not self.folder.evaluated(state.epoch))
        if self.group_size > 1:
            pending = int(allreduce_sum(np.array([pending], np.int64), self.group_size)[0])
        return pending > 0

    def _train_epoch(self, batches, epoch: int, clock: Clock) -> None:
        """One epoch's steps (or what is left of the schedule), each window of losses checked and logged."""
        state, log_every = self.state, self.cfg.train.log_every
        count = min(self.steps_per_epoch, self.total_steps - state.step)
        window, done = LossWindow(), 0
        clock.restart_lap()  # the previous epoch's save and evaluation are not step time
        for n, losses in self._chunks(batches, count):
            state.step += n
            done += n
            window.add(state.step, n, losses)
            if state.step // log_every > (state.step - n) // log_every:  # passed a multiple of log_every
                self._check_and_log(window, epoch, done, clock)
        if window.pending:  # the epoch's end (or a data set that ran out early): check what is left
            self._check_and_log(window, epoch, done, clock)
        state.epoch = epoch + 1

    def _summary(self, last_miou: Optional[float], **extra) -> Dict:
        state = self.state
        return {"epoch": state.epoch, "step": state.step, "best_miou": state.best_miou, "last_miou": last_miou,
                "lr": current_lrs(self.optimizer), "bad_samples": self.source.bad_count,
                "save_dir": str(self.save_dir), "validation": validation_of(self.cfg.train) or "none", **extra}

    def run(self, stop_after_epoch: Optional[int] = None) -> Dict:
        """Train to ``train.epochs`` (or ``max_steps``); returns a summary dict. ``stop_after_epoch`` (``train.py
        --stop-after-epoch``) ends the run after that epoch, as a time-limited job would, without changing the
        schedule; ``--resume auto`` continues it."""
        t, state = self.cfg.train, self.state
        last_epoch = t.epochs if stop_after_epoch is None else min(t.epochs, stop_after_epoch)
        logger.info("training %d epoch(s) x %d steps (global batch %d on %d device(s)); schedule %d steps",
                    max(0, last_epoch - state.epoch), self.steps_per_epoch, t.batch_size, self.group_size,
                    self.total_steps)
        if state.epoch != self.start_epoch:
            raise TrainingError("a Trainer runs once; build a new one (with resume) to continue")
        last_miou = None
        if self._eval_pending():
            logger.info("the evaluation after epoch %d did not finish in the run that saved it: evaluating now",
                        state.epoch)
            last_miou = self._evaluate(self.ckpts.last_saved())
        if state.step >= self.total_steps or state.epoch >= t.epochs:
            logger.warning("nothing left to train: the run in %s is finished (epoch %d of %d, step %d of %d). Raise "
                           "train.epochs (with --allow-schedule-change), choose another train.save_dir, or start "
                           "fresh there with --resume none --overwrite (that replaces this run's files)",
                           self.save_dir, state.epoch, t.epochs, state.step, self.total_steps)
            return self._summary(last_miou, bad_samples=0, nothing_left=True)
        batches = None if self.sink_size else iter(self.train_ds.create_tuple_iterator(num_epochs=1,
                                                                                      output_numpy=True))
        clock = Clock(time.perf_counter(), state.step, min(self.total_steps, last_epoch * self.steps_per_epoch))
        for epoch in range(state.epoch, last_epoch):
            if state.step >= self.total_steps:
                break
            self._train_epoch(batches, epoch, clock)
            saved = self.ckpts.save_epoch(self.net, self.optimizer, state, self.schedule, self.total_steps)
            if validation_due(t, state.epoch):
                last_miou = self._evaluate(saved)  # after saving, so an eval failure loses no training
        if self.records:
            self._plot()
        if self.group_size > 1:  # a barrier: no rank leaves before rank 0 has written the last checkpoint
            allreduce_sum(np.zeros(1, np.float32), self.group_size)
        return self._summary(last_miou)


def run_training(cfg: Config, device_target: str = "CPU", rank: int = 0, group_size: int = 1,
                 resume: Optional[str] = None, stop_after_epoch: Optional[int] = None,
                 allow_schedule_change: bool = False, overwrite: bool = False,
                 outputs: Optional[OutputFolder] = None) -> Dict:
    """Build a :class:`Trainer` and run it; returns its summary."""
    return Trainer(cfg, device_target, rank, group_size, resume, allow_schedule_change, overwrite,
                   outputs).run(stop_after_epoch)
