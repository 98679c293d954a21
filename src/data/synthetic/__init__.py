"""A synthetic data set in the real VOC2012AUG layout, deterministic from a seed.

Writes ``JPEGImages/*.jpg``, ``SegmentationClassAug/*.png`` (palette PNGs of
class indices, VOC colors), ``train.txt`` / ``val.txt`` list files and
``info.json`` (class names).  Two tasks:

* ``shapes``: squares, disks, triangles, bars and rings of class-tinted colors
  on textured backgrounds; learnable by a small network in minutes on CPU.
* ``context``: the paper's boat-vs-car case.  Every image has identical
  "hulls" far from a band of water or road at the bottom; a hull is a *boat*
  in a water scene and a *car* in a road scene, so only global context tells
  them apart.
* ``context_far``: the same classes on wide images (height 3/8 of the width)
  where the only cue is a water or road strip along one side and the hulls
  stand in the far third of the image on a neutral ground: no pixel near a
  hull says boat or car.  Made to be decided only by context farther away
  than the backbone's effective receptive field.

Usage:
  python -m src synthetic --out data/synthetic_shapes --task shapes --num 120 --size 128 [--seed 0]
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

from src.data.dataset import DataError
from src.config import DataConfig
from src.data.encode import encode_image, palette_png
from src.data.labels import voc_palette
from src.outputs.folder import OutputFolder, as_folder

logger = logging.getLogger(__name__)

TASKS: Dict[str, List[str]] = {
    "shapes": ["background", "square", "disk", "triangle", "bar", "ring"],
    "context": ["background", "water", "road", "boat", "car"],
    "context_far": ["background", "water", "road", "boat", "car"],
}
ASPECT = {"shapes": 0.75, "context": 0.75, "context_far": 0.375}  # height / width
SHAPE_TINTS = {1: (200, 60, 60), 2: (60, 170, 70), 3: (70, 90, 210), 4: (210, 180, 50), 5: (170, 70, 190)}


def _texture(rng: np.random.Generator, h: int, w: int, base: Tuple[int, int, int], amp: float) -> np.ndarray:
    """A smooth color field around ``base`` with fine noise: (h, w, 3) float32."""
    coarse = rng.normal(0, amp, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, amp / 3, (h, w, 3)).astype(np.float32)
    return np.asarray(base, np.float32) + field + noise


def _shape_mask(rng: np.random.Generator, cls: int, h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    r = int(rng.uniform(0.14, 0.26) * min(h, w))
    cy, cx = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
    if cls == 1:  # square, slightly rotated
        box = cv2.boxPoints(((cx, cy), (2 * r, 2 * r), float(rng.uniform(-20, 20))))
        cv2.fillPoly(mask, [box.astype(np.int32)], 1)
    elif cls == 2:  # disk
        cv2.circle(mask, (cx, cy), r, 1, -1)
    elif cls == 3:  # triangle
        ang = rng.uniform(0, 2 * np.pi)
        pts = [(cx + r * np.cos(ang + k * 2 * np.pi / 3), cy + r * np.sin(ang + k * 2 * np.pi / 3)) for k in range(3)]
        cv2.fillPoly(mask, [np.asarray(pts, np.int32)], 1)
    elif cls == 4:  # bar
        box = cv2.boxPoints(((cx, cy), (2.2 * r, 0.8 * r), float(rng.uniform(0, 180))))
        cv2.fillPoly(mask, [box.astype(np.int32)], 1)
    else:  # ring
        cv2.circle(mask, (cx, cy), r, 1, max(3, r // 2))
    return mask


def _ignore_border(label: np.ndarray, mask: np.ndarray) -> None:
    """Mark a 1-pixel outline of ``mask`` as 255, like VOC's object boundaries."""
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    # the demo configs read it with the default data.ignore_label
    label[edge & (cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0) & (mask == 0)] = DataConfig.ignore_label


