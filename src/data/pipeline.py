"""MindSpore data pipelines: an epoch-aware sharded sampler and GeneratorDataset construction."""
from __future__ import annotations

import logging
import os
from typing import List, Optional

import numpy as np

from src.config import ConfigError, DataConfig, TrainConfig
from src.data.dataset import DataError, SegDataset, read_list
from src.data.labels import spec_of
from src.data.transforms import CenterCropTransform, train_transform_from_config
from src.system.distributed import shard
from src.outputs.atomic import clear_log

logger = logging.getLogger(__name__)


class EpochShardSampler:
    """Which samples one rank reads in each epoch: a fresh shuffle per epoch, sharded by rank.

    The permutation of epoch ``e`` comes from ``(seed, e)``; it is padded by
    wrapping to a multiple of ``num_shards`` and rank ``r`` takes positions
    ``r, r + num_shards, ...`` (as ``DistributedSampler``), so across ranks
    every sample is used once per epoch (plus at most ``num_shards - 1``
    repeats).  ``len()`` is the number of indices per rank per epoch.
    (Evaluation splits with :func:`src.system.distributed.shard` instead: no repeats.)

    The object is stateless: :meth:`codes` lists a whole run up front, each
    index tagged with its epoch as ``epoch * n + i`` so the dataset can seed
    that sample's augmentation.  (MindSpore iterates a Python sampler while
    building the pipeline and keeps a copy, so per-epoch state inside a
    sampler would drift.)
    """

    def __init__(self, n: int, num_shards: int = 1, shard_id: int = 0, shuffle: bool = True, seed: int = 0) -> None:
        if n < 1:
            raise ValueError("cannot sample from an empty dataset")
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id {shard_id} not in [0, {num_shards})")
        self.n, self.num_shards, self.shard_id = n, num_shards, shard_id
        self.shuffle, self.seed = shuffle, seed

    def __len__(self) -> int:
        return -(-self.n // self.num_shards)

    def indices(self, epoch: int) -> List[int]:
        """This rank's sample indices for ``epoch``."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        order = np.resize(order, len(self) * self.num_shards)  # repeats from the start
        return order[self.shard_id::self.num_shards].tolist()

    def codes(self, start_epoch: int, end_epoch: int, batch_size: int = 1) -> List[int]:
        """Epoch-tagged indices for epochs ``start_epoch .. end_epoch - 1``, each epoch cut to whole batches."""
        out: List[int] = []
        for epoch in range(start_epoch, end_epoch):
            idx = self.indices(epoch)
            idx = idx[: len(idx) // batch_size * batch_size]
            out += [epoch * self.n + i for i in idx]
        return out


class EpochTagged:
    """Presents ``source`` as ``num_epochs * len(source)`` items so epoch-tagged indices are in range."""

    def __init__(self, source: SegDataset, num_epochs: int) -> None:
        self.source, self.num_epochs = source, num_epochs

    def __len__(self) -> int:
        return len(self.source) * self.num_epochs

    def __getitem__(self, code: int):
        return self.source[code]


def make_dataset(data_cfg: DataConfig, list_name: str, transform, seed: int, bad_log: Optional[str] = None,
                 error_log: Optional[str] = None) -> SegDataset:
    """A :class:`SegDataset` for ``data_cfg.train_list`` or ``val_list`` (relative to ``data_root``)."""
    spec = spec_of(data_cfg)
    list_path = list_name if os.path.isabs(list_name) else os.path.join(data_cfg.data_root, list_name)
    samples = read_list(list_path, data_cfg.data_root)
    return SegDataset(samples, spec, data_cfg.classes, transform, seed, data_cfg.on_bad_sample, bad_log, error_log)


def pipeline_error(exc: BaseException, source: SegDataset, list_file: str) -> BaseException:
    """The :class:`DataError` of the sample that broke a MindSpore pipeline, or ``exc`` itself if none did.

    MindSpore re-raises a sample's exception as a RuntimeError with its own
    text; the sample's error is read from what ``source`` recorded, not from
    that text.  The record is then cleared.
    """
    message = source.recorded_error()
    if message is None:
        return exc
    clear_log(source.error_log)  # cleared in place: the next failure is a new record
    return DataError(f"{message} (while reading {list_file})")


def generator_dataset(source, codes: List[int], batch_size: int, workers: int, drop_remainder: bool):
    """``mindspore.dataset.GeneratorDataset`` reading ``source[code]`` for each code, in batches."""
    import mindspore.dataset as mds

    ds = mds.GeneratorDataset(source, column_names=["image", "label"], sampler=codes,
                              num_parallel_workers=max(1, workers), python_multiprocessing=workers > 1)
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def build_train_pipeline(data_cfg: DataConfig, train_cfg: TrainConfig, rank: int = 0, group_size: int = 1, start_epoch: int = 0,
                         end_epoch: Optional[int] = None, bad_log: Optional[str] = None,
                         error_log: Optional[str] = None):
    """Training batches for this rank for epochs ``start_epoch .. end_epoch - 1`` in one pass.

    Per-device batch = global batch / devices; each epoch is cut to whole
    batches, so an epoch is exactly ``len(sampler) // per_device`` batches.
    Returns ``(dataset, source, sampler)``; iterate the dataset once.  Skipped
    samples are appended to ``bad_log`` when given (see :class:`SegDataset`).
    """
    if train_cfg.batch_size % group_size:
        raise ConfigError(f"train.batch_size {train_cfg.batch_size} is not divisible by {group_size} devices")
    per_device = train_cfg.batch_size // group_size
    source = make_dataset(data_cfg, data_cfg.train_list, train_transform_from_config(data_cfg, train_cfg),
                          train_cfg.seed, bad_log, error_log)
    sampler = EpochShardSampler(len(source), group_size, rank, shuffle=True, seed=train_cfg.seed)
    if len(sampler) < per_device:
        raise DataError(f"{data_cfg.train_list}: {len(sampler)} samples per device is fewer than one batch of "
                         f"{per_device}")
    end_epoch = train_cfg.epochs if end_epoch is None else end_epoch
    codes = sampler.codes(start_epoch, max(end_epoch, start_epoch + 1), per_device)
    tagged = EpochTagged(source, max(end_epoch, start_epoch + 1))
    return generator_dataset(tagged, codes, per_device, data_cfg.workers, drop_remainder=True), source, sampler


def build_val_pipeline(data_cfg: DataConfig, crop_h: int, crop_w: int, batch_size: int, rank: int = 0, group_size: int = 1,
                       error_log: Optional[str] = None):
    """Center-cropped validation batches (the fast eval mode), sharded without shuffling."""
    transform = CenterCropTransform(crop_h, crop_w, tuple(data_cfg.mean), tuple(data_cfg.std), data_cfg.ignore_label)
    source = make_dataset(data_cfg, data_cfg.val_list, transform, 0, error_log=error_log)
    indices = list(shard(range(len(source)), rank, group_size))
    return generator_dataset(source, indices, batch_size, data_cfg.workers, drop_remainder=False), source, indices
