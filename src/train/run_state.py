"""A training run's state and its checkpoint folder: what a training checkpoint holds, which one to resume
from, where every rank continues, when to save, what to keep, and best.ckpt.

File-level reading, strict loading and atomic saving are :mod:`src.checkpoint`'s; the files themselves are
written through the run's output folder (:mod:`src.outputs`), so only this run's own checkpoints are ever
rotated away.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

from src.checkpoint.files import (CHECKSUM_SUFFIX, CLASS_NAMES_ENTRY, PYRAMID_ENTRY, checksum_path, class_names_entry,
                                  is_training_state, load_params_strict, pyramid_entry, save_checkpoint_atomic,
                                  verify_checksum)
from src.checkpoint.format import CheckpointError, read_checkpoint
from src.config import PYRAMIDS, TrainConfig
from src.system.distributed import allreduce_sum
from src.errors import TrainingError, shown, shown_names
from src.evaluation.metrics import Scores, scores_from_matrix
from src.outputs.folder import OutputFolder

logger = logging.getLogger(__name__)

# What a training checkpoint holds beside the weights (src.checkpoint.is_training_state knows every one of them).
OPTIMIZER_STATE_PREFIXES = ("global_step", "moments.")
# nn.SGD's momentum buffers and first-step flags, in checkpoints written before the optimizer became nn.Momentum.
SGD_BUFFER, SGD_FLAG = "accum.", "stat."
LOOP_STATE_NAMES = ("epoch_num", "step_num", "best_miou")
SCHEDULE_PREFIX = "schedule."
CLASS_WEIGHTS_NAME = "class_weights"  # train.class_weights as the run used them (auto: the numbers computed)
LOCAL_BEST_NAME = "local_best_miou"  # this device's best mIoU on its own shard (absent from older checkpoints)

CKPT_RE = re.compile(r"^epoch_(\d+)\.ckpt$")  # the epoch checkpoints that rotation and --resume auto see


# Training checkpoints: weights + optimizer state + loop counters + schedule.

@dataclass
class TrainState:
    """Where a run is: completed epochs, global step, best global mIoU so far."""

    epoch: int = 0
    step: int = 0
    best_miou: float = -1.0
    local_best: float = -1.0  # this device's best on its own shard
    device_bests: List[float] = field(default_factory=list)  # every device's local_best, gathered at eval
    class_weights: Optional[List[float]] = None  # the loss's class weights (train.class_weights), None: unweighted

    def add_validation(self, local: np.ndarray, rank: int, group_size: int) -> Tuple[float, Scores, bool]:
        """One validation's confusion matrix on this rank's shard (``local``) into the bests: this device's and,
        over every rank, the global one. Returns this shard's mIoU, the global scores and whether they improved."""
        local_miou = scores_from_matrix(local).miou
        self.local_best = max(self.local_best, local_miou)
        mine = np.zeros(group_size, np.float32)
        mine[rank] = self.local_best
        self.device_bests = [float(v) for v in allreduce_sum(mine, group_size)]  # saved by rank 0 for all
        scores = scores_from_matrix(allreduce_sum(local, group_size))
        improved = scores.miou > self.best_miou
        self.best_miou = max(self.best_miou, scores.miou)
        return local_miou, scores, improved


def optimizer_state(optimizer: nn.Optimizer) -> Dict[str, ms.Parameter]:
    """The optimizer entries saved with a checkpoint: global_step and the momentum buffers."""
    return {p.name: p for p in optimizer.get_parameters() if p.name.startswith(OPTIMIZER_STATE_PREFIXES)}


def schedule_of(train_cfg: TrainConfig, group_size: int, total_steps: int, output_stride: int) -> Dict[str, float]:
    """The values a resumed run must share with the run it continues (else its lr schedule, or what its steps
    train, is not the same); ``output_stride`` is the one the training network runs at."""
    t = train_cfg
    return {"batch_size": t.batch_size, "epochs": t.epochs, "base_lr": t.base_lr, "power": t.power,
            "crop_h": t.crop_h, "crop_w": t.crop_w, "devices": group_size, "total_steps": total_steps,
            "warmup_steps": t.warmup_steps, "output_stride": output_stride}


