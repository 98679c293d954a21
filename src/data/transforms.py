"""The reference augmentation recipe (semseg ``util/transform.py``) on numpy arrays.

Images are (H, W, 3) float32 RGB in 0..255, labels (H, W) uint8.  Every
random step takes an explicit ``np.random.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np

from src.config import DataConfig, TrainConfig


def rand_scale(image, label, rng, scale_min: float, scale_max: float):
    """Scale both by one factor drawn from [scale_min, scale_max]: image bilinear, label nearest."""
    s = rng.uniform(scale_min, scale_max)
    h, w = label.shape[:2]
    if round(h * s) < 1 or round(w * s) < 1:  # a thin strip: keep one pixel (OpenCV refuses an empty size)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
                cv2.resize(label, size, interpolation=cv2.INTER_NEAREST))
    image = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label, None, fx=s, fy=s, interpolation=cv2.INTER_NEAREST)
    return image, label


def rand_rotate(image, label, rng, angle_min: float, angle_max: float, prob: float, mean: Sequence[float],
                ignore_label: int):
    """With probability ``prob`` rotate about the center; the image border is ``mean``, the label's ``ignore_label``."""
    if rng.random() >= prob:
        return image, label
    angle = rng.uniform(angle_min, angle_max)
    h, w = label.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1)
    image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=tuple(float(v) for v in mean))
    label = cv2.warpAffine(label, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=ignore_label)
    return image, label


def rand_blur(image, label, rng, prob: float, ksize: int = 5):
    """With probability ``prob`` a Gaussian blur (ksize x ksize, sigma from the size) on the image."""
    if rng.random() < prob:
        image = cv2.GaussianBlur(image, (ksize, ksize), 0)
    return image, label


def rand_hflip(image, label, rng, prob: float = 0.5):
    """With probability ``prob`` flip both left-right."""
    if rng.random() < prob:
        image = np.ascontiguousarray(image[:, ::-1])
        label = np.ascontiguousarray(label[:, ::-1])
    return image, label


def pad_with_mean(image: np.ndarray, crop_h: int, crop_w: int, mean: Sequence[float]
                  ) -> Tuple[np.ndarray, int, int]:
    """Pad to at least the crop, split evenly (extra on the bottom/right), with the mean; returns (image, top, left).

    The one padding rule of training crops and of the evaluation windows (semseg pads both alike).
    """
    h, w = image.shape[:2]
    pad_h, pad_w = max(crop_h - h, 0), max(crop_w - w, 0)
    top, left = pad_h // 2, pad_w // 2
    if pad_h or pad_w:
        image = cv2.copyMakeBorder(image, top, pad_h - top, left, pad_w - left, cv2.BORDER_CONSTANT,
                                   value=tuple(float(v) for v in mean))
    return image, top, left


def pad_to(image, label, crop_h: int, crop_w: int, mean: Sequence[float], ignore_label: int):
    """Pad image and label alike to at least crop size: the image with the mean, the label with ``ignore_label``."""
    h, w = label.shape
    padded, top, left = pad_with_mean(image, crop_h, crop_w, mean)
    if padded.shape[:2] != (h, w):
        label = cv2.copyMakeBorder(label, top, padded.shape[0] - h - top, left, padded.shape[1] - w - left,
                                   cv2.BORDER_CONSTANT, value=ignore_label)
    return padded, label


def crop(image, label, rng, crop_h: int, crop_w: int, mean: Sequence[float], ignore_label: int,
         center: bool = False):
    """Pad to the crop if smaller, then a random (or center) crop of crop_h x crop_w."""
    image, label = pad_to(image, label, crop_h, crop_w, mean, ignore_label)
    h, w = label.shape
    if center:
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
    else:
        top, left = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
    return image[top:top + crop_h, left:left + crop_w], label[top:top + crop_h, left:left + crop_w]


def normalize(image, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(H, W, 3) RGB 0..255 -> (3, H, W) float32, (x - mean) / std."""
    out = (image.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


@dataclass
class TrainTransform:
    """RandScale -> RandRotate -> GaussianBlur -> HFlip -> random Crop -> Normalize (semseg order).

    Every range and probability is the config's own field (``train.crop_h``, ``train.scale_min``, ...).
    """

    recipe: TrainConfig
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    ignore_label: int

    AUG_BYTES_PER_PIXEL = 36  # measured: a 4096x4096 image at scale 2.0 peaked at 2.4 GB (float32 copies)

    def working_set_bytes(self, shape: Sequence[int]) -> float:
        """Memory one sample of ``shape`` (H, W, ...) may take while it is augmented, at the largest scale."""
        return shape[0] * shape[1] * self.recipe.scale_max ** 2 * self.AUG_BYTES_PER_PIXEL

    @property
    def budget_bytes(self) -> float:
        """``train.max_image_gb`` in bytes."""
        return self.recipe.max_image_gb * 1e9

    def __call__(self, image, label, rng):
        t = self.recipe
        image, label = rand_scale(image, label, rng, t.scale_min, t.scale_max)
        image, label = rand_rotate(image, label, rng, t.rotate_min, t.rotate_max, t.rotate_prob, self.mean,
                                   self.ignore_label)
        image, label = rand_blur(image, label, rng, t.blur_prob)
        image, label = rand_hflip(image, label, rng, t.flip_prob)
        image, label = crop(image, label, rng, t.crop_h, t.crop_w, self.mean, self.ignore_label)
        return normalize(image, self.mean, self.std), label


@dataclass
class CenterCropTransform:
    """Fast validation: pad to the crop with the mean / the ignore value, center crop, normalize (semseg's val transform)."""

    crop_h: int
    crop_w: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    ignore_label: int

    def __call__(self, image, label, rng=None):
        image, label = crop(image, label, None, self.crop_h, self.crop_w, self.mean, self.ignore_label, center=True)
        return normalize(image, self.mean, self.std), label


def train_transform_from_config(data_cfg: DataConfig, train_cfg: TrainConfig) -> TrainTransform:
    """The training transform with every range taken from the config."""
    return TrainTransform(train_cfg, tuple(data_cfg.mean), tuple(data_cfg.std), data_cfg.ignore_label)
