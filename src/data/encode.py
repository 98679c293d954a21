"""In-memory image encoders (an image by its extension, a palette or index PNG): bytes for the output owner."""
from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np


def encode_image(path: str | os.PathLike, image: np.ndarray, params: Sequence[int] = ()) -> bytes:
    """``image`` encoded by ``path``'s extension (OpenCV); an encoder failure is an OSError naming the file."""
    import cv2

    try:  # OpenCV raises for an unknown extension, an empty image or a channel count the format cannot hold
        ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
    except cv2.error as exc:
        raise OSError(errno.EINVAL, f"OpenCV cannot encode it ({str(exc).strip().split(' error: ')[-1][:200]})",
                      str(path)) from None
    if not ok:
        raise OSError(errno.EINVAL, "OpenCV cannot encode it", str(path))
    return encoded.tobytes()


def palette_png(label: np.ndarray, palette: np.ndarray) -> bytes:
    """Class indices as a palette PNG (VOC style: the pixel values are the indices)."""
    from PIL import Image

    im = Image.fromarray(label.astype(np.uint8), mode="P")
    im.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def index_png(index: np.ndarray) -> bytes:
    """Single-channel class indices (uint8) as grayscale PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(index.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()