def schedule_changes(saved: Mapping[str, float], current: Mapping[str, float]) -> List[str]:
    """``key: checkpoint X, now Y`` for every schedule value that differs."""
    return [f"{k}: checkpoint {saved[k]:g}, now {current[k]:g}" for k in current
            if k in saved and not math.isclose(saved[k], current[k], rel_tol=1e-9)]


def save_train_checkpoint(path: str | os.PathLike, net: nn.Cell, optimizer: nn.Optimizer, state: TrainState,
                          schedule: Optional[Mapping[str, float]] = None, folder: Optional[OutputFolder] = None,
                          class_names: Optional[Sequence[str]] = None) -> Path:
    """Weights + optimizer state + epoch/step/best mIoU (+ the schedule it ran under, + the names of the
    classifier's classes, which fine-tuning matches by: ``src.checkpoint.CLASS_NAMES_ENTRY``), written atomically."""
    entries = [{"name": p.name, "data": p.data} for p in net.get_parameters()]
    names = class_names_entry(class_names) if class_names else None
    if class_names and names is None:
        logger.warning("the class names are too long to record in the checkpoint; fine-tuning from it will need "
                       "model.pretrained_class_names")
    entries += [{"name": CLASS_NAMES_ENTRY, "data": ms.Tensor(names)}] if names is not None else []
    if getattr(net, "pyramid", None) in PYRAMIDS:  # the form these weights compute in (model.pyramid, resolved)
        entries.append({"name": PYRAMID_ENTRY, "data": ms.Tensor(pyramid_entry(net.pyramid))})
    entries += [{"name": SCHEDULE_PREFIX + k, "data": ms.Tensor(np.array([v], np.float64))}
                for k, v in (schedule or {}).items()]
    if state.class_weights is not None:
        entries.append({"name": CLASS_WEIGHTS_NAME, "data": ms.Tensor(np.asarray(state.class_weights, np.float32))})
    entries += [{"name": n, "data": p.data} for n, p in optimizer_state(optimizer).items()]
    entries += [{"name": "epoch_num", "data": ms.Tensor(np.array([state.epoch], np.int32))},
                {"name": "step_num", "data": ms.Tensor(np.array([state.step], np.int32))},
                {"name": "best_miou", "data": ms.Tensor(np.array([state.best_miou], np.float32))},
                {"name": LOCAL_BEST_NAME,
                 "data": ms.Tensor(np.array(state.device_bests or [state.local_best], np.float32))}]
    return save_checkpoint_atomic(entries, path, folder)


def _counter(params: Mapping[str, np.ndarray], name: str, path: str | os.PathLike) -> int:
    """A loop counter of a training checkpoint: one finite, whole, non-negative number, else CheckpointError."""
    value = np.asarray(params[name]).reshape(-1)
    number = float(value[0]) if value.size == 1 and value.dtype.kind in "iu" else math.nan
    if not math.isfinite(number) or number < 0 or number > 2**53:
        raise CheckpointError(f"{path}: its {name} is {shown(value.tolist()[:4])} ({value.dtype}), not a count of 0 "
                              f"or more; the file is not a checkpoint this program wrote")
    return int(number)


def resume_position(params: Optional[Mapping[str, np.ndarray]], path: Optional[Path]) -> Tuple[int, int]:
    """(epoch, step) that a training checkpoint's counters give, checked; (0, -1) when there is nothing to
    resume (no checkpoint, or one without counters, which :func:`load_train_state` then refuses)."""
    if params is None or "epoch_num" not in params or "step_num" not in params:
        return 0, -1
    epoch, step = _counter(params, "epoch_num", path), _counter(params, "step_num", path)
    for count, name, limit in ((epoch, "epoch_num", "epochs"), (step, "step_num", "total_steps")):
        end = _one_number(params, SCHEDULE_PREFIX + limit, path) if SCHEDULE_PREFIX + limit in params else math.inf
        if count > end:
            raise CheckpointError(f"{path}: its {name} ({count}) is past the end of the schedule it records "
                                  f"({limit} {end:g}); the file is not a checkpoint this program wrote")
    return epoch, step


