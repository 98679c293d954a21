"""What ``eval.py`` does, as one function tests can call."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Dict, Optional

from src.config import Config, config_to_dict
from src.data.dataset import read_list
from src.data.labels import dataset_spec
from src.distributed import allreduce_sum
from src.evaluation.backends import make_predict, read_sidecar
from src.evaluation.evaluate import evaluate_samples, prepare_results_dir, report, write_json
from src.evaluation.report import Gallery, write_report
from src.evaluation.inference import Protocol, protocol_from_config
from src.evaluation.metrics import scores_from_matrix

logger = logging.getLogger(__name__)

DATASET_TAGS = {"voc2012": "VOC2012-AUG", "ade20k": "ADE20K", "cityscapes": "Cityscapes", "camvid": "CamVid",
                "kitti_road": "KITTI-road", "synthetic": "Synthetic", "custom": "Custom"}


def batch_from_model(protocol: Protocol, backend: str, model_path: str) -> Protocol:
    """An exported model is fixed to the batch it was exported with: evaluate with that batch.

    The batch comes from the export sidecar (``<model>.json``); windows are
    batched (and the last batch zero-padded) to it, which changes no result.
    """
    if backend == "ms":
        return protocol
    meta = read_sidecar(model_path)
    if meta is None or "input_shape" not in meta:
        return protocol
    batch = int(meta["input_shape"][0])
    if batch != protocol.batch_size:
        logger.info("%s was exported for batch %d: evaluating in batches of %d (eval.batch_size is %d)", model_path,
                    batch, batch, protocol.batch_size)
        protocol = dataclasses.replace(protocol, batch_size=batch)
    return protocol


def run_eval(cfg: Config, model_path: str, backend: str = "ms", overwrite: bool = False,
             results_dir: Optional[str] = None, rank: int = 0, group_size: int = 1) -> Dict:
    """Evaluate ``model_path`` on ``data.val_list`` by the config's protocol; returns the results dict.

    Each rank takes every ``group_size``-th image; confusion matrices are
    summed so every rank reports the same numbers.  Rank 0 writes
    ``results.json`` (and pictures with ``eval.save_images``).
    """
    spec = dataset_spec(cfg.data.dataset, cfg.data.classes, cfg.data.class_names)
    samples = read_list(os.path.join(cfg.data.data_root, cfg.data.val_list), cfg.data.data_root)
    out_dir = Path(results_dir or cfg.eval.save_dir or os.path.join(cfg.train.save_dir, f"eval_{backend}"))
    if rank == 0:
        prepare_results_dir(out_dir, overwrite)
    protocol = protocol_from_config(cfg.data, cfg.eval)
    protocol = batch_from_model(protocol, backend, model_path)
    predict = make_predict(backend, model_path, cfg.model, cfg.data.classes, protocol.batch_size,
                           (protocol.crop_h, protocol.crop_w))
    mine = samples[rank::group_size]
    logger.info("evaluating %d images (%s) with %s backend, scales %s, flip %s", len(mine), cfg.data.val_list,
                backend, list(protocol.scales), protocol.flip)
    gallery = Gallery(cfg.data.classes, cfg.data.ignore_label) if rank == 0 else None
    matrix = evaluate_samples(mine, spec, predict, protocol, cfg.data.ignore_label,
                              out_dir if (cfg.eval.save_images and rank == 0) else None, gallery)
    matrix = allreduce_sum(matrix, group_size)
    scores = scores_from_matrix(matrix)
    tag = DATASET_TAGS.get(cfg.data.dataset, cfg.data.dataset) + ("-ss" if len(protocol.scales) == 1 else "-ms")
    for line in report(scores, spec.class_names, tag):
        logger.info(line)
    result = {"model": model_path, "backend": backend, "images": len(samples), "tag": tag,
              "confusion_matrix": matrix.tolist(), "config": config_to_dict(cfg)}
    if rank == 0:
        write_json(out_dir / "results.json", scores, spec.class_names, result)
        shard = f" (best/worst images from rank 0's {len(mine)} of {len(samples)})" if group_size > 1 else ""
        header = [f"Model `{model_path}` ({backend} backend), {len(samples)} images of `{cfg.data.val_list}`, "
                  f"scales {list(protocol.scales)}, flip {protocol.flip}{shard}."]
        write_report(out_dir, scores, spec.class_names, matrix, tag, spec.palette, gallery, header)
        logger.info("results in %s (report.md: table, per-class IoU, confusion heatmap, best/worst images)", out_dir)
    result.update(scores.as_dict(spec.class_names))
    result["results_dir"] = str(out_dir)
    return result
