"""Evaluate a model over a list file: the results folder, scoring by the protocol, results.json and the report
(pictures: :mod:`src.evaluation.pictures`)."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from src.errors import shown_names
from src.config import DataConfig, DATASETS, Config, config_to_dict, eval_list
from src.data.dataset import DataError, Sample, load_sample, read_list, refuse_mapped_labels
from src.data.labels import DatasetSpec, spec_of
from src.system.distributed import allreduce_sum, shard
from src.evaluation.metrics import ConfusionMatrix, Scores, format_table, scores_from_matrix
from src.data.pipeline import build_val_pipeline, pipeline_error
from src.evaluation.protocol import Protocol, protocol_from_config, run_batches, segment
from src.runtime.types import Predict
from src.evaluation.pictures import output_names, save_or_stop
from src.evaluation.report import Gallery, write_report
from src.runtime.backends import make_predict, ms_predict, read_sidecar
from src.outputs.atomic import output_writes
from src.outputs.folder import OutputFolder, as_folder
from src.progress import Progress

logger = logging.getLogger(__name__)


EVAL_LOG = "eval.log"  # the command's own log file, written into the results folder before the results


def results_dir_of(cfg: Config, backend: str, results_dir: Optional[str] = None) -> Path:
    """Where eval writes: ``results_dir``, else ``eval.save_dir``, else ``<train.save_dir>/eval_<backend>``."""
    return Path(results_dir or cfg.eval.save_dir or os.path.join(cfg.train.save_dir, f"eval_{backend}"))


RESULT_FILES = ("results.json", "report.md", "per_class_iou.png", "confusion.png", "best_worst.png", "gray/",
                "color/", "overlay/")  # what an evaluation writes in its results folder


def open_results_dir(path: str | os.PathLike, overwrite: bool, lock: bool = True) -> OutputFolder:
    """The results folder, locked for this evaluation; an earlier evaluation's results there are refused
    unless ``overwrite`` (then only the files eval wrote are replaced; a user's files stay)."""
    folder = OutputFolder(path, "results folder (--results-dir / eval.save_dir)", "eval", overwrite, lock).__enter__()
    try:
        folder.refuse_earlier(RESULT_FILES, "pass --overwrite to replace eval's files there, or choose another "
                              "--results-dir / eval.save_dir")
        folder.refuse_foreign([n for n in RESULT_FILES if not n.endswith("/")] + [EVAL_LOG])
        folder.remove_owned(RESULT_FILES)
    except BaseException:
        folder.close()
        raise
    return folder


def evaluate_samples(samples: Sequence[Sample], spec: DatasetSpec, predict: Predict, protocol: Protocol,
                     ignore_label: int = DataConfig.ignore_label, results_dir: "Optional[Path | OutputFolder]" = None,
                     gallery: Optional[Gallery] = None) -> np.ndarray:
    """Confusion matrix over ``samples``; with ``results_dir`` also the gray/color/overlay pictures (one
    distinct name per image), with ``gallery`` each image's IoU (and thumbnails of the best and worst)."""
    cm = ConfusionMatrix(protocol.classes, ignore_label)
    progress = Progress(len(samples))
    names = output_names([s.image for s in samples])
    folder = as_folder(results_dir, "results folder", "eval") if results_dir is not None else None
    for i, (sample, name) in enumerate(zip(samples, names), start=1):
        image, label = load_sample(sample, spec, protocol.classes)
        if label is None:
            raise DataError(f"{sample.where}: evaluation needs a label column")
        pred = segment(image, predict, protocol, f"{sample.where}: image {sample.image}")
        cm.update(pred, label)
        if gallery is not None:
            gallery.add(name, image, label, pred)
        if folder is not None:
            folder = save_or_stop(pred, image, name, folder, spec.palette, i - 1)
        progress.update(i)
    return cm.matrix


def result_lines(scores: Scores, class_names: Sequence[str], tag: str) -> List[str]:
    """The lines printed at the end: per-class table, then the summary line users grep for."""
    lines = format_table(scores, class_names)
    lines.append(f"mIoU over the {int(scores.present.sum())} classes present in the ground truth: "
                 f"{scores.miou_present:.4f} (not the reported mIoU)")
    lines.append(f"{tag}:mIoU/mAcc/allAcc {scores.miou:.4f}/{scores.macc:.4f}/{scores.allacc:.4f}.")
    return lines


def write_json(out: "Path | OutputFolder", scores: Scores, class_names: Sequence[str], extra: Dict,
               name: str = "results.json") -> Path:
    """``results.json``: the scores by name plus ``extra`` (model, tag, confusion matrix, config...)."""
    data = {**scores.as_dict(class_names), **extra}
    if isinstance(out, (str, os.PathLike)) and Path(out).suffix == ".json":  # a file path
        out, name = Path(out).parent, Path(out).name
    return as_folder(out, "results folder", "eval").put_json(name, data)


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


def val_shard(cfg: Config, rank: int = 0, group_size: int = 1, list_name: Optional[str] = None
              ) -> Tuple[List[Sample], List[Sample]]:
    """Every sample of ``list_name`` (default ``data.val_list``, what training validates on; eval.py passes
    :func:`src.config.eval_list`) and this rank's share of them (every ``group_size``-th)."""
    list_name = list_name or cfg.data.val_list
    samples = read_list(os.path.join(cfg.data.data_root, list_name), cfg.data.data_root)
    refuse_mapped_labels(samples, spec_of(cfg.data))  # before any image is scored
    return samples, shard(samples, rank, group_size)


def evaluate_network(net, cfg: Config, mode: str, rank: int = 0, group_size: int = 1,
                     error_log: Optional[str] = None) -> Tuple[np.ndarray, int]:
    """This rank's (confusion matrix, image count) on its shard of the val list, for evaluation during training:
    ``fast`` = center crops of the train crop's size through the pipeline, ``full`` = the eval.py protocol."""
    net.set_train(False)
    try:
        if mode == "fast":
            return _evaluate_crops(net, cfg, rank, group_size, error_log)
        _, samples = val_shard(cfg, rank, group_size)
        matrix = evaluate_samples(samples, spec_of(cfg.data), ms_predict(net), protocol_from_config(cfg.data, cfg.eval),
                                  cfg.data.ignore_label)
        return matrix, len(samples)
    finally:
        net.set_train(True)


def _evaluate_crops(net, cfg: Config, rank: int, group_size: int, error_log: Optional[str]) -> Tuple[np.ndarray, int]:
    ds, source, _ = build_val_pipeline(cfg.data, cfg.train.crop_h, cfg.train.crop_w, cfg.eval.batch_size, rank,
                                       group_size, error_log)
    cm = ConfusionMatrix(cfg.data.classes, cfg.data.ignore_label)
    predict, count = ms_predict(net), 0
    try:
        for image, label in ds.create_tuple_iterator(num_epochs=1, output_numpy=True):
            # The last batch is zero-padded to the full size, so only one graph is compiled.
            cm.update(run_batches(predict, image, cfg.eval.batch_size).argmax(axis=1), label)
            count += len(label)
    except RuntimeError as exc:
        raise pipeline_error(exc, source, cfg.data.val_list) from None
    return cm.matrix, count


def run_eval(cfg: Config, model_path: str, backend: str = "ms", overwrite: bool = False,
             results_dir: Optional[str] = None, rank: int = 0, group_size: int = 1,
             outputs: Optional[OutputFolder] = None) -> Dict:
    """Evaluate ``model_path`` on ``eval.list`` (default ``data.val_list``) by the config's protocol; returns the
    results dict.

    Each rank takes every ``group_size``-th image; confusion matrices are
    summed so every rank reports the same numbers.  Rank 0 writes
    ``results.json`` (and pictures with ``eval.save_images``).
    """
    spec = spec_of(cfg.data)
    list_name = eval_list(cfg)
    samples, mine = val_shard(cfg, rank, group_size, list_name)
    out_dir = results_dir_of(cfg, backend, results_dir)
    if rank == 0 and not isinstance(outputs, OutputFolder):
        outputs = open_results_dir(out_dir, overwrite, lock=False)
    protocol = protocol_from_config(cfg.data, cfg.eval)
    protocol = batch_from_model(protocol, backend, model_path)
    predict = make_predict(backend, model_path, cfg.model, cfg.data.classes, protocol.batch_size,
                           (protocol.crop_h, protocol.crop_w))
    logger.info("evaluating %d images (%s) with %s backend, scales %s, flip %s", len(mine), list_name,
                backend, list(protocol.scales), protocol.flip)
    gallery = Gallery(cfg.data.classes, cfg.data.ignore_label) if rank == 0 else None
    matrix = evaluate_samples(mine, spec, predict, protocol, cfg.data.ignore_label,
                              outputs if (cfg.eval.save_images and rank == 0) else None, gallery)
    matrix = allreduce_sum(matrix, group_size)
    scores = scores_from_matrix(matrix)
    tag = DATASETS[cfg.data.dataset] + ("-ss" if len(protocol.scales) == 1 else "-ms")
    for line in result_lines(scores, spec.class_names, tag):
        logger.info(line)
    absent = [spec.class_names[c] for c in range(spec.classes) if not scores.present[c]]
    if absent:
        logger.warning("class(es) %s have no pixel in the val labels: each counts as IoU 0 in the mIoU above (over "
                       "the classes present: %.4f). If that is not expected, check the masks: `python -m src prepare "
                       "check --config %s` (0/255 masks, for one, read their foreground as data.ignore_label)",
                       shown_names(absent, 8, 40), scores.miou_present, cfg.source)
    result = {"model": model_path, "backend": backend, "images": len(samples), "tag": tag,
              "confusion_matrix": matrix.tolist(), "config": config_to_dict(cfg)}
    if rank == 0:
        part = f" (best/worst images from rank 0's {len(mine)} of {len(samples)})" if group_size > 1 else ""
        header = [f"Model `{model_path}` ({backend} backend), {len(samples)} images of `{list_name}`, "
                  f"scales {list(protocol.scales)}, flip {protocol.flip}{part}."]
        with output_writes(out_dir, "the scores are complete in the lines above (and in eval.log if it could be "
                                    "written); only the files of the results folder are missing"):
            write_json(outputs, scores, spec.class_names, result)
            write_report(outputs, scores, spec.class_names, matrix, tag, spec.palette, gallery, header)
        logger.info("results in %s (report.md: table, per-class IoU, confusion heatmap, best/worst images)", out_dir)
    result.update(scores.as_dict(spec.class_names))
    result["results_dir"] = str(out_dir)
    return result
