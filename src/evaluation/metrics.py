"""Confusion-matrix metrics over a whole data set (semseg ``tool/test.py`` definitions).

IoU_c = sum I / sum U over all images, mIoU = mean over classes, mAcc = mean
of sum I / sum target, allAcc = sum I / sum target; target 255 ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from src.config import DataConfig


class ConfusionMatrix:
    """Accumulates a (classes x classes) matrix, rows = ground truth, columns = prediction."""

    def __init__(self, classes: int, ignore_label: int = DataConfig.ignore_label) -> None:
        self.classes = classes
        self.ignore_label = ignore_label
        self.matrix = np.zeros((classes, classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add one prediction/target pair (any equal shapes) with bincount."""
        pred = np.asarray(pred).reshape(-1).astype(np.int64)
        target = np.asarray(target).reshape(-1).astype(np.int64)
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.size} pixels but target {target.size}")
        keep = target != self.ignore_label
        pred, target = pred[keep], target[keep]
        if target.size and (target.min() < 0 or target.max() >= self.classes):
            raise ValueError(f"target values outside [0, {self.classes}) and not {self.ignore_label}")
        if pred.size and (pred.min() < 0 or pred.max() >= self.classes):
            raise ValueError(f"prediction values outside [0, {self.classes})")
        self.matrix += np.bincount(target * self.classes + pred, minlength=self.classes ** 2).reshape(
            self.classes, self.classes)

    def merge(self, other: np.ndarray) -> None:
        """Add another matrix (e.g. from another rank)."""
        self.matrix += np.asarray(other, dtype=np.int64)

    def scores(self) -> "Scores":
        return scores_from_matrix(self.matrix)


@dataclass
class Scores:
    """Per-class and summary numbers. A class with no target and no prediction has IoU and accuracy 0 (as in
    semseg), never nan; ``present`` says which classes the ground truth holds."""

    iou: np.ndarray
    acc: np.ndarray
    miou: float
    macc: float
    allacc: float
    miou_present: float
    present: np.ndarray

    def as_dict(self, class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
        names = list(class_names) if class_names else [str(i) for i in range(len(self.iou))]
        return {"mIoU": self.miou, "mAcc": self.macc, "allAcc": self.allacc,
                "mIoU_present_classes": self.miou_present,
                "per_class": [{"class": n, "iou": float(i), "acc": float(a), "present": bool(p)}
                              for n, i, a, p in zip(names, self.iou, self.acc, self.present)]}


def scores_from_matrix(matrix: np.ndarray) -> Scores:
    """Scores from a confusion matrix.

    Like semseg (which divides by ``union + 1e-10``), a class absent from
    both targets and predictions counts as IoU 0 and accuracy 0 in mIoU/mAcc
    over all classes; ``miou_present`` averages only classes present in the
    ground truth and is reported separately.
    """
    m = np.asarray(matrix, dtype=np.float64)
    inter = np.diag(m)
    target = m.sum(axis=1)
    pred = m.sum(axis=0)
    union = target + pred - inter
    iou = inter / (union + 1e-10)
    acc = inter / (target + 1e-10)
    present = target > 0
    allacc = float(inter.sum() / (target.sum() + 1e-10))
    miou_present = float(iou[present].mean()) if present.any() else 0.0
    return Scores(iou=iou, acc=acc, miou=float(iou.mean()), macc=float(acc.mean()), allacc=allacc,
                  miou_present=miou_present, present=present)


def format_table(scores: Scores, class_names: Optional[Sequence[str]] = None) -> List[str]:
    """A per-class table: a header, then one ``name  IoU  Acc  in-GT`` line per class."""
    names = list(class_names) if class_names else [str(i) for i in range(len(scores.iou))]
    width = max(len(n) for n in names)
    lines = [f"{'class':{width}s}   IoU     Acc    in GT"]
    for i, (n, iou, acc, p) in enumerate(zip(names, scores.iou, scores.acc, scores.present)):
        lines.append(f"{n:{width}s} {iou:7.4f} {acc:7.4f}   {'yes' if p else 'no'}")
    return lines
