"""Checkpoints: strict loading, atomic saving, and the training checkpoints' names, rotation and resume.

Weights-only files (pretrained, converted, exported-from) go through
:func:`load_checkpoint_strict`; a training checkpoint adds the optimizer
state, the loop counters and the schedule it ran under, and is read once on
resume (:func:`open_resume` then :func:`load_train_state`).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

from src.errors import PSPNetError, TrainingError
from src.config import TrainConfig
from src.distributed import allreduce_sum
from src.outputs import (OutputFolder, OutputPathError, ensure_output_file, file_sha256, free_bytes, is_partial_name,
                         remove_temporary, save_checkpoint_file, write_text)

logger = logging.getLogger(__name__)

# Entries of a training checkpoint that are not network weights.
OPTIMIZER_STATE_PREFIXES = ("global_step", "accum.", "stat.")
LOOP_STATE_NAMES = ("epoch_num", "step_num", "best_miou")
SCHEDULE_PREFIX = "schedule."
LOCAL_BEST_NAME = "local_best_miou"  # this device's best mIoU on its own shard (absent from older checkpoints)
TRAINING_STATE_PREFIXES = OPTIMIZER_STATE_PREFIXES + LOOP_STATE_NAMES + (SCHEDULE_PREFIX, LOCAL_BEST_NAME,
    "moments.", "learning_rate", "momentum", "scale_sense", "current_iterator_step", "last_overflow_iterator_step")
TMP_SUFFIX = ".tmp.ckpt"  # an atomic save writes <name>.<random>.tmp.ckpt, then renames it
CKPT_RE = re.compile(r"^epoch_(\d+)\.ckpt$")  # the epoch checkpoints that rotation and --resume auto see


class CheckpointError(PSPNetError, RuntimeError):
    """A checkpoint that does not match the network, or cannot be read."""


class NonFiniteWeights(CheckpointError):
    """A checkpoint whose weights hold NaN or infinite values."""


# MindSpore's tensor_type names -> numpy dtypes (the types a network's parameters and our counters use)
CKPT_DTYPES = {"Float32": np.float32, "Float16": np.float16, "Float64": np.float64, "Int8": np.int8,
               "Int16": np.int16, "Int32": np.int32, "Int64": np.int64, "UInt8": np.uint8, "Bool": np.bool_}
MAX_CKPT_BYTES = 8 << 30


def read_checkpoint(path: str | os.PathLike, names: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """Read a MindSpore ``.ckpt`` into ``name -> numpy array``, every entry checked before use.

    The file's protobuf is read here, not by ``ms.load_checkpoint``, so that what it declares is checked:
    dimensions non-negative, the content exactly dims x the dtype's size (MindSpore fills a short one with
    zeros), each name once (MindSpore keeps the last copy), a dtype this program knows. A slice of one large
    tensor follows its first part under the same name, as MindSpore writes it. With ``names``, only entries
    whose name starts with one of them are kept.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size > MAX_CKPT_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes is more than a PSPNet checkpoint holds")
    try:
        values = _checkpoint_values(path)
    except CheckpointError:
        raise
    except Exception as exc:  # protobuf's DecodeError, an interrupted read, MindSpore's own errors
        raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt, truncated or not a "
                              f"MindSpore checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    out: Dict[str, np.ndarray] = {}
    for name, dims, dtype, parts in values:
        if names and not name.startswith(tuple(names)):
            continue
        out[name] = _entry_array(path, name, dims, dtype, parts)
    return out


def _checkpoint_values(path: Path) -> List[Tuple[str, List[int], str, List[bytes]]]:
    """``(name, dims, tensor_type, content parts)`` per entry, consecutive slices joined, names checked once."""
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    values: List[Tuple[str, List[int], str, List[bytes]]] = []
    seen = set()
    for value in proto.value:
        if not value.HasField("tensor"):
            raise CheckpointError(f"{path}: entry {value.tag[:100]!r} is not a plain tensor (a map parameter?); "
                                  f"this program reads only tensors")
        t = value.tensor
        if values and values[-1][0] == value.tag and list(t.dims) == values[-1][1] and t.tensor_type == values[-1][2]:
            values[-1][3].append(t.tensor_content)  # the next slice of a large tensor
            continue
        if value.tag in seen:
            raise CheckpointError(f"{path}: the parameter {value.tag[:100]!r} appears twice; MindSpore would keep "
                                  f"the last copy without a word - the file was not written by a save")
        seen.add(value.tag)
        values.append((value.tag, list(t.dims), t.tensor_type, [t.tensor_content]))
    return values


