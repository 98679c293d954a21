"""The evaluation report a person reads: ``report.md`` with the numbers and three pictures.

``report.md`` holds the summary line, the per-class table, and links to
``per_class_iou.png`` (bar chart), ``confusion.png`` (the confusion matrix
normalized per ground-truth class, as a heatmap) and ``best_worst.png``
(image / ground truth / prediction of the images with the lowest and highest
per-image IoU).  eval.py and the 310 flow's postprocess both write it.
Pictures are drawn with matplotlib's Agg canvas (no display needed).
"""
from __future__ import annotations

import heapq
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from src.config import DataConfig
from src.data.labels import colorize
from src.evaluation.metrics import Scores
from src.outputs.atomic import write_bytes
from src.outputs.folder import OutputFolder, as_folder
from src.plotting import figure_bytes, label_axes, new_figure

THUMB_SIDE = 192  # longest side of the pictures kept for the best/worst grid


def image_iou(pred: np.ndarray, label: np.ndarray, classes: int, ignore_label: int = DataConfig.ignore_label) -> float:
    """Mean IoU over the classes present in this image's ground truth or prediction (ignored pixels left out)."""
    valid = label != ignore_label
    p, t = pred[valid].astype(np.int64), label[valid].astype(np.int64)
    inter = np.bincount(t[p == t], minlength=classes)[:classes]
    area_p = np.bincount(p, minlength=classes)[:classes]
    area_t = np.bincount(t, minlength=classes)[:classes]
    union = area_p + area_t - inter
    seen = union > 0
    return float((inter[seen] / union[seen]).mean()) if seen.any() else float("nan")


def normalized_rows(matrix: np.ndarray) -> np.ndarray:
    """Each ground-truth row divided by its pixel count (rows without pixels stay 0)."""
    m = np.asarray(matrix, np.float64)
    totals = m.sum(axis=1, keepdims=True)
    return np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)


def _thumb(array: np.ndarray, nearest: bool) -> np.ndarray:
    h, w = array.shape[:2]
    scale = THUMB_SIDE / max(h, w)
    if scale >= 1:
        return array.copy()
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


@dataclass
class Gallery:
    """Keeps small copies of the ``keep`` worst and ``keep`` best images by per-image IoU, and every score."""

    classes: int
    ignore_label: int = DataConfig.ignore_label
    keep: int = 4
    scores: List[Tuple[str, float]] = field(default_factory=list)
    _worst: List = field(default_factory=list)  # max-heap by IoU (negated): the lowest kept
    _best: List = field(default_factory=list)  # min-heap by IoU: the highest kept
    _order: "itertools.count" = field(default_factory=itertools.count)

    def add(self, name: str, image_rgb: np.ndarray, label: np.ndarray, pred: np.ndarray) -> float:
        """Score one image and keep its thumbnails if it is among the best or worst so far; returns its IoU."""
        iou = image_iou(pred, label, self.classes, self.ignore_label)
        self.scores.append((name, iou))
        if np.isnan(iou) or self.keep <= 0:
            return iou
        item = None
        for heap, key in ((self._worst, -iou), (self._best, iou)):
            if len(heap) < self.keep or key > heap[0][0]:
                if item is None:  # thumbnails made once, only for an image that is kept
                    picture = np.clip(image_rgb, 0, 255).astype(np.uint8)  # loaders give float32 RGB 0-255
                    item = (name, iou, _thumb(picture, False), _thumb(label, True), _thumb(pred, True))
                entry = (key, next(self._order), item)
                heapq.heappush(heap, entry) if len(heap) < self.keep else heapq.heapreplace(heap, entry)
        return iou

    def worst(self) -> List[Tuple]:
        """``(name, iou, image, label, pred)`` from the lowest IoU up."""
        return [e[2] for e in sorted(self._worst, key=lambda e: (-e[0], e[1]))]

    def best(self) -> List[Tuple]:
        """``(name, iou, image, label, pred)`` from the highest IoU down."""
        return [e[2] for e in sorted(self._best, key=lambda e: (-e[0], e[1]))]


def _colorize(label: np.ndarray, palette: np.ndarray, ignore_label: Optional[int] = None) -> np.ndarray:
    out = colorize(np.minimum(label, len(palette) - 1), palette).astype(np.uint8)
    if ignore_label is not None:
        out[label == ignore_label] = 255  # ignored pixels white
    return out


def _save(fig, path: Path, folder: Optional[OutputFolder]) -> None:
    """Write a figure through the output folder (or atomically to a plain path)."""
    if folder is not None:
        folder.put_bytes(os.path.relpath(path, folder.root), figure_bytes(fig, path))
    else:
        write_bytes(path, figure_bytes(fig, path))