def make_shapes_sample(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One ``shapes`` image (H, W, 3 uint8 RGB) and label (H, W uint8)."""
    base = tuple(int(v) for v in rng.integers(70, 190, 3))
    image = _texture(rng, h, w, base, 25.0)
    label = np.zeros((h, w), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, 6))
        mask = _shape_mask(rng, cls, h, w)
        color = np.asarray(SHAPE_TINTS[cls], np.float32) + rng.normal(0, 15, 3).astype(np.float32)
        obj = _texture(rng, h, w, tuple(color), 10.0)
        image[mask > 0] = obj[mask > 0]
        label[mask > 0] = cls
        _ignore_border(label, mask)
    return np.clip(image, 0, 255).astype(np.uint8), label


def _hull_mask(h: int, w: int, cx: int, cy: int, r: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    hull = np.asarray([(cx - r, cy), (cx + r, cy), (cx + int(0.7 * r), cy + r // 2), (cx - int(0.7 * r), cy + r // 2)],
                      np.int32)
    cv2.fillPoly(mask, [hull], 1)
    cv2.rectangle(mask, (cx - r // 3, cy - r // 2), (cx + r // 3, cy), 1, -1)
    return mask


def make_context_sample(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One ``context`` image and label: identical hulls, class decided by the water/road band."""
    water = bool(rng.random() < 0.5)
    image = _texture(rng, h, w, (150, 140, 120), 12.0)
    label = np.zeros((h, w), np.uint8)
    band = int(h * 0.72)
    yy, xx = np.mgrid[band:h, 0:w]
    if water:
        stripes = 18 * np.sin(xx / 3.0 + yy / 1.5)[..., None]
        image[band:] = _texture(rng, h - band, w, (40, 90, 170), 8.0) + stripes
        label[band:] = 1
    else:
        image[band:] = _texture(rng, h - band, w, (95, 95, 95), 6.0)
        dash = ((xx // 8) % 2 == 0) & (np.abs(yy - (band + h) // 2) <= 1)
        image[band:][dash] = 235
        label[band:] = 2
    r = max(4, int(0.16 * min(h, w)))
    for _ in range(int(rng.integers(2, 4))):
        cx = int(rng.integers(r + 1, w - r - 1))
        cy = int(rng.integers(r, max(r + 1, band - 2 * r)))
        mask = _hull_mask(h, w, cx, cy, r)
        image[mask > 0] = _texture(rng, h, w, (170, 50, 40), 6.0)[mask > 0]
        label[mask > 0] = 3 if water else 4
    return np.clip(image, 0, 255).astype(np.uint8), label


def _cue(rng: np.random.Generator, h: int, w: int, water: bool) -> np.ndarray:
    """A water (blue, wavy) or road (gray, dashed) patch of (h, w, 3) float32."""
    yy, xx = np.mgrid[0:h, 0:w]
    if water:
        return _texture(rng, h, w, (40, 90, 170), 8.0) + (18 * np.sin(xx / 1.5 + yy / 3.0))[..., None]
    patch = _texture(rng, h, w, (95, 95, 95), 6.0)
    patch[((yy // 8) % 2 == 0) & (np.abs(xx - w // 2) <= 1)] = 235
    return patch


def make_context_far_sample(rng: np.random.Generator, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """One ``context_far`` image: a water/road strip on one side, identical hulls in the far third."""
    water = bool(rng.random() < 0.5)
    image = _texture(rng, h, w, (150, 140, 120), 12.0)
    label = np.zeros((h, w), np.uint8)
    strip = max(4, int(0.2 * w))
    image[:, :strip] = _cue(rng, h, strip, water)
    label[:, :strip] = 1 if water else 2
    r = max(4, int(0.16 * h))
    lo = int(w * 2 / 3) + r + 1  # hulls start two thirds across: far from the strip
    for _ in range(int(rng.integers(1, 3))):
        cx = int(rng.integers(lo, max(lo + 1, w - r - 1)))
        cy = int(rng.integers(r + 1, max(r + 2, h - r - 1)))
        mask = _hull_mask(h, w, cx, cy, r)
        image[mask > 0] = _texture(rng, h, w, (170, 50, 40), 6.0)[mask > 0]
        label[mask > 0] = 3 if water else 4
    if rng.random() < 0.5:  # the strip on the right and the hulls on the left as often
        image, label = image[:, ::-1], label[:, ::-1]
    return np.clip(image, 0, 255).astype(np.uint8), np.ascontiguousarray(label)


MAKERS = {"shapes": make_shapes_sample, "context": make_context_sample, "context_far": make_context_far_sample}


DATA_FILES = ("train.txt", "val.txt", "info.json", "JPEGImages/", "SegmentationClassAug/")


FOLDER_MASKS = ("index", "binary", "colors")


def generate(out: "str | Path | OutputFolder", task: str = "shapes", num: int = 100, size: int = 128, seed: int = 0,
             val_fraction: float = 0.2, layout: str = "voc", masks: str = "index") -> Dict[str, object]:
    """Write the data set under ``out``; returns its info (also saved as ``info.json``).

    Images are ``size`` wide and ``ASPECT[task] * size`` high.  Sample ``i`` depends only
    on ``(seed, i)``, so the same call writes the same files.  ``layout`` ``folders`` writes what a user brings
    instead: ``images/`` and ``masks/`` of the same names, no lists, the masks as ``masks`` says (``index``:
    class indices, ``binary``: 0 background / 255 any object, ``colors``: RGB in the palette's colours), without
    the ignored outlines.
    """
    if layout == "folders":
        return _generate_folders(out, task, num, size, seed, masks)
    if layout != "voc":
        raise DataError(f"unknown layout '{layout}'; choose voc or folders")
    if task not in TASKS:
        raise DataError(f"unknown task '{task}'; choose {', '.join(TASKS)}")
    if num < 2:
        raise DataError("num must be >= 2 (at least one train and one val sample)")
    if size < 32:
        raise DataError("size must be >= 32")
    folder = as_folder(out, "--out", "synthetic")
    folder.refuse_earlier(DATA_FILES, "pass --overwrite to write it again, or choose another --out")
    h, w = int(size * ASPECT[task]), size
    make = MAKERS[task]
    palette = voc_palette()
    n_val = min(num - 1, max(1, int(round(num * val_fraction))))
    lines: List[str] = []
    for i in range(num):
        image, label = make(np.random.default_rng([seed, i]), h, w)
        name = f"{task}_{i:05d}"
        jpg = f"JPEGImages/{name}.jpg"
        folder.put_bytes(jpg, encode_image(folder.path(jpg), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, 95]))
        folder.put_bytes(f"SegmentationClassAug/{name}.png", palette_png(label, palette))
        lines.append(f"JPEGImages/{name}.jpg SegmentationClassAug/{name}.png")
    folder.put_text("train.txt", "\n".join(lines[: num - n_val]) + "\n")
    folder.put_text("val.txt", "\n".join(lines[num - n_val:]) + "\n")
    info = {"task": task, "classes": len(TASKS[task]), "class_names": TASKS[task], "num": num,
            "train": num - n_val, "val": n_val, "height": h, "width": w, "seed": seed}
    folder.put_json("info.json", info)
    out = folder.root
    logger.info("wrote %d %s samples (%d train, %d val) of %dx%d to %s", num, task, num - n_val, n_val, w, h, out)
    return info


def _generate_folders(out: "str | Path | OutputFolder", task: str, num: int, size: int, seed: int,
                      masks: str) -> Dict[str, object]:
    """``generate(layout="folders")``: a user's two folders of photos and masks."""
    if task not in TASKS or masks not in FOLDER_MASKS or num < 2 or size < 32:
        raise DataError(f"synthetic folders: need a task of {', '.join(TASKS)}, masks of {', '.join(FOLDER_MASKS)}, "
                        f"num >= 2 and size >= 32")
    folder = as_folder(out, "--out", "synthetic")
    folder.refuse_earlier(["images/", "masks/", "info.json"], "pass --overwrite to write it again")
    h, w = int(size * ASPECT[task]), size
    palette = voc_palette()
    for i in range(num):
        image, label = MAKERS[task](np.random.default_rng([seed, i]), h, w)
        label = np.where(label == DataConfig.ignore_label, 0, label).astype(np.uint8)
        name = f"{task}_{i:05d}"
        jpg, png = f"images/{name}.jpg", f"masks/{name}.png"
        folder.put_bytes(jpg, encode_image(folder.path(jpg), cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                           [cv2.IMWRITE_JPEG_QUALITY, 95]))
        if masks == "binary":
            mask = np.where(label > 0, 255, 0).astype(np.uint8)
        elif masks == "colors":
            mask = cv2.cvtColor(palette[label], cv2.COLOR_RGB2BGR)
        else:
            mask = label
        folder.put_bytes(png, encode_image(folder.path(png), mask))
    names = ["background", "object"] if masks == "binary" else TASKS[task]
    info = {"task": task, "layout": "folders", "masks": masks, "classes": len(names), "class_names": names,
            "class_colors": palette[:len(names)].tolist(), "num": num, "height": h, "width": w, "seed": seed}
    folder.put_json("info.json", info)
    logger.info("wrote %d %s photos and %s masks of %dx%d to %s/images and %s/masks", num, task, masks, w, h,
                folder.root, folder.root)
    return info