def _entry_array(path: Path, name: str, dims: List[int], dtype: str, parts: List[bytes]) -> np.ndarray:
    """One entry as an array, after its declared sizes are checked against its content."""
    if dtype not in CKPT_DTYPES:
        raise CheckpointError(f"{path}: {name}: unsupported dtype {dtype[:40]!r} (this program reads "
                              f"{', '.join(CKPT_DTYPES)})")
    if any(d < 0 for d in dims) or len(dims) > 8:
        raise CheckpointError(f"{path}: {name} declares dimensions {dims[:9]}: not a tensor's shape")
    shape = () if dims == [0] else tuple(dims)  # MindSpore writes a scalar as dims [0]
    np_dtype = np.dtype(CKPT_DTYPES[dtype])
    need = int(np.prod(shape, dtype=object)) * np_dtype.itemsize
    have = sum(len(p) for p in parts)
    if have != need:
        raise CheckpointError(f"{path}: {name} declares {dtype} {list(shape)} ({need} bytes) but holds {have} "
                              f"bytes; the file is damaged or was not written by a save")
    return np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), np_dtype).reshape(shape)


def match_parameters(net_shapes: Mapping[str, Tuple[int, ...]], ckpt: Mapping[str, np.ndarray],
                     allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = ()
                     ) -> Tuple[List[str], List[str], List[str]]:
    """Compare names and shapes; return (missing, unexpected, mismatched) after the allowances.

    ``allow_missing``/``allow_unexpected`` are name prefixes (e.g. ``aux.``)
    that may be absent from / extra in the checkpoint.
    """
    def allowed(name: str, prefixes: Iterable[str]) -> bool:
        return any(name.startswith(p) for p in prefixes)

    missing = [n for n in net_shapes if n not in ckpt and not allowed(n, allow_missing)]
    unexpected = [n for n in ckpt if n not in net_shapes and not allowed(n, allow_unexpected)]
    mismatched = [f"{n}: checkpoint {tuple(ckpt[n].shape)} vs network {tuple(net_shapes[n])}"
                  for n in net_shapes if n in ckpt and tuple(ckpt[n].shape) != tuple(net_shapes[n])]
    return missing, unexpected, mismatched


def _format_problems(source: str, missing: List[str], unexpected: List[str], mismatched: List[str]) -> str:
    lines = [f"checkpoint {source} does not match the network:"]
    for title, items in (("missing from the checkpoint", missing), ("unexpected in the checkpoint", unexpected),
                         ("shape mismatch", mismatched)):
        if items:
            shown = items[:20]
            lines.append(f"  {title} ({len(items)}): " + ", ".join(shown) + (" ..." if len(items) > 20 else ""))
    return "\n".join(lines)


def non_finite_names(params: Mapping[str, np.ndarray]) -> List[str]:
    """Names of the floating-point arrays in ``params`` that hold NaN or infinite values."""
    return [n for n, v in params.items()
            if np.asarray(v).dtype.kind == "f" and not np.isfinite(np.asarray(v)).all()]


def _short(items: List[str], n: int = 10) -> str:
    return ", ".join(items[:n]) + (f" ... ({len(items) - n} more)" if len(items) > n else "")


