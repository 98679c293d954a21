"""Data-parallel helpers on MindSpore's own collectives (HCCL on Ascend, NCCL on GPU, TCP on CPU)."""
from __future__ import annotations

import logging
import os
from typing import Dict, Mapping, MutableMapping, Optional, Sequence, Tuple, TypeVar

import numpy as np

from src.errors import PSPNetError

T = TypeVar("T")

logger = logging.getLogger(__name__)


class LaunchEnvError(PSPNetError, RuntimeError):
    """Launcher variables in the environment that no launcher set consistently (leftovers)."""


def _count(env: Mapping[str, str], var: str) -> int:
    raw = env.get(var, "") or "1"
    if not (raw.isascii() and raw.isdigit()):
        raise LaunchEnvError(f"{var}={raw!r} in the environment is not a whole number; unset it (export -n {var}) "
                             f"unless a launcher set it")
    return int(raw)


def launched_distributed(env: Optional[Mapping[str, str]] = None) -> bool:
    """True when started by msrun (MS_WORKER_NUM > 1) or a rank-table launcher (RANK_SIZE > 1 with
    RANK_TABLE_FILE). A RANK_SIZE > 1 that no launcher set (a leftover export) is one :class:`LaunchEnvError`."""
    env = os.environ if env is None else env
    if _count(env, "MS_WORKER_NUM") > 1:
        return True
    if _count(env, "RANK_SIZE") > 1:
        if not env.get("RANK_TABLE_FILE") and not env.get("MINDSPORE_HCCL_CONFIG_PATH"):
            raise LaunchEnvError(f"RANK_SIZE={env['RANK_SIZE']} is set but no launcher started this process (no "
                                 f"RANK_TABLE_FILE, not under msrun): unset RANK_SIZE for a single-process run, or "
                                 f"start data-parallel runs with scripts/run_distribute_train.sh")
        return True
    return False


def die_with_parent() -> bool:
    """Ask Linux to send this process SIGTERM when its parent (msrun, a launcher) exits (PR_SET_PDEATHSIG);
    True if set. msrun starts each worker in a session of its own, so a signal to msrun's group misses it."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


# MindSpore's CPU collectives give up after about 30 s (measured: a rank that waited 45 s in AllReduce failed
# with "Launch kernel failed, name:Default/AllReduce"); rank 0 alone saves checkpoints and plots, so the
# others routinely wait longer than that.  MS_CPU_COMM_OP_TIMEOUT (seconds) raises the limit.
COLLECTIVE_ENV_DEFAULTS = {"MS_CPU_COMM_OP_TIMEOUT": "1800"}


def default_collective_env(env: MutableMapping[str, str]) -> Dict[str, str]:
    """Set the collective time-outs the user has not set in ``env``; returns what was set."""
    added = {k: v for k, v in COLLECTIVE_ENV_DEFAULTS.items() if not env.get(k)}
    env.update(added)
    return added


def init_distributed() -> Tuple[int, int]:
    """``init()`` the collectives and set DATA_PARALLEL with mean gradients; returns (rank, group size)."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    added = default_collective_env(os.environ)  # read when the collectives start, so before init()
    init()
    rank, size = get_rank(), get_group_size()
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size)
    logger.info("data parallel: rank %d of %d%s", rank, size,
                "".join(f"; {k}={v} (default)" for k, v in added.items()))
    return rank, size


DIGIT_BITS = 12
DIGITS = 6  # 72 bits: any non-negative int64 count


def split_digits(array: np.ndarray) -> np.ndarray:
    """Non-negative integers -> (DIGITS, ...) base-4096 digits, least significant first."""
    a = np.asarray(array).astype(np.int64)
    return np.stack([(a >> (DIGIT_BITS * k)) & ((1 << DIGIT_BITS) - 1) for k in range(DIGITS)])


def join_digits(digits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`split_digits`; digits may exceed 4095 (sums of digits) and carry correctly."""
    return sum(digits[k].astype(np.int64) << (DIGIT_BITS * k) for k in range(DIGITS))


def allreduce_sum(array: np.ndarray, group_size: int) -> np.ndarray:
    """Sum a numpy array over all ranks (identity when not distributed).

    MindSpore's CPU AllReduce takes float32/float16 only, and float32 is not
    exact above 2**24.  Non-negative integer arrays (confusion matrices) are
    therefore sent as base-4096 digits, each digit summed exactly in float32,
    and put back together as int64.  Float arrays are summed in float32.
    """
    if group_size <= 1:
        return array
    import mindspore as ms
    from mindspore import ops

    if array.dtype.kind in "iu":
        if array.size and array.min() < 0:
            raise ValueError("allreduce_sum: integer arrays must be non-negative")
        summed = ops.AllReduce()(ms.Tensor(split_digits(array).astype(np.float32))).asnumpy()
        return join_digits(summed.astype(np.int64)).astype(array.dtype)
    return ops.AllReduce()(ms.Tensor(array.astype(np.float32))).asnumpy().astype(array.dtype)


def shard(items: Sequence[T], rank: int, group_size: int) -> Sequence[T]:
    """This rank's part of an evaluation set: every ``group_size``-th item from ``rank``, no repeats.

    The one rule by which eval.py, the training loop's fast and full evaluations split a val list; the
    confusion matrices summed over ranks then count every image exactly once.
    """
    return items[rank::group_size]
