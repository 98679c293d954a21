"""The reference test-time protocol (semseg ``tool/test.py``), batched.

For each scale: resize the long side to ``round(scale * base_size)``, pad to
the crop with the mean, cut sliding windows with stride
``ceil(crop * stride_rate)``, run every window and its horizontal flip
through the network in batches, average the softmax probabilities of a
window and its flip, average overlapping windows, remove the padding, resize
the probabilities back to the image with bilinear interpolation; average the
scales; argmax.

The network is any ``predict(batch NCHW float32) -> logits NCHW`` callable,
so a MindSpore Cell, a MINDIR or an ONNX model go through the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from src.config import DataConfig, EvalConfig
from src.errors import PSPNetError
from src.data.transforms import normalize, pad_with_mean
from src.runtime.types import Predict



@dataclass(frozen=True)
class Protocol:
    """Evaluation settings; defaults are semseg's VOC single-scale test."""

    classes: int
    crop_h: int = 473
    crop_w: int = 473
    base_size: int = 512
    scales: Tuple[float, ...] = (1.0,)
    flip: bool = True
    stride_rate: float = 2.0 / 3.0
    batch_size: int = 4
    mean: Tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: Tuple[float, float, float] = (58.395, 57.12, 57.375)
    max_image_gb: float = 2.0  # the most memory one image's probability maps may take (eval.max_image_gb)


class WorkingSetError(PSPNetError, MemoryError):
    """An image whose probability maps (classes x scales x pixels) would take more memory than the budget."""


def working_set_bytes(h: int, w: int, p: Protocol) -> int:
    """Memory the protocol holds for one h x w image: the averaged class map at the image's size and one map
    resized to it, plus each scale's merged map and its window accumulator (float32)."""
    scaled = 0
    for scale in p.scales:
        sh, sw = scaled_size(h, w, max(1, int(round(scale * p.base_size))))
        scaled = max(scaled, 2 * max(sh, p.crop_h) * max(sw, p.crop_w))
    return 4 * p.classes * (2 * h * w + scaled)


def check_working_set(h: int, w: int, p: Protocol, what: str = "an image") -> None:
    """One :class:`WorkingSetError` naming ``what`` when its working set exceeds ``p.max_image_gb``."""
    need = working_set_bytes(h, w, p)
    if need > p.max_image_gb * 1e9:
        raise WorkingSetError(f"{what} ({w}x{h}) needs about {need / 1e9:.1f} GB for its {p.classes}-class "
                              f"probability maps at scales {list(p.scales)}; the budget is eval.max_image_gb "
                              f"{p.max_image_gb:g}: raise it if the machine has the memory, or shrink the image")


def window_starts(size: int, crop: int, stride: int) -> List[int]:
    """Start offsets of windows of ``crop`` covering ``size`` (>= crop); the last one ends at ``size``."""
    if size < crop:
        raise ValueError(f"size {size} smaller than the crop {crop}: pad first")
    grid = int(math.ceil(float(size - crop) / stride) + 1)
    return [min(i * stride + crop, size) - crop for i in range(grid)]


