"""data.doctor: the scan of a list's label files and what it says about the data (0/255 binary masks, RGB colour
masks, 0 used as unlabeled, absent and rare classes, files in both splits, mostly ignored labels), the report of
`prepare check`, median-frequency class weights and the scan's cache record, on masks made as a user makes them."""
import json

import numpy as np
import pytest

from src.cli import main
from src.config import ConfigError, apply_overrides, Config
from src.data.dataset import DataError, Sample
from src.data.doctor import (ListScan, diagnose, median_frequency_weights, scan_fingerprint, scan_list, scan_samples,
                             training_label_check)
from src.data.labels import dataset_spec
from src.data.prepare import check_command
from user_masks import binary_masks as _binary_masks, config as _config, listed as _listed, photos as _photos


def test_doctor_names_binary_masks_and_exit_1_and_writes_report(tmp_path, capsys):
    root = tmp_path / "d"
    _photos(root, _binary_masks())
    _listed(root, 6, 4)
    cfg = _config(tmp_path, root)
    lines, clean = check_command(str(cfg), "both", None, None, "custom", None)
    text = "\n".join(lines)
    assert not clean
    assert "binary_masks" in text and "255 = data.ignore_label" in text and "--fix binary" in text
    assert main(["prepare", "check", "--config", str(cfg), "--out", str(tmp_path / "rep")]) == 1
    report = (tmp_path / "rep" / "data_report.md").read_text()
    assert "| 1 class_1 | 0 (0.0%) | 0 |" in report  # the foreground never counted as a class
    assert (tmp_path / "rep" / "class_pixels.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["prepare", "check", "--config", str(cfg), "--out", str(tmp_path / "rep")]) == 2  # no overwrite


def test_doctor_counts_classes_and_names_absent_zero_unlabeled_and_both_splits(tmp_path):
    root = tmp_path / "d"
    masks = [np.full((8, 8), v, np.uint8) for v in (1, 2, 1, 2)]  # 0 = unlabeled, 1..2 the classes
    _photos(root, masks)
    _listed(root, 4, 3)
    (root / "val.txt").write_text((root / "val.txt").read_text() + "photos/p0.jpg\tmasks/p0.png\n")
    lines, clean = check_command(str(_config(tmp_path, root)), "both", None, None, "custom", None)
    text = "\n".join(lines)
    assert not clean and "zero_unlabeled" not in text  # values 1..2 are classes 1 and 2 of... 2 classes: out of range
    assert "label_out_of_range" in text and "reduce_zero_label" in text
    lines, clean = check_command(str(_config(tmp_path, root, classes=3)), "both", None, None, "custom", None)
    text = "\n".join(lines)
    assert "absent_classes" in text and "class_0" in text and "in_both_splits" in text
    assert "| 1 class_1 | 128 (66.7%) | 2 |" in text
    # the class absent on purpose, and a val list of its own: clean
    (root / "val.txt").write_text("photos/p3.jpg\tmasks/p3.png\n")
    cfg = _config(tmp_path, root, classes=3, class_names=["sky", "cat", "dog"], allow_absent_classes=["sky"])
    assert check_command(str(cfg), "both", None, None, "custom", None)[1]


def test_doctor_names_rgb_masks_and_zero_as_unlabeled(tmp_path):
    root = tmp_path / "d"
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (200, 0, 0)
    _photos(root, [rgb, rgb, rgb])
    _listed(root, 3, 2)
    lines, clean = check_command(str(_config(tmp_path, root)), "both", None, None, "custom", None)
    assert not clean and "rgb_masks: train: 2 label file(s) are RGB colour masks" in "\n".join(lines)
    root2 = tmp_path / "z"
    _photos(root2, [np.array([[0, 1], [2, 2]], np.uint8)] * 3)
    _listed(root2, 3, 2)
    lines, _ = check_command(str(_config(tmp_path, root2)), "both", None, None, "custom", None)
    assert "zero_unlabeled" in "\n".join(lines) and "data.reduce_zero_label true" in "\n".join(lines)
    cfg = _config(tmp_path, root2, reduce_zero_label=True)
    assert check_command(str(cfg), "both", None, None, "custom", None)[1]


def test_median_frequency_weights_by_hand(tmp_path):
    root = tmp_path / "d"
    a = np.zeros((4, 4), np.uint8)
    a[:1] = 1  # image 0: class 0 12 px, class 1 4 px
    b = np.zeros((4, 4), np.uint8)  # image 1: class 0 16 px
    _photos(root, [a, b])
    (root / "l.txt").write_text("photos/p0.jpg masks/p0.png\nphotos/p1.jpg masks/p1.png\n")
    scan = scan_list(str(root / "l.txt"), str(root), dataset_spec("custom", 2))
    f0, f1 = 28 / 32, 4 / 16
    median = (f0 + f1) / 2
    np.testing.assert_allclose(median_frequency_weights(scan), [median / f0, median / f1], rtol=1e-5)


def test_a_few_0_255_masks_among_0_1_masks_are_named(tmp_path):
    root = tmp_path / "d"
    masks = _binary_masks(6, value=1)
    masks[1], masks[4] = masks[1] * 255, masks[4] * 255  # two saved the other way
    _photos(root, masks)
    _listed(root, 6, 6)
    (root / "val.txt").write_text("photos/p0.jpg\tmasks/p0.png\n")
    lines, clean = check_command(str(_config(tmp_path, root)), "train", None, None, "custom", None)
    assert not clean and "binary_masks: train: 2 of the masks hold only 0 and 255 while 4 hold class 1" in \
        "\n".join(lines)


def test_weights_that_vanish_in_float32_and_unknown_absent_classes_are_refused():
    with pytest.raises(ConfigError, match=r"all 0 \(in float32"):
        apply_overrides(Config(), ["data.dataset", "custom", "data.classes", "2", "train.class_weights", "[0, 1e-300]"])
    with pytest.raises(ConfigError, match="must be a list of finite numbers"):
        apply_overrides(Config(), ["data.dataset", "custom", "data.classes", "2", "train.class_weights", "[nan, 1]"])
    from src.data.doctor import check_allowed_absent

    with pytest.raises(ConfigError, match="data.allow_absent_classes names nope, which is no class"):
        check_allowed_absent(["nope"], dataset_spec("custom", 2))


# --- direct unit tests of the scan's counts, its diagnosis and its cache record -------------------------------------

def _two_masks(root):
    """Two 4x4 masks of a 3-class custom set: 0 and 1 in the first, 2 and the ignore value 255 in the second."""
    a = np.zeros((4, 4), np.uint8)
    a[0] = 1
    b = np.full((4, 4), 2, np.uint8)
    b[3] = 255
    photos, masks = _photos(root, [a, b])
    return [Sample(str(photos / f"p{i}.jpg"), str(masks / f"p{i}.png"), "l.txt", i + 1) for i in range(2)]


def test_a_scan_counts_pixels_images_and_ignored_and_survives_its_json_record(tmp_path):
    spec = dataset_spec("custom", 3)
    scan = scan_samples(_two_masks(tmp_path), spec, "l.txt")
    assert (scan.samples, scan.ok, scan.pixels, scan.ignored) == (2, 2, 32, 4)
    assert scan.class_pixels.tolist() == [12, 4, 12] and scan.class_images.tolist() == [1, 1, 1]
    assert scan.raw_values[255] == 4 and scan.ignored_share == pytest.approx(4 / 32)
    back = ListScan.from_json(json.loads(json.dumps(scan.to_json())))
    assert back.to_json() == scan.to_json()
    record = scan.to_json()
    record["class_pixels"] = [12, 4]  # a record of another class count
    with pytest.raises(ValueError, match="wrong length"):
        ListScan.from_json(record)


def test_diagnose_names_mostly_ignored_labels_and_training_refuses_them():
    spec = dataset_spec("custom", 2)
    scan = ListScan("train.txt", 2, samples=1, ok=1, class_pixels=np.array([2, 2]), ignored=96, pixels=100)
    found = diagnose(scan, None, spec, "cfg.yaml")
    assert list(found) == ["mostly_ignored"] and "96.0% of the labels' pixels are data.ignore_label 255" in \
        found["mostly_ignored"][0]
    with pytest.raises(DataError, match="^refusing to train: 96.0% of the labels"):
        training_label_check(scan, spec, [], "cfg.yaml")
    scan.ignored = 90  # under the 95% bound: nothing to say
    assert diagnose(scan, None, spec, "cfg.yaml") == {}
    training_label_check(scan, spec, [], "cfg.yaml")


def test_the_scan_fingerprint_follows_the_list_the_masks_and_how_labels_are_read(tmp_path):
    samples = _two_masks(tmp_path)
    (tmp_path / "l.txt").write_text("photos/p0.jpg masks/p0.png\nphotos/p1.jpg masks/p1.png\n")
    spec = dataset_spec("custom", 3)
    first = scan_fingerprint(str(tmp_path / "l.txt"), str(tmp_path), spec, samples)
    assert scan_fingerprint(str(tmp_path / "l.txt"), str(tmp_path), spec, samples) == first
    assert scan_fingerprint(str(tmp_path / "l.txt"), str(tmp_path), dataset_spec("custom", 3, ignore_label=250),
                            samples) != first
    with open(samples[1].label, "ab") as f:
        f.write(b"\0")  # a mask edited since the scan
    changed = scan_fingerprint(str(tmp_path / "l.txt"), str(tmp_path), spec, samples)
    assert changed != first
    (tmp_path / "l.txt").write_text("photos/p0.jpg masks/p0.png\n")
    assert scan_fingerprint(str(tmp_path / "l.txt"), str(tmp_path), spec, samples) not in (first, changed)


def test_an_ignore_value_equal_to_the_class_count_is_not_taken_for_an_extra_class(tmp_path):
    """data.ignore_label N with N classes: masks of 0..N-1 and N are classes plus unlabeled pixels, not '0..N with 0
    unlabeled' (the doctor and training once refused the copies --fix wrote with that ignore value)."""
    root = tmp_path / "z"
    _photos(root, [np.array([[0, 1], [2, 2]], np.uint8)] * 3)
    _listed(root, 3, 2)
    lines, clean = check_command(str(_config(tmp_path, root, ignore_label=2)), "both", None, None, "custom", None)
    assert clean and "zero_unlabeled" not in "\n".join(lines)