def load_params_strict(net: nn.Cell, params: Mapping[str, np.ndarray], source: str = "<memory>",
                       allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = (),
                       allow_non_finite: bool = False) -> List[str]:
    """Load ``params`` into ``net``; every network parameter must be present with its exact shape.

    Raises :class:`CheckpointError` listing every missing, unexpected and
    mis-shaped name, and every parameter holding NaN/inf (unless
    ``allow_non_finite``).  Returns the names that were loaded.  Names skipped by an
    allowance are logged, never dropped silently.
    """
    net_params = {p.name: p for p in net.get_parameters()}
    shapes = {n: tuple(p.shape) for n, p in net_params.items()}
    missing, unexpected, mismatched = match_parameters(shapes, params, allow_missing, allow_unexpected)
    if missing or unexpected or mismatched:
        raise CheckpointError(_format_problems(source, missing, unexpected, mismatched))
    skipped_extra = sorted(n for n in params if n not in net_params)
    skipped_missing = sorted(n for n in net_params if n not in params)
    if skipped_extra:
        logger.info("%s: %d checkpoint entries not used by this network (allowed): %s", source,
                    len(skipped_extra), ", ".join(skipped_extra[:10]) + (" ..." if len(skipped_extra) > 10 else ""))
    if skipped_missing:
        logger.warning("%s: %d network parameters keep their initial values (allowed): %s", source,
                       len(skipped_missing), ", ".join(skipped_missing[:10]) + (" ..." if len(skipped_missing) > 10 else ""))
    _check_dtypes(net_params, params, source)
    bad = non_finite_names({n: params[n] for n in net_params if n in params})
    if bad and not allow_non_finite:
        raise NonFiniteWeights(f"{source}: {len(bad)} parameters hold NaN or infinite values: {_short(bad)}; a network "
                              f"with them predicts nonsense. Set model.allow_non_finite true to load it anyway")
    if bad:
        logger.warning("%s: loading %d parameters with NaN or infinite values (allowed): %s", source, len(bad),
                       _short(bad))
    loaded = []
    for name, p in net_params.items():
        if name in params:
            p.set_data(ms.Tensor(np.asarray(params[name]), p.dtype))
            loaded.append(name)
    logger.info("%s: loaded %d parameters", source, len(loaded))
    return loaded


def _check_dtypes(net_params: Mapping[str, ms.Parameter], params: Mapping[str, np.ndarray], source: str) -> None:
    """Integers or booleans for float parameters are refused; other conversions (float64 -> float32) are said."""
    converted: Dict[str, int] = {}
    for name, p in net_params.items():
        if name not in params:
            continue
        have, want = np.asarray(params[name]).dtype, ms.dtype_to_nptype(p.dtype)
        if have == want:
            continue
        if np.dtype(want).kind == "f" and have.kind != "f":
            raise CheckpointError(f"{source}: {name} is {have} in the checkpoint, the network's is "
                                  f"{np.dtype(want)}: these are not weights this network was saved with")
        key = f"{have} -> {np.dtype(want)}"
        converted[key] = converted.get(key, 0) + 1
    if converted:
        logger.info("%s: converted %s", source, ", ".join(f"{n} tensors {k}" for k, n in converted.items()))


def load_checkpoint_strict(net: nn.Cell, path: str | os.PathLike, allow_missing: Sequence[str] = (),
                           allow_unexpected: Sequence[str] = (), allow_non_finite: bool = False) -> List[str]:
    """Read ``path`` and load it strictly into ``net`` (see :func:`load_params_strict`).

    Training-state entries stored beside the weights (optimizer moments,
    ``global_step``, ``epoch``...) are recognised by :func:`is_training_state`
    and not treated as unexpected weights.
    """
    params = read_checkpoint(path)
    weights = {n: v for n, v in params.items() if not is_training_state(n)}
    return load_params_strict(net, weights, str(path), allow_missing, allow_unexpected, allow_non_finite)


def is_training_state(name: str) -> bool:
    """True for checkpoint entries that are optimizer/loop state, not network weights."""
    return name.startswith(TRAINING_STATE_PREFIXES)


def save_checkpoint_atomic(entries: List[Dict], path: str | os.PathLike, folder: Optional[OutputFolder] = None) -> Path:
    """Save ``[{'name', 'data'}]`` to ``path`` via a temporary file and a rename (the output owner's).

    A crash while saving leaves either the old file or the new one, never a
    partial checkpoint under ``path``.  The file's SHA-256 is then written to
    ``<name>.sha256`` (:func:`verify_checksum` reads it at resume).  With
    ``folder``, ``path`` is a name inside that output folder and both files
    are recorded as its outputs.
    """
    full = folder.path(str(path)) if folder is not None else Path(path)
    if folder is None:
        ensure_output_file(full, "checkpoint")
    else:
        folder.claim(str(path))
        folder.claim(str(path) + CHECKSUM_SUFFIX, check_only=True)
    try:
        if folder is not None:
            folder.put_checkpoint(str(path), entries)
            digest = folder.entries[str(path)]["sha256"]
        else:
            digest = save_checkpoint_file(entries, full)
    except OSError as exc:
        need = sum(int(getattr(e["data"], "nbytes", 0)) for e in entries)
        reason = str(exc).split(": nothing was replaced")[0] if isinstance(exc, OutputPathError) else exc
        raise CheckpointError(
            f"cannot save checkpoint {full}: {reason}; it needs about {need / 2**20:.1f} MiB and "
            f"{free_bytes(full.parent) / 2**20:.1f} MiB are free there. Nothing was replaced: an earlier file "
            f"of that name is intact") from None
    try:
        text = f"{digest}  {full.name}\n"
        if folder is not None:
            folder.put_text(str(path) + CHECKSUM_SUFFIX, text)
        else:
            write_text(checksum_path(full), text)
    except OSError as exc:  # the checkpoint itself is complete and in place
        logger.warning("%s is saved, but its checksum file could not be written (%s); it will be read without "
                       "verification", full, exc.strerror or exc)
    return full