def plot_per_class(scores: Scores, class_names: Sequence[str], path: Path,
                   folder: Optional[OutputFolder] = None) -> Dict:
    """Horizontal bar chart of per-class IoU with the mIoU line; returns the bars' labels and values."""
    fig = new_figure(8, max(3.0, 0.28 * len(class_names) + 1.2))
    ax = fig.subplots()
    values = np.nan_to_num(scores.iou, nan=0.0)
    y = np.arange(len(class_names))
    colors = ["tab:blue" if p else "lightgray" for p in scores.present]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels=list(class_names), fontsize="small")
    ax.invert_yaxis()
    ax.axvline(scores.miou, color="tab:red", linestyle="--", label=f"mIoU {scores.miou:.4f}")
    ax.set_xlim(0, 1)
    label_axes(ax, "IoU (0-1)", "", "per-class IoU (gray: class absent from the ground truth)", "x", "lower right")
    _save(fig, path, folder)
    return {"labels": [t.get_text() for t in ax.get_yticklabels()], "values": values.tolist(),
            "xlabel": ax.get_xlabel()}


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path,
                   folder: Optional[OutputFolder] = None) -> np.ndarray:
    """Heatmap of the row-normalized confusion matrix (rows: ground truth); returns the plotted matrix."""
    norm = normalized_rows(matrix)
    n = len(class_names)
    side = min(16.0, max(4.0, 0.32 * n + 2.5))
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    im = ax.imshow(norm, cmap="viridis", vmin=0.0, vmax=1.0)
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=list(class_names), rotation=90, fontsize="x-small")
    ax.set_yticks(ticks, labels=list(class_names), fontsize="x-small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("confusion, each row normalized to 1")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if norm[i, j] >= 0.01:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize="xx-small",
                            color="white" if norm[i, j] < 0.6 else "black")
    fig.colorbar(im, ax=ax, label="fraction of the row's pixels")
    _save(fig, path, folder)
    return norm


def plot_best_worst(gallery: Gallery, palette: np.ndarray, path: Path,
                    folder: Optional[OutputFolder] = None) -> List[str]:
    """Rows of image / ground truth / prediction, worst first then best; returns the row titles."""
    rows = [("worst", r) for r in gallery.worst()] + [("best", r) for r in gallery.best()]
    if not rows:
        return []
    fig = new_figure(9, 2.6 * len(rows))
    axes = np.atleast_2d(fig.subplots(len(rows), 3))
    titles = []
    for (kind, (name, iou, image, label, pred)), ax_row in zip(rows, axes):
        title = f"{kind}: {name} (image IoU {iou:.3f})"
        titles.append(title)
        panels = (image, _colorize(label, palette, gallery.ignore_label), _colorize(pred, palette))
        for ax, picture, what in zip(ax_row, panels, ("image", "ground truth", "prediction")):
            ax.imshow(picture)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title}\n{what}" if what == "image" else what, fontsize="small")
    _save(fig, path, folder)
    return titles


def write_report(out_dir: "str | Path | OutputFolder", scores: Scores, class_names: Sequence[str],
                 matrix: np.ndarray, tag: str, palette: np.ndarray, gallery: Optional[Gallery] = None,
                 header: Sequence[str] = ()) -> Path:
    """Write ``report.md`` and its pictures in ``out_dir`` (an output folder or its path); returns the report's path."""
    folder = as_folder(out_dir, "report folder", "report")
    out = folder.root
    plot_per_class(scores, class_names, out / "per_class_iou.png", folder)
    plot_confusion(matrix, class_names, out / "confusion.png", folder)
    lines = [f"# Evaluation report: {tag}", "", *header, "",
             f"**{tag}:mIoU/mAcc/allAcc {scores.miou:.4f}/{scores.macc:.4f}/{scores.allacc:.4f}**", "",
             f"mIoU over the {int(scores.present.sum())} classes present in the ground truth: "
             f"{scores.miou_present:.4f} (not the reported mIoU).", "",
             "| class | IoU | accuracy | in ground truth |", "|---|---|---|---|"]
    for name, iou, acc, present in zip(class_names, scores.iou, scores.acc, scores.present):
        lines.append(f"| {name} | {iou:.4f} | {acc:.4f} | {'yes' if present else 'no'} |")
    lines += ["", "![per-class IoU](per_class_iou.png)", "",
              "## Confusion matrix", "", "Rows are ground-truth classes, each normalized to 1: the diagonal is the "
              "class accuracy, a bright cell off it is a confusion.", "", "![confusion](confusion.png)"]
    if gallery is not None and gallery.scores:
        titles = plot_best_worst(gallery, palette, out / "best_worst.png", folder)
        ious = np.array([s for _, s in gallery.scores if not np.isnan(s)])
        lines += ["", "## Worst and best images", "",
                  f"Per-image IoU (mean over the classes in the image's ground truth or prediction) over "
                  f"{len(gallery.scores)} images: median {np.median(ious):.4f}, min {ious.min():.4f}, "
                  f"max {ious.max():.4f}." if ious.size else "No image had a scorable pixel.", ""]
        if titles:
            lines += [f"- {t}" for t in titles] + ["", "![worst and best](best_worst.png)"]
    return folder.put_text("report.md", "\n".join(lines) + "\n")
