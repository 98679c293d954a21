"""Pictures of predictions: gray class maps, palette PNGs and overlays, one distinct name per image, written
through the results folder's owner; a full disk stops the pictures, never the scoring."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from src.data.encode import encode_image, palette_png
from src.data.labels import colorize
from src.outputs.errors import OutputPathError, WriteFailedError
from src.outputs.folder import OutputFolder, as_folder

logger = logging.getLogger(__name__)


def overlay(image_rgb: np.ndarray, color: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a color mask over the image (both RGB uint8); black mask pixels (VOC background) leave the image as is."""
    image = np.clip(image_rgb, 0, 255).astype(np.uint8)
    blend = cv2.addWeighted(image, 1 - alpha, color, alpha, 0)
    keep = ~color.any(axis=2)
    blend[keep] = image[keep]
    return blend


def save_prediction(pred: np.ndarray, image_rgb: np.ndarray, name: str, out: "Path | OutputFolder",
                    palette: np.ndarray) -> None:
    """Write ``gray/`` (index PNG), ``color/`` (palette PNG) and ``overlay/`` (JPEG) for one image."""
    folder = as_folder(out, "pictures folder", "eval")
    gray, color, over = f"gray/{name}.png", f"color/{name}.png", f"overlay/{name}.jpg"
    folder.put_bytes(gray, encode_image(folder.path(gray), pred), unique=True)  # one picture per image, never two
    folder.put_bytes(color, palette_png(pred, palette), unique=True)
    blend = overlay(image_rgb, colorize(pred, palette))
    folder.put_bytes(over, encode_image(folder.path(over), cv2.cvtColor(blend, cv2.COLOR_RGB2BGR)), unique=True)


def output_names(paths: Sequence[str | os.PathLike]) -> List[str]:
    """One distinct picture name per input: the stem, or ``stem_ext`` where stems collide (``a.jpg``/``a.png``),
    with a counter for anything still equal (the same name in two folders) - and a further counter wherever a
    name so made equals another input's own name (``x_jpg_1.jpg`` beside two ``x.jpg``)."""
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    names = [f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    seen: Dict[str, int] = {}
    first = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        first.append(name if seen[name] == 1 and names.count(name) == 1 else f"{name}_{seen[name]}")
    used: set = set()
    out = []
    for name in first:
        final, k = name, 1
        while final in used:
            k += 1
            final = f"{name}_{k}"
        used.add(final)
        out.append(final)
    return out


def save_or_stop(pred: np.ndarray, image: np.ndarray, name: str, folder: OutputFolder, palette: np.ndarray,
                 saved: int) -> Optional[OutputFolder]:
    """Save one image's pictures and return ``folder``; on a write error (a full disk) say so once and
    return None, so no more pictures are tried: the scores do not depend on them and the evaluation goes on.
    A user's file in the way, or a symbolic link, stops the command instead (nothing of theirs is replaced)."""
    try:
        save_prediction(pred, image, name, folder, palette)
        return folder
    except OSError as exc:
        if isinstance(exc, OutputPathError) and not isinstance(exc, WriteFailedError):
            raise  # a user's file or a link in the way: nothing of theirs is replaced, the command stops
        logger.warning("cannot write the pictures of %s: %s; no more pictures are written, those of the %d "
                       "images before it are kept in %s, and the evaluation goes on", name,
                       getattr(exc, "strerror", None) or exc, saved, folder.root)
        return None