CHECKSUM_SUFFIX = ".sha256"


def checksum_path(path: str | os.PathLike) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is kept: ``<name>.sha256`` beside it."""
    return Path(str(path) + CHECKSUM_SUFFIX)


def verify_checksum(path: str | os.PathLike) -> Optional[bool]:
    """True/False: ``path`` matches / does not match the checksum saved beside it; None: there is none.

    This, not an exception from the reader, decides whether a checkpoint is
    damaged: a reader can fail for other reasons (an interrupt, memory).
    """
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(encoding="utf-8", errors="replace")[:200].split()
    return bool(text) and text[0] == file_sha256(path)


def _partial_checkpoint_name(name: str) -> bool:
    return is_partial_name(name) or (".ckpt." in name and (name.endswith(TMP_SUFFIX) or name.endswith(".tmp.tmp")
                                     or (CHECKSUM_SUFFIX + "." in name and name.endswith(".tmp"))))


def remove_partial_checkpoints(folder: str | os.PathLike) -> List[Path]:
    """Delete temporary files that an interrupted :func:`save_checkpoint_atomic` left in ``folder``."""
    return remove_temporary(folder, _partial_checkpoint_name)


def arrays_to_entries(params: Mapping[str, np.ndarray]) -> List[Dict]:
    """``name -> array`` into the list form ``ms.save_checkpoint`` accepts."""
    return [{"name": n, "data": ms.Tensor(np.asarray(v))} for n, v in params.items()]


# Training checkpoints: weights + optimizer state + loop counters + schedule.

@dataclass
class TrainState:
    """Where a run is: completed epochs, global step, best global mIoU so far."""

    epoch: int = 0
    step: int = 0
    best_miou: float = -1.0
    local_best: float = -1.0  # this device's best on its own shard
    device_bests: List[float] = field(default_factory=list)  # every device's local_best, gathered at eval


def optimizer_state(optimizer: nn.Optimizer) -> Dict[str, ms.Parameter]:
    """The optimizer entries saved with a checkpoint: global_step and the momentum buffers."""
    return {p.name: p for p in optimizer.get_parameters() if p.name.startswith(OPTIMIZER_STATE_PREFIXES)}


def schedule_of(train_cfg: TrainConfig, group_size: int, total_steps: int) -> Dict[str, float]:
    """The values a resumed run must share with the run it continues (else its lr schedule is not the same)."""
    t = train_cfg
    return {"batch_size": t.batch_size, "epochs": t.epochs, "base_lr": t.base_lr, "power": t.power,
            "crop_h": t.crop_h, "crop_w": t.crop_w, "devices": group_size, "total_steps": total_steps,
            "warmup_steps": t.warmup_steps}


def schedule_changes(saved: Mapping[str, float], current: Mapping[str, float]) -> List[str]:
    """``key: checkpoint X, now Y`` for every schedule value that differs."""
    return [f"{k}: checkpoint {saved[k]:g}, now {current[k]:g}" for k in current
            if k in saved and not math.isclose(saved[k], current[k], rel_tol=1e-9)]


def save_train_checkpoint(path: str | os.PathLike, net: nn.Cell, optimizer: nn.Optimizer, state: TrainState,
                          schedule: Optional[Mapping[str, float]] = None, folder: Optional[OutputFolder] = None) -> Path:
    """Weights + optimizer state + epoch/step/best mIoU (+ the schedule it ran under), written atomically."""
    entries = [{"name": p.name, "data": p.data} for p in net.get_parameters()]
    entries += [{"name": SCHEDULE_PREFIX + k, "data": ms.Tensor(np.array([v], np.float64))}
                for k, v in (schedule or {}).items()]
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
    number = float(value[0]) if value.size == 1 else math.nan
    if not math.isfinite(number) or number < 0 or number != int(number) or number > 2**53:
        raise CheckpointError(f"{path}: its {name} is {value.tolist()[:4]}, not a count of 0 or more; the file is "
                              f"not a checkpoint this program wrote")
    return int(number)


def resume_position(params: Optional[Mapping[str, np.ndarray]], path: Optional[Path]) -> Tuple[int, int]:
    """(epoch, step) that a training checkpoint's counters give, checked; (0, -1) when there is nothing to
    resume (no checkpoint, or one without counters, which :func:`load_train_state` then refuses)."""
    if params is None or "epoch_num" not in params or "step_num" not in params:
        return 0, -1
    return _counter(params, "epoch_num", path), _counter(params, "step_num", path)


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
    opt_saved = {n: v for n, v in params.items() if n.startswith(OPTIMIZER_STATE_PREFIXES)}
    missing = sorted(set(opt) - set(opt_saved))
    unexpected = sorted(set(opt_saved) - set(opt))
    if missing or unexpected:
        raise CheckpointError(f"{path}: optimizer state does not match (missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]})")
    for name, p in opt.items():
        if tuple(opt_saved[name].shape) != tuple(p.shape):
            raise CheckpointError(f"{path}: optimizer entry {name} has shape {opt_saved[name].shape}, "
                                  f"expected {p.shape}")
        p.set_data(ms.Tensor(opt_saved[name], p.dtype))
    state = TrainState(_counter(params, "epoch_num", path), _counter(params, "step_num", path),
                       float(params["best_miou"][0]))
    if not math.isfinite(state.best_miou):
        raise CheckpointError(f"{path}: its best_miou is {state.best_miou}; the file is not a checkpoint this "
                              f"program wrote")
    bests = np.asarray(params.get(LOCAL_BEST_NAME, np.zeros(0)), np.float64).reshape(-1)
    if rank < bests.size:  # each device gets back its own best (older checkpoints have none)
        state.local_best, state.device_bests = float(bests[rank]), bests.tolist()
    return state


BEST_INFO = "best.json"  # best.ckpt's mIoU, so resuming need not read a second ~590 MB file


def save_best_checkpoint(folder: OutputFolder, sub: str, net: nn.Cell, optimizer: nn.Optimizer,
                         state: TrainState) -> Path:
    """``<sub>/best.ckpt`` in the run's output folder and, beside it, its mIoU in ``best.json``."""
    path = save_train_checkpoint(f"{sub}/best.ckpt", net, optimizer, state, folder=folder)
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
    saved = {n[len(SCHEDULE_PREFIX):]: float(np.asarray(v).reshape(-1)[0]) for n, v in params.items()
             if n.startswith(SCHEDULE_PREFIX)}
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

    def __init__(self, save_dir: str | os.PathLike, train_cfg: TrainConfig, folder: Optional[OutputFolder]) -> None:
        """``folder``: the run's output folder (rank 0 writes); None on the other ranks, which only read."""
        self.dir, self.cfg, self.folder = Path(save_dir) / self.SUB, train_cfg, folder
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
                                     self.folder)
        rotate_checkpoints(self.folder, self.SUB, t.keep_last)
        logger.info("saved %s", path)
        return path

    def save_best(self, net: nn.Cell, optimizer: nn.Optimizer, state: TrainState) -> Optional[Path]:
        """``best.ckpt`` (main rank)."""
        return save_best_checkpoint(self.folder, self.SUB, net, optimizer, state) if self.is_main else None

    def last_saved(self) -> Optional[Path]:
        """The newest epoch checkpoint, or None."""
        found = epoch_checkpoints(self.dir)
        return found[-1][1] if found else None

    def last_good(self) -> str:
        """The newest epoch checkpoint, for messages ("none" before the first)."""
        found = epoch_checkpoints(self.dir)
        return str(found[-1][1]) if found else "none"
