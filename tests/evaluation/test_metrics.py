"""src.evaluation.metrics: the confusion matrix and the scores derived from it (IoU, mIoU, mAcc, allAcc), checked
against hand-computed matrices, with ignored pixels, summed over images, and with out-of-range values refused."""
import numpy as np
import pytest

from src.evaluation.metrics import ConfusionMatrix


def test_metrics_against_hand_computed_matrix():
    cm = ConfusionMatrix(4, ignore_label=255)
    target = np.array([[0, 0, 1, 1], [1, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [2, 2, 0, 3]])
    cm.update(pred, target)
    expected = np.zeros((4, 4), int)
    for t, p in [(0, 0), (0, 1), (1, 1), (1, 1), (1, 2), (2, 2), (2, 0)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(cm.matrix, expected)
    s = cm.scores()
    # class 0: I=1, target 2, pred 2 -> U=3; class 1: I=2, target 3, pred 3 -> U=4; class 2: I=1, t 2, p 2 -> U=3
    np.testing.assert_allclose(s.iou[:3], [1 / 3, 2 / 4, 1 / 3])
    assert s.iou[3] == 0  # class 3 absent from both: counts as 0 in mIoU, as semseg's 1e-10 division does
    assert s.miou == pytest.approx((1 / 3 + 1 / 2 + 1 / 3 + 0) / 4)
    assert s.macc == pytest.approx((1 / 2 + 2 / 3 + 1 / 2 + 0) / 4)
    assert s.allacc == pytest.approx(4 / 7)
    assert s.miou_present == pytest.approx((1 / 3 + 1 / 2 + 1 / 3) / 3)
    assert list(s.present) == [True, True, True, False]


def test_all_ignore_image_adds_nothing_and_sums_over_images():
    cm = ConfusionMatrix(3)
    cm.update(np.zeros((4, 4), int), np.full((4, 4), 255))
    assert cm.matrix.sum() == 0
    a, b = ConfusionMatrix(3), ConfusionMatrix(3)
    a.update(np.array([0, 1]), np.array([0, 0]))
    b.update(np.array([2, 2]), np.array([2, 1]))
    total = ConfusionMatrix(3)
    total.merge(a.matrix)
    total.merge(b.matrix)
    # whole-set IoU is sum I / sum U, not the mean of per-image IoUs
    assert total.scores().iou[2] == pytest.approx(1 / 2)


def test_metrics_reject_out_of_range():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="target"):
        cm.update(np.array([0]), np.array([5]))
    with pytest.raises(ValueError, match="prediction"):
        cm.update(np.array([3]), np.array([0]))
