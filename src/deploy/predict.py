"""Segment image files of any size with any model format and write gray / color / overlay pictures."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from src.data.dataset import DataError, read_image
from src.evaluation.evaluate import Progress, save_prediction
from src.evaluation.protocol import Predict, Protocol, segment

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
