"""data.dataset: list files (errors with line numbers, BOM, Latin-1), bad samples (error or skip) and label files
as users save them (32-bit with negative values, JPEG masks, 1-bit masks)."""
import numpy as np
import pytest
from PIL import Image

from src.data.dataset import DataError, SegDataset, read_label, read_list
from src.data.labels import dataset_spec, voc_palette, write_palette_png
from src.data.prepare import check_list
from src.data.synthetic import generate


def test_list_errors_name_line_and_file(tmp_path, shapes_root):
    bad = tmp_path / "bad.txt"
    bad.write_text("JPEGImages/shapes_00000.jpg SegmentationClassAug/shapes_00000.png\n"
                   "a b c\n"
                   "JPEGImages/missing.jpg SegmentationClassAug/shapes_00000.png\n"
                   "JPEGImages/shapes_00001.jpg\n")
    with pytest.raises(DataError) as info:
        read_list(bad, shapes_root)
    msg = str(info.value)
    assert "bad.txt:2" in msg and "3 columns" in msg and "bad.txt:3" in msg and "missing.jpg" in msg
    assert "bad.txt:4" in msg and "no label" in msg
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(DataError, match="no samples"):
        read_list(empty, shapes_root)
    with pytest.raises(DataError, match="not found"):
        read_list(tmp_path / "nope.txt", shapes_root)
    one_col = read_list(_one_column(tmp_path), shapes_root, require_labels=False)
    assert one_col[0].label is None


def _one_column(tmp_path):
    p = tmp_path / "test.txt"
    p.write_text("JPEGImages/shapes_00000.jpg\n")
    return p


def test_bad_samples_error_or_skip(tmp_path, shapes_root, caplog):
    root = tmp_path / "broken"
    generate(root, "shapes", num=6, size=64, seed=0)
    (root / "JPEGImages" / "shapes_00001.jpg").write_bytes(b"garbage")
    write_palette_png(np.full((48, 64), 9, np.uint8), root / "SegmentationClassAug" / "shapes_00002.png",
                      voc_palette())
    write_palette_png(np.zeros((10, 10), np.uint8), root / "SegmentationClassAug" / "shapes_00003.png",
                      voc_palette())
    spec = dataset_spec("synthetic", 6)
    samples = read_list(root / "train.txt", root)
    strict = SegDataset(samples, spec, 6)
    for i, needle in ((1, "cannot read image"), (2, r"outside \[0, 6\)"), (3, "64x48 but label")):
        with pytest.raises(DataError, match=needle) as info:
            strict[i]
        assert f"train.txt:{i + 1}" in str(info.value)
    lenient = SegDataset(samples, spec, 6, on_bad_sample="skip")
    with caplog.at_level("WARNING"):
        image, label = lenient[1]
    assert lenient.bad_count == 3 and label.shape == (48, 64)
    assert sum("skipping bad sample" in r.message for r in caplog.records) == 3

    report = check_list(str(root / "train.txt"), str(root), "synthetic", 6)
    probs = report["problems"]
    assert len(probs["unreadable_image"]) == 1 and len(probs["label_out_of_range"]) == 1
    assert len(probs["size_mismatch"]) == 1 and report["ok"] == report["samples"] - 3
    (root / "JPEGImages" / "shapes_00000.jpg").unlink()
    assert len(check_list(str(root / "train.txt"), str(root), "synthetic", 6)["problems"]["missing_file"]) == 1


def test_list_file_with_a_bom_or_in_latin1(tmp_path):
    """A BOM (Windows editors) is not part of the first image's path; a non-UTF-8 list is one line naming it."""
    for name in ("a.jpg", "a.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "bom.txt").write_bytes("\ufeffa.jpg a.png\n".encode("utf-8"))
    samples = read_list(tmp_path / "bom.txt", tmp_path)
    assert samples[0].image == str(tmp_path / "a.jpg")
    (tmp_path / "latin1.txt").write_bytes("a.jpg a.png\nb\xe9b\xe9.jpg a.png\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt:2: not UTF-8 \(byte 0xe9"):
        read_list(tmp_path / "latin1.txt", tmp_path)


def test_a_32_bit_label_with_negative_values_is_refused_not_wrapped(tmp_path):
    Image.fromarray(np.array([[0, -255]], np.int32)).save(tmp_path / "neg.tif")
    with pytest.raises(DataError, match=r"values outside 0..255 \(-255 to 0\)"):
        read_label(str(tmp_path / "neg.tif"), dataset_spec("custom", 3))


def test_jpeg_masks_are_refused_and_1_bit_masks_read(tmp_path):
    Image.fromarray(np.array([[0, 1, 1, 0]] * 4, np.uint8)).save(tmp_path / "m.png", format="JPEG")
    with pytest.raises(DataError, match="is a JPEG: its lossy compression invents values"):
        read_label(str(tmp_path / "m.png"), dataset_spec("custom", 2))
    Image.fromarray(np.array([[0, 1, 1, 0]], bool)).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_label(str(tmp_path / "b.png"), dataset_spec("custom", 2)), [[0, 1, 1, 0]])
