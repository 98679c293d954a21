"""src.evaluation.protocol: the sliding-window, flip and multi-scale evaluation protocol - window placement,
scaled sizes, padding removed, fixed batch shapes, flips and scales averaged, odd image shapes, and a model with
the wrong class count refused."""
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from src.evaluation.protocol import (Protocol, merge_windows, plan_windows, predict_probs, predict_scale,
                                      run_batches, scaled_size, segment, window_starts)


# ---- geometry --------------------------------------------------------------

@pytest.mark.parametrize("size,crop,stride", [(473, 473, 316), (512, 473, 316), (1000, 473, 316), (40, 33, 22)])
def test_window_starts_cover_the_padded_image(size, crop, stride):
    starts = window_starts(size, crop, stride)
    assert starts[0] == 0 and starts[-1] == size - crop
    covered = np.zeros(size, int)
    for s in starts:
        covered[s:s + crop] += 1
    assert covered.min() >= 1
    assert len(starts) == int(math.ceil((size - crop) / stride) + 1)


def test_scaled_size_keeps_aspect_with_long_side():
    assert scaled_size(375, 500, 512) == (384, 512)
    assert scaled_size(500, 375, 512) == (512, 384)


class Recorder:
    """A fake network: logits that encode the input's mean color, recording batch shapes."""

    def __init__(self, classes=3):
        self.classes = classes
        self.shapes = []

    def __call__(self, x):
        self.shapes.append(x.shape)
        n, _, h, w = x.shape
        ramp = np.linspace(-1, 1, w, dtype=np.float32)[None, None, None, :]
        out = np.concatenate([x[:, :1] * (c + 1) + ramp * c for c in range(self.classes)], axis=1)
        return out


def _protocol(**kw):
    base = dict(classes=3, crop_h=33, crop_w=33, base_size=48, scales=(1.0,), flip=True, stride_rate=2 / 3,
                batch_size=4)
    base.update(kw)
    return Protocol(**base)


def test_count_map_padding_removed_and_batches_fixed():
    p = _protocol()
    image = np.random.default_rng(0).uniform(0, 255, (20, 50, 3)).astype(np.float32)  # shorter than the crop
    inputs, plan = plan_windows(image, p)
    assert (plan.padded_h, plan.padded_w) == (33, 50) and plan.top == 6 and plan.left == 0
    assert plan.boxes == ((0, 0), (0, 17)) and len(inputs) == 4  # 2 windows + 2 flips
    fake = Recorder()
    probs = predict_scale(image, fake, p)
    assert probs.shape == (20, 50, 3)
    assert all(s[0] == 4 for s in fake.shapes)  # one fixed batch shape
    np.testing.assert_allclose(probs.sum(axis=2), 1.0, rtol=1e-5)
    # padding rows are mean-colored (normalized to 0): the result must come from the real rows only
    direct = merge_windows(run_batches(fake, inputs, 4), plan, p)
    np.testing.assert_array_equal(direct, probs)


def test_flip_average_equals_mean_of_the_two_passes():
    p_flip, p_plain = _protocol(flip=True, batch_size=1), _protocol(flip=False, batch_size=1)
    image = np.random.default_rng(1).uniform(0, 255, (33, 33, 3)).astype(np.float32)
    fake = Recorder()
    both = predict_scale(image, fake, p_flip)
    plain = predict_scale(image, fake, p_plain)
    mirrored = predict_scale(np.ascontiguousarray(image[:, ::-1]), fake, p_plain)[:, ::-1]
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-5, atol=1e-6)


def test_multi_scale_is_the_average_of_single_scales():
    image = np.random.default_rng(2).uniform(0, 255, (30, 40, 3)).astype(np.float32)
    fake = Recorder()
    scales = (0.75, 1.0, 1.5)
    multi = predict_probs(image, fake, _protocol(scales=scales))
    singles = [predict_probs(image, fake, _protocol(scales=(s,))) for s in scales]
    np.testing.assert_allclose(multi, sum(singles) / 3, rtol=1e-5, atol=1e-6)


def test_wide_tall_gray_and_rgba_images(tmp_path):
    from src.data.dataset import read_image

    fake = Recorder()
    for shape in [(20, 300), (300, 20), (33, 33), (5, 7)]:
        img = np.random.default_rng(3).uniform(0, 255, shape + (3,)).astype(np.float32)
        assert segment(img, fake, _protocol()).shape == shape
    cv2.imwrite(str(tmp_path / "g.png"), np.full((10, 12), 77, np.uint8))
    Image.fromarray(np.zeros((10, 12, 4), np.uint8), mode="RGBA").save(tmp_path / "a.png")
    for name in ("g.png", "a.png"):
        img = read_image(str(tmp_path / name))
        assert img.shape == (10, 12, 3)
        assert segment(img, fake, _protocol()).shape == (10, 12)


def test_wrong_class_count_from_model():
    with pytest.raises(ValueError, match="outputs 3 classes but 5"):
        predict_scale(np.zeros((33, 33, 3), np.float32), Recorder(3), _protocol(classes=5))
