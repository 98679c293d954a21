"""In-memory encoders: an image, a palette or index PNG, a figure, an array, as the bytes the owner places."""
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

    ok, encoded = cv2.imencode(Path(path).suffix, image, list(params))
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


def figure_bytes(fig, path: str | os.PathLike) -> bytes:
    """A matplotlib figure rendered in the format of ``path``'s extension."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png")
    return buf.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in numpy's ``.npy`` format (what ``np.save`` writes)."""
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()
