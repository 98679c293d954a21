"""Segment image files of any size with any model format and write gray / color / overlay pictures."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Sequence

import numpy as np

from src.data.dataset import DataError, read_image
from src.evaluation.pictures import output_names, save_prediction
from src.errors import has_control_chars, shown, shown_names
from src.progress import Progress
from src.outputs import OutputFolder, as_folder, output_writes
from src.evaluation.protocol import Predict, Protocol, segment

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_images(inputs: Sequence[str]) -> List[Path]:
    """Image files from a mix of files and folders (folders: their regular image files, sorted).

    In a folder, anything that is not a regular file (a FIFO, a device, a socket) is skipped with a warning:
    opening a FIFO would wait forever for a writer.
    """
    found: List[Path] = []
    for item in inputs:
        path = Path(item)
        if has_control_chars(str(path)):
            raise DataError(f"input {shown(path, 300)}: its name holds control characters; rename it")
        if path.is_dir():
            for p in sorted(q for q in path.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS):
                if has_control_chars(p.name):
                    raise DataError(f"{shown(p, 300)}: the file's name holds control characters; rename it")
                if p.is_file():
                    found.append(p)
                else:
                    logger.warning("skipping %s: not a regular file", p)
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"input not found: {shown(path, 300)}")
    if not found:
        raise DataError(f"no images in {shown_names(inputs, 6, 300)}")
    return found


PICTURE_FOLDERS = ("gray/", "color/", "overlay/")


def predict_images(paths: Sequence[Path], predict: Predict, protocol: Protocol, out: "Path | OutputFolder",
                   palette: np.ndarray) -> List[Path]:
    """Segment each image file (any size) and write gray/color/overlay pictures; returns the color masks.

    Masks an earlier predict wrote in ``out`` are refused unless the folder was opened with ``overwrite``."""
    folder = as_folder(out, "--out", "predict")
    folder.refuse_earlier(PICTURE_FOLDERS, "pass --overwrite to replace them, or choose another --out")
    written = []
    names = output_names(paths)
    progress = Progress(len(paths))
    for i, (path, name) in enumerate(zip(paths, names), start=1):
        image = read_image(str(path), str(path))
        pred = segment(image, predict, protocol, f"image {path}")
        with output_writes(folder.root, f"the masks of the {i - 1} images before it are complete in {folder.root}"):
            save_prediction(pred, image, name, folder, palette)
        written.append(folder.root / "color" / f"{name}.png")
        progress.update(i)
    return written