def _refuse_odd_floats(entries: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """CheckpointError naming the training-state entries that are not float arrays or hold NaN / inf."""
    odd = sorted(n for n, v in entries.items()
                 if np.asarray(v).dtype.kind != "f" or not np.isfinite(np.asarray(v)).all())
    if odd:
        raise CheckpointError(f"{path}: {len(odd)} optimizer entries are not finite floats: {shown_names(odd)}; the "
                              f"file is not a checkpoint this program wrote")


def _one_number(params: Mapping[str, np.ndarray], name: str, path: str | os.PathLike,
                low: float = -math.inf, high: float = math.inf) -> float:
    """The single finite float in [low, high] a training checkpoint keeps under ``name``, else CheckpointError."""
    value = np.asarray(params[name]).reshape(-1)
    number = float(value[0]) if value.size == 1 and value.dtype.kind == "f" else math.nan
    if not (math.isfinite(number) and low <= number <= high):
        within = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
        raise CheckpointError(f"{path}: its {shown(name)} is {shown(value.tolist()[:4])} ({value.dtype}), not one "
                              f"finite float{within}; the file is not a checkpoint this program wrote")
    return number


def saved_optimizer_state(params: Mapping[str, np.ndarray], path: str | os.PathLike) -> Dict[str, np.ndarray]:
    """A training checkpoint's optimizer entries under nn.Momentum's names.

    A checkpoint from before the switch holds nn.SGD's ``accum.X`` (the momentum buffer) and ``stat.X`` (1 until
    X's first update, when nn.SGD takes the gradient itself as the buffer). nn.Momentum does the same update with
    a zero buffer, so ``moments.X`` is ``accum.X`` where the flag is 0 and 0 where it is above 0 (nn.SGD's test):
    the run continues exactly as nn.SGD would have. A file that mixes both spellings, whose buffers and flags do
    not pair up, or whose entries are not finite floats, is refused naming the entry.
    """
    saved = {n: v for n, v in params.items() if n.startswith(OPTIMIZER_STATE_PREFIXES)}
    buffers = {n[len(SGD_BUFFER):]: v for n, v in params.items() if n.startswith(SGD_BUFFER)}
    flags = {n[len(SGD_FLAG):]: v for n, v in params.items() if n.startswith(SGD_FLAG)}
    if not buffers and not flags:
        return saved
    if any(n.startswith("moments.") for n in saved):
        raise CheckpointError(f"{path} holds both nn.Momentum's moments.* and nn.SGD's accum.*/stat.* entries; "
                              f"a checkpoint of this program has one or the other")
    unpaired = sorted(set(buffers) ^ set(flags))
    if unpaired:
        has, lacks = (SGD_BUFFER, SGD_FLAG) if unpaired[0] in buffers else (SGD_FLAG, SGD_BUFFER)
        name = shown(unpaired[0])
        raise CheckpointError(f"{path}: {has}{name} has no {lacks}{name} beside it")
    _refuse_odd_floats({SGD_FLAG + n: v for n, v in flags.items()}, path)
    for name, buffer in buffers.items():
        buffer, flag = np.asarray(buffer), np.asarray(flags[name])
        if flag.shape != buffer.shape:
            raise CheckpointError(f"{path}: {SGD_FLAG}{shown(name)} has shape {flag.shape}, its buffer "
                                  f"{buffer.shape}")
        saved["moments." + name] = np.where(flag > 0, np.zeros((), buffer.dtype), buffer)
    logger.info("%s: written with nn.SGD by an earlier version; its momentum buffers continue as nn.Momentum's", path)
    return saved


def load_train_state(params: Mapping[str, np.ndarray], path: str | os.PathLike, net: nn.Cell,
                     optimizer: nn.Optimizer, rank: int = 0) -> TrainState:
    """Restore weights (strict), optimizer state (strict) and the loop counters from the training checkpoint
    ``path``, already read into ``params`` (by :func:`open_resume`, so the file is read once)."""
    for key in LOOP_STATE_NAMES + ("global_step",):
        if key not in params:
            raise CheckpointError(f"{path} has no '{key}': it is a weights-only checkpoint and cannot resume a run "
                                  f"(use it as model.pretrained, or eval it)")
    weights = {n: v for n, v in params.items() if not is_training_state(n)}
    load_params_strict(net, weights, str(path))
    opt = optimizer_state(optimizer)
    opt_saved = saved_optimizer_state(params, path)
    missing = sorted(set(opt) - set(opt_saved))
    unexpected = sorted(set(opt_saved) - set(opt))
    if missing or unexpected:
        raise CheckpointError(f"{path}: optimizer state does not match (missing: {shown_names(missing, 5) or '-'}; "
                              f"unexpected: {shown_names(unexpected, 5) or '-'})")
    _refuse_odd_floats({n: v for n, v in opt_saved.items() if n != "global_step"}, path)
    step, updates = _counter(params, "step_num", path), _counter(params, "global_step", path)
    if updates > step:  # fewer only where a dynamic loss scale skipped overflowing steps
        raise CheckpointError(f"{path}: its global_step ({updates}) is ahead of its step_num ({step}); the file "
                              f"is not a checkpoint this program wrote")
    for name, p in opt.items():
        if tuple(opt_saved[name].shape) != tuple(p.shape):
            raise CheckpointError(f"{path}: optimizer entry {name} has shape {opt_saved[name].shape}, "
                                  f"expected {p.shape}")
        p.set_data(ms.Tensor(opt_saved[name], p.dtype))
    state = TrainState(_counter(params, "epoch_num", path), step, _one_number(params, "best_miou", path, -1, 1))
    saved_bests = np.asarray(params.get(LOCAL_BEST_NAME, np.zeros(0)))
    bests = saved_bests.astype(np.float64).reshape(-1) if saved_bests.dtype.kind == "f" else np.array([np.nan])
    if not (np.isfinite(bests).all() and (np.abs(bests) <= 1).all()):  # mIoU, or -1 before the first eval
        raise CheckpointError(f"{path}: its {LOCAL_BEST_NAME} holds {shown(saved_bests.tolist(), 60)} "
                              f"({saved_bests.dtype}), not mIoUs in [-1, 1]; the file is not a checkpoint this "
                              f"program wrote")
    if rank < bests.size:  # each device gets back its own best (older checkpoints have none)
        state.local_best, state.device_bests = float(bests[rank]), bests.tolist()
    state.class_weights = saved_class_weights(params, path)
    return state


def saved_class_weights(params: Mapping[str, np.ndarray], path: str | os.PathLike) -> Optional[List[float]]:
    """The class weights a run's checkpoint recorded (None when it ran unweighted or predates them); anything but
    one finite, non-negative float per class is refused naming the entry."""
    if CLASS_WEIGHTS_NAME not in params:
        return None
    w = np.asarray(params[CLASS_WEIGHTS_NAME])
    if w.dtype.kind != "f" or w.ndim != 1 or not 1 <= w.size <= 255 or not np.isfinite(w).all() or (w < 0).any():
        raise CheckpointError(f"{path}: its {CLASS_WEIGHTS_NAME} entry ({w.dtype}, shape {tuple(w.shape)}) is not one "
                              f"finite non-negative weight per class; the file is not a checkpoint this program wrote")
    return [float(v) for v in w]


BEST_INFO = "best.json"  # best.ckpt's mIoU, so resuming need not read a second ~390 MB file


def save_best_checkpoint(folder: OutputFolder, sub: str, net: nn.Cell, optimizer: nn.Optimizer,
                         state: TrainState, class_names: Optional[Sequence[str]] = None) -> Path:
    """``<sub>/best.ckpt`` in the run's output folder and, beside it, its mIoU in ``best.json``."""
    path = save_train_checkpoint(f"{sub}/best.ckpt", net, optimizer, state, folder=folder, class_names=class_names)
    folder.put_json(f"{sub}/{BEST_INFO}", {"best_miou": state.best_miou, "epoch": state.epoch, "step": state.step},
                      indent=None)
    return path


def read_best_miou(ckpt_dir: str | os.PathLike) -> Optional[float]:
    """The mIoU of ``best.ckpt`` in ``ckpt_dir`` (None if there is none), from ``best.json`` when present."""
    best = Path(ckpt_dir) / "best.ckpt"
    if not best.is_file():
        return None
    info = Path(ckpt_dir) / BEST_INFO
    if info.is_file():
        try:
            return float(json.loads(info.read_text())["best_miou"])
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("%s is unreadable (%s); reading best.ckpt instead", info, exc)
    saved = read_checkpoint(best, ("best_miou",)).get("best_miou")  # runs from before best.json existed
    return None if saved is None else float(saved[0])


def epoch_checkpoints(ckpt_dir: str | os.PathLike) -> List[Tuple[int, Path]]:
    """``(epoch, path)`` of ``epoch_NNNN.ckpt`` files in ``ckpt_dir``, oldest first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() for m in [CKPT_RE.match(p.name)] if m]
    return sorted(found)


def open_resume(resume: Optional[str], ckpt_dir: str | os.PathLike
                ) -> Tuple[Optional[Path], Optional[Dict[str, np.ndarray]]]:
    """Find and read the checkpoint to resume from, once: ``(path, params)`` or ``(None, None)`` to start fresh.

    ``auto`` takes the newest readable ``epoch_NNNN.ckpt`` in ``ckpt_dir``; a
    corrupt newest file is skipped with a warning in favour of the one before.
    ``none`` (or nothing) starts fresh.
    """
    if not resume or resume == "none":
        return None, None
    if resume != "auto":
        path = Path(resume)
        if not path.is_file():
            raise CheckpointError(f"--resume {resume}: file not found")
        if verify_checksum(path) is False:
            raise CheckpointError(f"--resume {resume}: the file does not match its checksum "
                                  f"({checksum_path(path).name}): it is damaged or was cut short while saving")
        return path, read_checkpoint(path)
    found = epoch_checkpoints(ckpt_dir)
    if not found:
        logger.info("--resume auto: no epoch checkpoint in %s; starting a fresh run", ckpt_dir)
        return None, None
    for _, path in reversed(found):
        if verify_checksum(path) is False:
            logger.warning("--resume auto: %s does not match its checksum (damaged, or a save cut short); falling "
                           "back to the one before", path)
            continue
        return path, read_checkpoint(path)  # a file that fails to read now is reported, not guessed corrupt
    raise CheckpointError(f"--resume auto: none of the {len(found)} epoch checkpoints in {ckpt_dir} matches its "
                          f"checksum; remove them to start fresh, or pass --resume PATH")


def rotate_checkpoints(folder: OutputFolder, sub: str, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` epoch checkpoints this run's folder owns (0 keeps every one)."""
    found = [(e, p) for e, p in epoch_checkpoints(folder.path(sub)) if folder.unchanged(f"{sub}/{p.name}")]
    for _, path in found[:-keep_last] if keep_last > 0 else []:
        folder.remove(f"{sub}/{path.name}")
        folder.remove(f"{sub}/{path.name}{CHECKSUM_SUFFIX}")


# The policy of one run's checkpoint folder: which file to resume from, where every rank continues, when to
# save, what to keep.  The training loop asks; only this module knows entry names and file names.

@dataclass
class ResumePoint:
    """What ``--resume`` found: the file and its entries (None for a fresh start), and the epoch it continues at."""

    path: Optional[Path] = None
    params: Optional[Dict[str, np.ndarray]] = None
    epoch: int = 0
    step: int = -1


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


def check_schedule(params: Mapping[str, np.ndarray], path: Path, current: Mapping[str, float], allow: bool) -> None:
    """Refuse to resume under another schedule (the poly lr would not continue) unless ``allow``."""
    saved = {n[len(SCHEDULE_PREFIX):]: _one_number(params, n, path) for n in params if n.startswith(SCHEDULE_PREFIX)}
    changes = schedule_changes(saved, current)
    if changes and not allow:
        raise TrainingError(f"refusing to resume {path} with a different schedule ({'; '.join(changes)}): the "
                            f"poly lr would not continue as it started. Restore those values, or pass "
                            f"--allow-schedule-change to resume anyway")
    if changes:
        logger.warning("resuming with a changed schedule (allowed): %s", "; ".join(changes))


class RunCheckpoints:
    """The ``checkpoints/`` folder of one run: resume, save per epoch, keep the newest, best.ckpt."""

    SUB = "checkpoints"

    def __init__(self, save_dir: str | os.PathLike, train_cfg: TrainConfig, folder: Optional[OutputFolder],
                 class_names: Optional[Sequence[str]] = None) -> None:
        """``folder``: the run's output folder (rank 0 writes); None on the other ranks, which only read.
        ``class_names``: recorded in every checkpoint saved (None: the classes have no names worth matching)."""
        self.dir, self.cfg, self.folder = Path(save_dir) / self.SUB, train_cfg, folder
        self.class_names = list(class_names) if class_names else None
        self.is_main = folder is not None

    def open(self, resume: Optional[str], rank: int, group_size: int) -> ResumePoint:
        """Read the checkpoint ``resume`` names (once) and check every rank continues at the same step."""
        path, params = open_resume(resume, self.dir)
        epoch, step = resume_position(params, path)
        check_same_resume(step, path, rank, group_size)
        return ResumePoint(path, params, epoch, step)

    def restore(self, point: ResumePoint, net: nn.Cell, optimizer: nn.Optimizer, rank: int,
                schedule: Mapping[str, float], allow_schedule_change: bool) -> TrainState:
        """The run's state after loading ``point`` into ``net`` and ``optimizer`` (a fresh state without one).

        The best mIoU is the larger of the checkpoint's and ``best.json``'s:
        an epoch checkpoint is written before that epoch's evaluation.
        """
        if point.path is None:
            return TrainState()
        state = load_train_state(point.params, point.path, net, optimizer, rank)
        check_schedule(point.params, point.path, schedule, allow_schedule_change)
        point.params = None  # the weights are in the network now; free the host copy
        saved_best = read_best_miou(self.dir)
        if saved_best is not None:
            state.best_miou = max(state.best_miou, saved_best)
        logger.info("resumed from %s: epoch %d, step %d, best mIoU %.4f", point.path, state.epoch, state.step,
                    state.best_miou)
        return state

    def save_epoch(self, net: nn.Cell, optimizer: nn.Optimizer, state: TrainState, schedule: Mapping[str, float],
                   total_steps: int) -> Optional[Path]:
        """``epoch_NNNN.ckpt`` when due (main rank; every ``save_every`` epochs and at the end), then rotation."""
        t = self.cfg
        due = state.epoch % t.save_every == 0 or state.epoch == t.epochs or state.step >= total_steps
        if not self.is_main or not due:
            return None
        path = save_train_checkpoint(f"{self.SUB}/epoch_{state.epoch:04d}.ckpt", net, optimizer, state, schedule,
                                     self.folder, self.class_names)
        rotate_checkpoints(self.folder, self.SUB, t.keep_last)
        logger.info("saved %s", path)
        return path

    def save_best(self, net: nn.Cell, optimizer: nn.Optimizer, state: TrainState) -> Optional[Path]:
        """``best.ckpt`` (main rank)."""
        return save_best_checkpoint(self.folder, self.SUB, net, optimizer, state, self.class_names) \
            if self.is_main else None

    def last_saved(self) -> Optional[Path]:
        """The newest epoch checkpoint, or None."""
        found = epoch_checkpoints(self.dir)
        return found[-1][1] if found else None

    def last_good(self) -> str:
        """The newest epoch checkpoint, for messages ("none" before the first)."""
        found = epoch_checkpoints(self.dir)
        return str(found[-1][1]) if found else "none"
