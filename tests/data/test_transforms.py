"""data.transforms: rotate, scale, crop/pad and normalize keep labels exact and borders mean / ignore."""
import numpy as np

from src.data.transforms import crop, normalize, pad_to, rand_rotate, rand_scale

IGNORE = 255  # the value these tests' labels use for unlabeled pixels
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


def test_rotate_borders_mean_and_ignore():
    rng = np.random.default_rng(0)
    image = np.full((41, 41, 3), 7.0, np.float32)
    label = np.zeros((41, 41), np.uint8)
    img, lab = rand_rotate(image, label, rng, 10, 10, prob=1.0, mean=MEAN, ignore_label=IGNORE)
    assert lab[0, 0] == IGNORE and lab[20, 20] == 0
    np.testing.assert_allclose(img[0, 0], MEAN, atol=1e-3)
    np.testing.assert_allclose(img[20, 20], 7.0)


def test_scale_keeps_label_values_nearest():
    rng = np.random.default_rng(1)
    label = np.random.default_rng(2).choice([0, 3, 255], (30, 40)).astype(np.uint8)
    img, lab = rand_scale(np.zeros((30, 40, 3), np.float32), label, rng, 1.5, 1.5)
    assert lab.shape == (45, 60) and img.shape[:2] == (45, 60)
    assert set(np.unique(lab)) <= {0, 3, 255}


def test_crop_pads_small_images_with_mean_and_ignore():
    image = np.full((10, 20, 3), 50.0, np.float32)
    label = np.ones((10, 20), np.uint8)
    img, lab = crop(image, label, np.random.default_rng(0), 16, 24, MEAN, IGNORE)
    assert img.shape == (16, 24, 3) and lab.shape == (16, 24)
    # pad 6 rows (3 top, 3 bottom) and 4 cols (2 left, 2 right)
    assert (lab[:3] == IGNORE).all() and (lab[-3:] == IGNORE).all() and (lab[:, :2] == IGNORE).all()
    assert (lab[3:13, 2:22] == 1).all()
    np.testing.assert_allclose(img[0, 0], MEAN)
    img2, lab2 = pad_to(image, label, 5, 5, MEAN, IGNORE)
    assert img2.shape == image.shape  # already big enough: untouched


def test_normalize_layout_and_values():
    image = np.zeros((2, 3, 3), np.float32)
    image[..., 0] = 255
    out = normalize(image, MEAN, STD)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0, 0], (255 - MEAN[0]) / STD[0], rtol=1e-6)
