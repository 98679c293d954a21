"""Data-parallel helpers on MindSpore's own collectives (HCCL on Ascend, NCCL on GPU, TCP on CPU)."""
from __future__ import annotations

import logging
import os
from typing import Tuple

import numpy as np

logger = logging.getLogger(__name__)


def launched_distributed() -> bool:
    """True when started by msrun or a rank-table launcher (RANK_SIZE / MS_WORKER_NUM > 1)."""
    for var in ("MS_WORKER_NUM", "RANK_SIZE"):
        if int(os.environ.get(var, "1") or 1) > 1:
            return True
    return False


def init_distributed() -> Tuple[int, int]:
    """``init()`` the collectives and set DATA_PARALLEL with mean gradients; returns (rank, group size)."""
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    init()
    rank, size = get_rank(), get_group_size()
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True, device_num=size)
    logger.info("data parallel: rank %d of %d", rank, size)
    return rank, size


def allreduce_sum(array: np.ndarray, group_size: int) -> np.ndarray:
    """Sum a numpy array over all ranks (identity when not distributed)."""
    if group_size <= 1:
        return array
    import mindspore as ms
    from mindspore import ops

    dtype = array.dtype
    summed = ops.AllReduce()(ms.Tensor(array.astype(np.float64 if dtype.kind == "f" else np.int64))).asnumpy()
    return summed.astype(dtype)
