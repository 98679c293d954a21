"""Before the first step: one scan of the training labels refuses data that cannot teach what the config declares,
and gives ``train.class_weights: auto`` its numbers. The scan is kept in the run folder (``label_scan.json``) with
a fingerprint of the list and the label files, so a resume or a second run does not scan again."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from src.config import Config
from src.data.dataset import DataError, read_list
from src.data.doctor import (ListScan, median_frequency_weights, rare_classes, scan_fingerprint, scan_samples,
                             training_label_check)
from src.data.labels import spec_of
from src.system.distributed import allreduce_sum, shard
from src.errors import PSPNetError, shown
from src.outputs.atomic import read_small_file
from src.outputs.folder import OutputFolder
from src.outputs.manifest import read_manifest

logger = logging.getLogger(__name__)

SCAN_NAME = "label_scan.json"
MAX_SCAN_BYTES = 1 << 20  # the counts of 255 classes and 256 values, with up to 30 problem lines, are ~30 KB


def _cached(path: Path, fingerprint: str) -> Optional[ListScan]:
    """The scan saved at ``path`` when it is a regular file that this program wrote there (the folder's record
    of it has these bytes' digest: counts edited by hand are not trusted) and whose fingerprint matches; None
    otherwise."""
    data = read_small_file(path, MAX_SCAN_BYTES)
    if data is None:
        return None
    try:
        record = read_manifest(path.parent).get(path.name) or {}
    except (OSError, ValueError, PSPNetError):
        record = {}
    if record.get("sha256") != hashlib.sha256(data).hexdigest():
        logger.warning("%s was not written by this program (or changed since): scanning the labels again", path)
        return None
    try:
        obj = json.loads(data.decode("utf-8"))
        if obj.get("fingerprint") != fingerprint:
            return None
        return ListScan.from_json(obj["scan"])
    except (ValueError, KeyError, TypeError, AttributeError):
        logger.warning("%s is not a label scan this program can read: scanning again", path)
        return None


def _vector(scan: ListScan) -> np.ndarray:
    """The counts one rank adds to the whole scan, as one non-negative int64 vector."""
    problems = sum(len(v) for k, v in scan.problems.items())
    head = [scan.samples, scan.ok, scan.ignored, scan.pixels, scan.rgb_masks, problems, scan.binary_files,
            scan.class_files]
    return np.concatenate([np.asarray(head, np.int64), scan.class_pixels, scan.class_images,
                           scan.class_image_pixels, scan.raw_values]).astype(np.int64)


def _from_vector(vec: np.ndarray, mine: ListScan) -> Tuple[ListScan, int]:
    c = mine.classes
    samples, ok, ignored, pixels, rgb, problems, binary, with_classes = (int(v) for v in vec[:8])
    body = vec[8:]
    scan = ListScan(mine.list_file, c, samples, ok, body[:c].copy(), body[c:2 * c].copy(), body[3 * c:].copy(),
                    body[2 * c:3 * c].copy(), ignored, pixels, rgb, binary, with_classes)
    scan.problems = mine.problems
    return scan, problems


def scan_training_labels(cfg: Config, rank: int = 0, group_size: int = 1,
                         folder: Optional[OutputFolder] = None) -> ListScan:
    """The whole training list's label counts: from ``folder``'s saved scan when its fingerprint matches on every
    rank, else scanned (each rank its shard, the counts summed) and saved by rank 0."""
    d = cfg.data
    spec = spec_of(d)
    list_path = d.train_list if os.path.isabs(d.train_list) else os.path.join(d.data_root, d.train_list)
    samples = read_list(list_path, d.data_root)
    fingerprint = scan_fingerprint(list_path, d.data_root, spec, samples)
    saved = _cached(Path(cfg.train.save_dir) / SCAN_NAME, fingerprint)
    everyone = int(allreduce_sum(np.array([int(saved is not None)], np.int64), group_size)[0]) == group_size
    if saved is not None and everyone:
        logger.info("training labels: the scan saved in %s matches the list and the files (not scanned again)",
                    Path(cfg.train.save_dir) / SCAN_NAME)
        return saved
    logger.info("training labels: scanning the %d masks of %s once (classes, ignored pixels, mask kind)",
                len(samples), list_path)
    mine = scan_samples(list(shard(samples, rank, group_size)), spec, list_path)
    scan, problems = _from_vector(allreduce_sum(_vector(mine), group_size), mine)
    if problems and d.on_bad_sample == "error":
        first = next((items[0] for items in mine.problems.values() if items), None)
        raise DataError(first or f"the training labels have {problems} problem(s) found on other ranks; run "
                                 f"`python -m src prepare check --config {cfg.source}` to list them")
    if problems:
        logger.warning("training labels: %d sample(s) with problems will be skipped (data.on_bad_sample skip); "
                       "`python -m src prepare check` lists them", problems)
    if folder is not None:
        try:
            folder.put_json(SCAN_NAME, {"fingerprint": fingerprint, "list_file": list_path, "scan": scan.to_json()})
        except OSError as exc:
            logger.warning("cannot keep the label scan in %s (%s): a resume will scan again", folder.root, exc)
    return scan


def check_training_data(cfg: Config, rank: int = 0, group_size: int = 1,
                        folder: Optional[OutputFolder] = None) -> Optional[List[float]]:
    """Refuse labels that cannot teach the config's classes (one line naming the class and the fix); return the
    class weights the loss uses (None for ``train.class_weights none``)."""
    weights = cfg.train.class_weights
    scan = scan_training_labels(cfg, rank, group_size, folder)
    spec = spec_of(cfg.data)
    training_label_check(scan, spec, cfg.data.allow_absent_classes, cfg.source)
    for note in rare_classes(scan, spec):
        logger.warning("training labels: %s", note)
    shares = scan.class_pixels / max(int(scan.class_pixels.sum()), 1)
    rare = int(np.argmin(shares))
    logger.info("training labels: %d classes, ignored pixels %.1f%%, rarest class %s (%.2f%% of labelled pixels)",
                spec.classes, 100 * scan.ignored_share, shown(spec.class_names[rare], 60), 100 * shares[rare])
    if weights == "none":
        return None
    if weights == "auto":
        weights = median_frequency_weights(scan)
        logger.info("train.class_weights auto (median frequency): %s", ", ".join(
            f"{shown(n, 30)} {w:.4g}" for n, w in zip(spec.class_names, weights)))
    return [float(w) for w in weights]


def continued_class_weights(setting, computed: Optional[List[float]], saved: Optional[List[float]]
                            ) -> Optional[List[float]]:
    """The loss's class weights: the config's (``computed`` by :func:`check_training_data` from ``setting``,
    ``train.class_weights``); for ``auto`` on a resume, the numbers the run started with (``saved``)."""
    if setting == "auto" and saved is not None:
        if computed is not None and not np.allclose(saved, computed, rtol=1e-5):
            logger.warning("train.class_weights auto: the training labels give other weights now; the resumed "
                           "run keeps the ones it started with (%s)", ", ".join(f"{w:.4g}" for w in saved))
        return saved
    if saved is not None and computed != saved:
        logger.warning("train.class_weights: this run started with %s and continues with %s (the config changed)",
                       [round(w, 4) for w in saved], computed if computed is None else [round(w, 4) for w in computed])
    return computed
