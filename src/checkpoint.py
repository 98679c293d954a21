"""Strict checkpoint loading and atomic saving, used by every entry point."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn

from src.errors import PSPNetError
from src.paths import ensure_output_file, free_bytes

logger = logging.getLogger(__name__)


class CheckpointError(PSPNetError, RuntimeError):
    """A checkpoint that does not match the network, or cannot be read."""


def read_checkpoint(path: str | os.PathLike, names: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """Read a MindSpore ``.ckpt`` into ``name -> numpy array`` with a clear error if it is unreadable.

    With ``names``, only entries whose name starts with one of them are kept.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        if names:
            params = ms.load_checkpoint(str(path), choice_func=lambda n: n.startswith(tuple(names)))
        else:
            params = ms.load_checkpoint(str(path))
    except Exception as exc:  # MindSpore raises ValueError/RuntimeError with long C++ text
        raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt, truncated or not a "
                              f"MindSpore checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc
    return {name: p.asnumpy() for name, p in params.items()}


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


def load_params_strict(net: nn.Cell, params: Mapping[str, np.ndarray], source: str = "<memory>",
                       allow_missing: Sequence[str] = (), allow_unexpected: Sequence[str] = ()) -> List[str]:
    """Load ``params`` into ``net``; every network parameter must be present with its exact shape.

    Raises :class:`CheckpointError` listing every missing, unexpected and
    mis-shaped name.  Returns the names that were loaded.  Names skipped by an
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
    loaded = []
    for name, p in net_params.items():
        if name in params:
            p.set_data(ms.Tensor(np.asarray(params[name]), p.dtype))
            loaded.append(name)
    logger.info("%s: loaded %d parameters", source, len(loaded))
    return loaded


def load_checkpoint_strict(net: nn.Cell, path: str | os.PathLike, allow_missing: Sequence[str] = (),
                           allow_unexpected: Sequence[str] = ()) -> List[str]:
    """Read ``path`` and load it strictly into ``net`` (see :func:`load_params_strict`).

    Training-state entries stored beside the weights (optimizer moments,
    ``global_step``, ``epoch``...) are recognised by :func:`is_training_state`
    and not treated as unexpected weights.
    """
    params = read_checkpoint(path)
    weights = {n: v for n, v in params.items() if not is_training_state(n)}
    return load_params_strict(net, weights, str(path), allow_missing, allow_unexpected)


OPTIMIZER_STATE_PREFIXES = ("global_step", "accum.", "stat.")
LOOP_STATE_NAMES = ("epoch_num", "step_num", "best_miou")
SCHEDULE_PREFIX = "schedule."
LOCAL_BEST_NAME = "local_best_miou"  # this device's best mIoU on its own shard (absent from older checkpoints)
TRAINING_STATE_PREFIXES = OPTIMIZER_STATE_PREFIXES + LOOP_STATE_NAMES + (SCHEDULE_PREFIX, LOCAL_BEST_NAME,
    "moments.", "learning_rate", "momentum", "scale_sense", "current_iterator_step", "last_overflow_iterator_step")


def is_training_state(name: str) -> bool:
    """True for checkpoint entries that are optimizer/loop state, not network weights."""
    return name.startswith(TRAINING_STATE_PREFIXES)


def save_checkpoint_atomic(entries: List[Dict], path: str | os.PathLike) -> Path:
    """Save ``[{'name', 'data'}]`` to ``path`` via a temporary file and a rename.

    A crash while saving leaves either the old file or the new one, never a
    partial checkpoint under ``path``.
    """
    path = Path(path)
    ensure_output_file(path, "checkpoint")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TMP_SUFFIX, dir=str(path.parent))
    os.close(fd)
    try:
        ms.save_checkpoint(entries, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        need = sum(int(getattr(e["data"], "nbytes", 0)) for e in entries)
        raise CheckpointError(
            f"cannot save checkpoint {path}: {exc}; it needs about {need / 2**20:.1f} MiB and "
            f"{free_bytes(path.parent) / 2**20:.1f} MiB are free there. Nothing was replaced: an earlier file "
            f"of that name is intact") from None
    finally:
        for partial in (tmp, os.path.splitext(tmp)[0] + ".tmp"):  # ours, and MindSpore's own temporary file
            if os.path.exists(partial):
                os.remove(partial)
    return path


TMP_SUFFIX = ".tmp.ckpt"


def remove_partial_checkpoints(folder: str | os.PathLike) -> List[Path]:
    """Delete temporary files that an interrupted :func:`save_checkpoint_atomic` left in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if p.is_file() and ".ckpt." in p.name
               and (p.name.endswith(TMP_SUFFIX) or p.name.endswith(".tmp.tmp"))]
    for p in removed:
        p.unlink()
        logger.warning("removed a partial checkpoint file left by an interrupted save: %s", p)
    return removed


def arrays_to_entries(params: Mapping[str, np.ndarray]) -> List[Dict]:
    """``name -> array`` into the list form ``ms.save_checkpoint`` accepts."""
    return [{"name": n, "data": ms.Tensor(np.asarray(v))} for n, v in params.items()]
