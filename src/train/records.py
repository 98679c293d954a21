"""Run records: a JSONL metrics file and a PNG plot of the loss and mIoU curves (drawn with OpenCV)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np


class MetricsLog:
    """Appends one JSON object per line to ``path``; ``read()`` returns them."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> int:
        """Drop records of steps after ``step`` (written by a run that is now resumed from ``step``).

        Returns how many were dropped.  The file is rewritten atomically.
        """
        records = self.read()
        kept = [r for r in records if int(r.get("step", 0)) <= step]
        if len(kept) != len(records):
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
            os.replace(tmp, self.path)
        return len(records) - len(kept)

    def read(self) -> List[Dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _panel(xs: Sequence[float], ys: Sequence[float], title: str, color: Tuple[int, int, int],
           size: Tuple[int, int] = (300, 480), y_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 60, 15, 30, 35
    cv2.rectangle(img, (left, top), (w - right, h - bottom), (0, 0, 0), 1)
    cv2.putText(img, title, (left, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    if len(xs) == 0:
        cv2.putText(img, "no data yet", (left + 10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (90, 90, 90), 1)
        return img
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    x0, x1 = float(xs.min()), float(xs.max()) if xs.max() > xs.min() else float(xs.min()) + 1
    if y_range is not None:
        y0, y1 = y_range
    else:
        y0, y1 = float(ys.min()), float(ys.max()) if ys.max() > ys.min() else float(ys.min()) + 1
    px = left + (xs - x0) / (x1 - x0) * (w - left - right)
    py = (h - bottom) - (ys - y0) / (y1 - y0) * (h - top - bottom)
    pts = np.stack([px, py], 1).round().astype(np.int32)
    cv2.polylines(img, [pts], False, color, 2, cv2.LINE_AA)
    for x, y in pts:
        if len(pts) <= 40:
            cv2.circle(img, (int(x), int(y)), 3, color, -1)
    for v, y in ((y1, top), (y0, h - bottom)):
        cv2.putText(img, f"{v:.3g}", (2, y + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for v, x in ((x0, left), (x1, w - right - 30)):
        cv2.putText(img, f"{v:.0f}", (int(x), h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def plot_curves(records: List[Dict], path: str | os.PathLike) -> Path:
    """Write a PNG with training loss per step and validation mIoU per epoch."""
    steps = [r for r in records if r.get("kind") == "step"]
    evals = [r for r in records if r.get("kind") == "eval"]
    loss = _panel([r["step"] for r in steps], [r["loss"] for r in steps], "training loss (per logged step)",
                  (30, 60, 200))
    miou = _panel([r["epoch"] for r in evals], [r["miou"] for r in evals], "validation mIoU (per epoch)",
                  (40, 140, 40), y_range=(0.0, 1.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate([loss, miou], axis=1))
    return path