def scaled_size(h: int, w: int, long_size: int) -> Tuple[int, int]:
    """(new_h, new_w) with the long side = ``long_size`` and the aspect ratio kept (semseg rounding).

    The short side is at least 1 pixel (a 1x20000 strip would otherwise scale to 0)."""
    if h > w:
        return long_size, max(1, int(round(long_size / float(h) * w)))
    return max(1, int(round(long_size / float(w) * h))), long_size


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def run_batches(predict: Predict, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """``predict`` over ``inputs`` in batches of exactly ``batch_size`` (the last one zero-padded).

    A fixed batch shape means one compiled graph, and fits models exported
    for a fixed input shape.
    """
    outs = []
    for start in range(0, len(inputs), batch_size):
        chunk = inputs[start:start + batch_size]
        outs.append(np.asarray(predict(full_batch(chunk, batch_size)))[:len(chunk)])
    return np.concatenate(outs)


def full_batch(chunk: np.ndarray, batch_size: int) -> np.ndarray:
    """``chunk`` zero-padded at the end to ``batch_size`` items (contiguous), for a model of fixed batch."""
    n = len(chunk)
    if n < batch_size:
        chunk = np.concatenate([chunk, np.zeros((batch_size - n,) + chunk.shape[1:], chunk.dtype)])
    return np.ascontiguousarray(chunk)


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of one scaled image are, so their outputs can be put back together."""

    ori_h: int
    ori_w: int
    top: int
    left: int
    padded_h: int
    padded_w: int
    boxes: Tuple[Tuple[int, int], ...]
    flip: bool

    @property
    def num_inputs(self) -> int:
        return len(self.boxes) * (2 if self.flip else 1)


def plan_windows(image: np.ndarray, p: Protocol) -> Tuple[np.ndarray, WindowPlan]:
    """Pad an already-resized RGB image (H', W', 3) to the crop with the mean and cut the normalized windows.

    Returns ``(inputs, plan)``: inputs are (K, 3, crop_h, crop_w) float32, all
    windows, then (with flip) all their mirror images.
    """
    ori_h, ori_w = image.shape[:2]
    image, top, left = pad_with_mean(image, p.crop_h, p.crop_w, p.mean)
    new_h, new_w = image.shape[:2]
    stride_h, stride_w = int(math.ceil(p.crop_h * p.stride_rate)), int(math.ceil(p.crop_w * p.stride_rate))
    boxes = tuple((y, x) for y in window_starts(new_h, p.crop_h, stride_h)
                  for x in window_starts(new_w, p.crop_w, stride_w))
    crops = np.stack([normalize(image[y:y + p.crop_h, x:x + p.crop_w], p.mean, p.std) for y, x in boxes])
    if p.flip:
        crops = np.concatenate([crops, crops[:, :, :, ::-1]])
    return np.ascontiguousarray(crops), WindowPlan(ori_h, ori_w, top, left, new_h, new_w, boxes, p.flip)


def merge_windows(logits: np.ndarray, plan: WindowPlan, p: Protocol) -> np.ndarray:
    """Softmax the window logits (K, C, crop_h, crop_w), average flips and overlaps, drop the padding.

    Returns probabilities (H', W', C) of the scaled image.
    """
    if logits.shape[0] != plan.num_inputs:
        raise ValueError(f"got {logits.shape[0]} window outputs, the plan has {plan.num_inputs}")
    probs = softmax(logits.astype(np.float32), axis=1)
    if probs.shape[1] != p.classes:
        raise ValueError(f"the model outputs {probs.shape[1]} classes but {p.classes} are configured")
    if plan.flip:
        n = len(plan.boxes)
        probs = (probs[:n] + probs[n:, :, :, ::-1]) / 2
    total = np.zeros((p.classes, plan.padded_h, plan.padded_w), np.float32)
    count = np.zeros((plan.padded_h, plan.padded_w), np.float32)
    for (y, x), prob in zip(plan.boxes, probs):
        total[:, y:y + p.crop_h, x:x + p.crop_w] += prob
        count[y:y + p.crop_h, x:x + p.crop_w] += 1
    total /= count[None]
    region = total[:, plan.top:plan.top + plan.ori_h, plan.left:plan.left + plan.ori_w]
    return np.ascontiguousarray(region.transpose(1, 2, 0))


def predict_scale(image: np.ndarray, predict: Predict, p: Protocol) -> np.ndarray:
    """Probabilities (H', W', C) for one already-resized RGB image by batched sliding windows."""
    inputs, plan = plan_windows(image, p)
    return merge_windows(run_batches(predict, inputs, p.batch_size), plan, p)


def resize_probs(probs: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of (H, W, C) probabilities to (h, w, C), any number of channels."""
    if probs.shape[:2] == (h, w):
        return probs
    return cv2.resize(probs, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, probs.shape[2])


def scaled_images(image: np.ndarray, p: Protocol) -> List[np.ndarray]:
    """The image resized for each scale (long side ``round(scale * base_size)``), bilinear."""
    h, w = image.shape[:2]
    out = []
    for scale in p.scales:
        new_h, new_w = scaled_size(h, w, int(round(scale * p.base_size)))
        out.append(cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
    return out


def combine_scales(per_scale: Sequence[np.ndarray], h: int, w: int) -> np.ndarray:
    """Resize each scale's (H', W', C) probabilities to (h, w) and average them."""
    return sum(resize_probs(probs, h, w) for probs in per_scale) / len(per_scale)


def predict_probs(image: np.ndarray, predict: Predict, p: Protocol) -> np.ndarray:
    """Class probabilities (H, W, C) for an RGB float image (H, W, 3), averaged over the scales."""
    h, w = image.shape[:2]
    return combine_scales([predict_scale(scaled, predict, p) for scaled in scaled_images(image, p)], h, w)


def segment(image: np.ndarray, predict: Predict, p: Protocol, what: str = "an image") -> np.ndarray:
    """(H, W) uint8 class map for an RGB float image (``what`` names it if it exceeds the memory budget)."""
    check_working_set(image.shape[0], image.shape[1], p, what)
    return predict_probs(image, predict, p).argmax(axis=2).astype(np.uint8)


def protocol_from_config(data_cfg: DataConfig, eval_cfg: EvalConfig) -> Protocol:
    """The protocol with every value from the config."""
    return Protocol(classes=data_cfg.classes, crop_h=eval_cfg.test_h, crop_w=eval_cfg.test_w,
                    base_size=eval_cfg.base_size, scales=tuple(eval_cfg.scales), flip=eval_cfg.flip,
                    stride_rate=eval_cfg.stride_rate, batch_size=eval_cfg.batch_size,
                    mean=tuple(data_cfg.mean), std=tuple(data_cfg.std), max_image_gb=eval_cfg.max_image_gb)
