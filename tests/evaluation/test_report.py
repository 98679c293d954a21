"""report.md and its pictures: per-image IoU, the kept best/worst images, the normalized heatmap, the bars."""
import numpy as np
import pytest

from src.data.labels import voc_palette
from src.evaluation.metrics import scores_from_matrix
from src.evaluation.report import Gallery, image_iou, normalized_rows, plot_confusion, plot_per_class, write_report

NAMES = ["background", "disc", "square", "triangle"]


def test_image_iou_counts_only_classes_seen_and_skips_ignored_pixels():
    label = np.array([[0, 0, 1, 1], [0, 0, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 3]], np.uint8)
    # class 0: inter 3, union 4; class 1: inter 3, union 4; class 3 only on an ignored pixel: not seen
    assert image_iou(pred, label, 4) == pytest.approx(0.75)
    assert np.isnan(image_iou(pred, np.full_like(label, 255), 4))


def test_confusion_rows_sum_to_one_and_empty_rows_stay_zero(tmp_path):
    m = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]], np.int64)
    norm = normalized_rows(m)
    np.testing.assert_allclose(norm.sum(axis=1), [1, 1, 0])
    np.testing.assert_allclose(norm[0], [0.8, 0.2, 0.0])
    plotted = plot_confusion(m, ["a", "b", "c"], tmp_path / "c.png")
    np.testing.assert_allclose(plotted, norm)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_gallery_keeps_exactly_the_worst_and_best(tmp_path):
    rng = np.random.default_rng(0)
    label = rng.integers(0, 4, (20, 30)).astype(np.uint8)
    gallery = Gallery(classes=4, keep=2)
    expected = {}
    for k in range(9):
        pred = label.copy()
        wrong = rng.random(label.shape) < k / 10  # more wrong pixels, lower IoU
        pred[wrong] = (pred[wrong] + 1) % 4
        image = rng.integers(0, 255, (20, 30, 3)).astype(np.uint8)
        expected[f"img{k}"] = gallery.add(f"img{k}", image, label, pred)
    ranked = sorted(expected, key=expected.get)
    assert [w[0] for w in gallery.worst()] == ranked[:2]
    assert [b[0] for b in gallery.best()] == ranked[::-1][:2]
    assert len(gallery.scores) == 9 and gallery.best()[0][4].shape == (20, 30)


def test_report_names_every_class_and_shows_the_numbers(tmp_path):
    m = np.array([[50, 5, 0, 0], [4, 30, 1, 0], [0, 2, 20, 3], [0, 0, 0, 0]], np.int64)
    scores = scores_from_matrix(m)
    bars = plot_per_class(scores, NAMES, tmp_path / "bars.png")
    assert bars["labels"] == NAMES and bars["values"][1] == pytest.approx(scores.iou[1])
    gallery = Gallery(classes=4, keep=1)
    label = np.zeros((8, 8), np.uint8)
    label[2:6, 2:6] = 1
    gallery.add("good", np.zeros((8, 8, 3), np.uint8), label, label)
    gallery.add("bad", np.zeros((8, 8, 3), np.uint8), label, np.zeros_like(label))  # bg 48/64, disc 0
    path = write_report(tmp_path / "r", scores, NAMES, m, "Synthetic-ss", voc_palette(), gallery, ["header line"])
    text = path.read_text()
    for name, iou in zip(NAMES, scores.iou):
        assert f"| {name} | {iou:.4f} |" in text
    assert f"Synthetic-ss:mIoU/mAcc/allAcc {scores.miou:.4f}/{scores.macc:.4f}/{scores.allacc:.4f}" in text
    assert "- worst: bad (image IoU 0.375)" in text and "- best: good (image IoU 1.000)" in text
    for picture in ("per_class_iou.png", "confusion.png", "best_worst.png"):
        assert f"]({picture})" in text and (tmp_path / "r" / picture).stat().st_size > 1000


def test_gallery_stores_float_images_as_uint8_pictures():
    gallery = Gallery(classes=2, keep=1)
    label = np.zeros((4, 4), np.uint8)
    gallery.add("f", np.full((4, 4, 3), 300.0, np.float32), label, label)  # float RGB as the loader gives
    picture = gallery.best()[0][2]
    assert picture.dtype == np.uint8 and picture.max() == 255
