"""Evaluate a model over a list file: metrics, progress, report and optional pictures."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from PIL import Image

from src.data.dataset import DataError, Sample, load_sample, read_image
from src.data.labels import DatasetSpec, colorize
from src.errors import PSPNetError
from src.evaluation.inference import Predict, Protocol, segment
from src.evaluation.metrics import ConfusionMatrix, Scores, format_table
from src.evaluation.report import Gallery
from src.paths import ensure_output_dir

logger = logging.getLogger(__name__)


class ResultsExistError(PSPNetError, FileExistsError):
    """The results folder exists and ``overwrite`` was not given."""


def prepare_results_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Create the results folder; an existing non-empty one is refused unless ``overwrite``."""
    path = Path(path)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ResultsExistError(f"results folder {path} exists and is not empty; pass --overwrite to replace "
                                f"its files or choose another eval.save_dir")
    return ensure_output_dir(path, "results folder (--results-dir / eval.save_dir)")


def overlay(image_rgb: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a color mask over the image (both RGB uint8); black mask pixels (VOC background) leave the image as is."""
    image = np.clip(image_rgb, 0, 255).astype(np.uint8)
    blend = cv2.addWeighted(image, 1 - alpha, color, alpha, 0)
    keep = ~color.any(axis=2)
    blend[keep] = image[keep]
    return blend


def save_prediction(pred: np.ndarray, image_rgb: np.ndarray, name: str, out_dir: Path, palette: np.ndarray) -> None:
    """Write ``gray/`` (index PNG), ``color/`` (palette PNG) and ``overlay/`` (JPEG) for one image."""
    for sub in ("gray", "color", "overlay"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_dir / "gray" / f"{name}.png"), pred)
    im = Image.fromarray(pred, mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    im.save(out_dir / "color" / f"{name}.png")
    blend = overlay(image_rgb, colorize(pred, palette))
    cv2.imwrite(str(out_dir / "overlay" / f"{name}.jpg"), cv2.cvtColor(blend, cv2.COLOR_RGB2BGR))


class Progress:
    """Log lines with a bar, rate and ETA, about every 5% (and at the end)."""

    def __init__(self, total: int, what: str = "images") -> None:
        self.total, self.what = total, what
        self.start = time.perf_counter()
        self.every = max(1, total // 20)

    def update(self, done: int) -> None:
        if done % self.every and done != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = elapsed / max(done, 1)
        bar = "#" * int(20 * done / self.total)
        eta = time.strftime("%H:%M:%S", time.gmtime(rate * (self.total - done)))
        logger.info("[%-20s] %d/%d %s, %.2f s/%s, ETA %s", bar, done, self.total, self.what, rate,
                    self.what.rstrip("s"), eta)


def evaluate_samples(samples: Sequence[Sample], spec: DatasetSpec, predict: Predict, protocol: Protocol,
                     ignore_label: int = 255, results_dir: Optional[Path] = None,
                     gallery: Optional[Gallery] = None) -> np.ndarray:
    """Confusion matrix over ``samples``; with ``results_dir`` also the gray/color/overlay pictures,
    with ``gallery`` each image's IoU (and thumbnails of the best and worst) for the report."""
    cm = ConfusionMatrix(protocol.classes, ignore_label)
    progress = Progress(len(samples))
    for i, sample in enumerate(samples, start=1):
        image, label = load_sample(sample, spec, protocol.classes)
        if label is None:
            raise DataError(f"{sample.where}: evaluation needs a label column")
        pred = segment(image, predict, protocol)
        cm.update(pred, label)
        if gallery is not None:
            gallery.add(Path(sample.image).stem, image, label, pred)
        if results_dir is not None:
            save_prediction(pred, image, Path(sample.image).stem, results_dir, spec.palette)
        progress.update(i)
    return cm.matrix


def report(scores: Scores, class_names: Sequence[str], tag: str = "VOC2012-AUG-ss") -> List[str]:
    """The lines printed at the end: per-class table, then the summary line users grep for."""
    lines = format_table(scores, class_names)
    lines.append(f"mIoU over the {int(scores.present.sum())} classes present in the ground truth: "
                 f"{scores.miou_present:.4f} (not the reported mIoU)")
    lines.append(f"{tag}:mIoU/mAcc/allAcc {scores.miou:.4f}/{scores.macc:.4f}/{scores.allacc:.4f}.")
    return lines


def write_json(path: Path, scores: Scores, class_names: Sequence[str], extra: Dict) -> Path:
    data = {**scores.as_dict(class_names), **extra}
    path.write_text(json.dumps(data, indent=1))
    return path


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_images(inputs: Sequence[str]) -> List[Path]:
    """Image files from a mix of files and folders (folders: their images, sorted)."""
    found: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"input not found: {path}")
    if not found:
        raise DataError(f"no images in {list(inputs)}")
    return found


def predict_images(paths: Sequence[Path], predict: Predict, protocol: Protocol, out_dir: Path,
                   palette: np.ndarray) -> List[Path]:
    """Segment each image file (any size) and write gray/color/overlay pictures; returns the color masks."""
    written = []
    progress = Progress(len(paths))
    for i, path in enumerate(paths, start=1):
        image = read_image(str(path), str(path))
        pred = segment(image, predict, protocol)
        save_prediction(pred, image, path.stem, out_dir, palette)
        written.append(out_dir / "color" / f"{path.stem}.png")
        progress.update(i)
    return written
