"""data.labels: class tables, palettes, each dataset's label map (read through data.dataset.read_label)."""
import numpy as np
import pytest
from PIL import Image

from src.data.dataset import DataError, read_label
from src.data.labels import ADE20K_CLASSES, VOC_CLASSES, dataset_spec, voc_palette, write_palette_png


def test_class_tables():
    assert len(VOC_CLASSES) == 21 and len(ADE20K_CLASSES) == 150 and len(set(ADE20K_CLASSES)) == 150
    pal = voc_palette()
    assert pal[1].tolist() == [128, 0, 0] and pal[15].tolist() == [192, 128, 128]


def test_voc_palette_png_read_as_indices(tmp_path):
    label = np.array([[0, 1, 15], [20, 255, 7]], np.uint8)
    write_palette_png(label, tmp_path / "l.png", voc_palette())
    with Image.open(tmp_path / "l.png") as im:
        assert im.mode == "P"
    np.testing.assert_array_equal(read_label(str(tmp_path / "l.png"), dataset_spec("voc2012")), label)


def test_ade20k_shift_and_cityscapes_train_ids(tmp_path):
    Image.fromarray(np.array([[0, 1, 150]], np.uint8), mode="L").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_label(str(tmp_path / "a.png"), dataset_spec("ade20k")), [[255, 0, 149]])
    Image.fromarray(np.array([[7, 8, 26, 33, 0, 6, 1]], np.uint8), mode="L").save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_label(str(tmp_path / "c.png"), dataset_spec("cityscapes")),
                                  [[0, 1, 13, 18, 255, 255, 255]])
    Image.fromarray(np.array([[0, 10, 11]], np.uint8), mode="L").save(tmp_path / "v.png")
    np.testing.assert_array_equal(read_label(str(tmp_path / "v.png"), dataset_spec("camvid")), [[0, 10, 255]])
    rgb = np.array([[[255, 0, 255], [255, 0, 0], [0, 0, 0]]], np.uint8)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "k.png")
    np.testing.assert_array_equal(read_label(str(tmp_path / "k.png"), dataset_spec("kitti_road")), [[1, 0, 255]])


def test_dataset_class_count_must_agree():
    with pytest.raises(ValueError, match="21 classes"):
        dataset_spec("voc2012", 20)


def test_ade20k_has_its_own_palette_of_distinct_colors():
    ade = dataset_spec("ade20k", 150).palette[:150].astype(int)
    assert len({tuple(c) for c in ade}) == 150
    assert not (ade == voc_palette()[:150]).all(axis=1).any()
    assert np.abs(np.diff(ade, axis=0)).sum(axis=1).min() > 40  # neighbouring classes are easy to tell apart


@pytest.mark.parametrize("name, values, hint", [
    ("cityscapes", [7, 26, 255], r"labelTrainIds.png file, already mapped"),  # trainIds: 7 would be read as road
    ("cityscapes", [7, 34], r"hold ids 0\.\.33"),
    ("ade20k", [0, 12, 255], r"labels already shifted to 0\.\.149"),
])
def test_masks_of_a_named_set_that_were_already_mapped_are_refused_naming_the_files_to_list(tmp_path, name, values,
                                                                                           hint):
    """A Cityscapes labelTrainIds mask (or an ADE20K mask already shifted) read as the data set's raw files would be
    mapped a second time: trainId 7 (traffic sign) read as road. Their 255 gives them away: refused, naming why."""
    Image.fromarray(np.array([values], np.uint8), mode="L").save(tmp_path / "m.png")
    spec = dataset_spec(name)
    with pytest.raises(DataError, match=hint):
        read_label(str(tmp_path / "m.png"), spec)
    largest = 33 if name == "cityscapes" else 150  # the largest value the data set's own files hold
    assert spec.out_of_range(np.array(values, np.uint8)) == [v for v in values if v > largest]
