"""data.prepare: the VOC+SBD merge and the ADE20K / Cityscapes / CamVid lists."""
import numpy as np
import pytest
from PIL import Image

from src.data.dataset import DataError
from src.data.labels import voc_palette, write_palette_png
from src.data.prepare import prepare_voc_aug


def test_prepare_voc_aug_overlap_rules(tmp_path):
    voc, sbd = tmp_path / "VOC2012", tmp_path / "SBD"
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "SegmentationClass").mkdir()
    (voc / "JPEGImages").mkdir()
    (sbd / "cls").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("c\nd\n")
    (sbd / "train.txt").write_text("b\ne\nc\n")
    (sbd / "val.txt").write_text("f\nd\n")
    from scipy.io import savemat

    for name in "abcd":
        write_palette_png(np.full((4, 5), 3, np.uint8), voc / "SegmentationClass" / f"{name}.png", voc_palette())
    for name in "ef":
        seg = np.full((4, 5), 7, np.uint8)
        savemat(sbd / "cls" / f"{name}.mat", {"GTcls": {"Segmentation": seg}})
    counts = prepare_voc_aug(str(voc), str(sbd))
    train = [l.split()[0] for l in (voc / "train_aug.txt").read_text().split("\n") if l]
    assert train == [f"JPEGImages/{n}.jpg" for n in "abef"] and counts == {"train_aug": 4, "val": 2}
    assert np.array(Image.open(voc / "SegmentationClassAug" / "e.png")).tolist() == [[7] * 5] * 4
    assert np.array(Image.open(voc / "SegmentationClassAug" / "a.png")).tolist() == [[3] * 5] * 4


def test_prepare_ade20k_cityscapes_camvid_lists(tmp_path):
    from src.data.prepare import prepare_ade20k, prepare_camvid, prepare_cityscapes

    def touch(p):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")

    ade = tmp_path / "ade"
    for split, n in (("training", 2), ("validation", 1)):
        for i in range(n):
            touch(ade / "images" / split / f"ADE_{split}_{i}.jpg")
            touch(ade / "annotations" / split / f"ADE_{split}_{i}.png")
    assert prepare_ade20k(str(ade)) == {"training": 2, "validation": 1}
    assert (ade / "validation.txt").read_text().split() == ["images/validation/ADE_validation_0.jpg",
                                                           "annotations/validation/ADE_validation_0.png"]
    cs = tmp_path / "cs"
    for split in ("train", "val"):
        touch(cs / "leftImg8bit" / split / "aachen" / "aachen_000000_000019_leftImg8bit.png")
        touch(cs / "gtFine" / split / "aachen" / "aachen_000000_000019_gtFine_labelIds.png")
    assert prepare_cityscapes(str(cs)) == {"fine_train": 1, "fine_val": 1}
    assert "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png" in (cs / "fine_val.txt").read_text()
    cv = tmp_path / "camvid"
    for split in ("train", "val", "test"):
        touch(cv / split / "0001TP_006690.png")
        touch(cv / f"{split}annot" / "0001TP_006690.png")
    assert prepare_camvid(str(cv)) == {"train": 1, "val": 1, "test": 1}
    from src.outputs.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="train.txt.*--overwrite"):  # an earlier prepare's lists stay
        prepare_camvid(str(cv))
    assert prepare_camvid(str(cv), overwrite=True) == {"train": 1, "val": 1, "test": 1}
    (cv / "testannot" / "0001TP_006690.png").unlink()
    with pytest.raises(DataError, match="no label"):
        prepare_camvid(str(cv), overwrite=True)
