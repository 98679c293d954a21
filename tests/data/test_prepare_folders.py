"""data.prepare's `prepare folders`: a data set from a folder of images and a folder of masks, paired by name,
split into train and val lists, with a config that loads from any folder; images that are the masks refused,
and the doctor's note on a class so rare it may be a stray value."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from src.config import load_config
from src.data.dataset import DataError, read_list
from src.data.prepare import check_command, prepare_folders
from user_masks import binary_masks as _binary_masks, config as _config, listed as _listed, photos as _photos


def test_prepare_folders_pairs_by_name_and_writes_a_config_that_loads_anywhere(tmp_path, monkeypatch, caplog):
    masks = [np.array([[0, 1], [2, 1]], np.uint8)] * 5
    photos, mask_dir = _photos(tmp_path / "mine", masks)
    cv2.imwrite(str(photos / "lonely.jpg"), np.zeros((2, 2, 3), np.uint8))
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(mask_dir / "orphan.png")
    with caplog.at_level("WARNING"):
        summary = prepare_folders(str(photos), str(mask_dir), str(tmp_path / "ds"), val_fraction=0.4)
    assert (summary["pairs"], summary["train"], summary["val"], summary["classes"]) == (5, 3, 2, 3)
    assert "lonely" in caplog.text and "orphan" in caplog.text
    monkeypatch.chdir(tmp_path / "mine")
    cfg = load_config(tmp_path / "ds" / "config.yaml")
    assert cfg.data.classes == 3 and cfg.data.dataset == "custom" and Path(cfg.train.save_dir).is_absolute()
    train = read_list(os.path.join(cfg.data.data_root, cfg.data.train_list), cfg.data.data_root)
    val = read_list(os.path.join(cfg.data.data_root, cfg.data.val_list), cfg.data.data_root)
    assert len(train) == 3 and len(val) == 2 and not {s.image for s in train} & {s.image for s in val}
    assert check_command(str(tmp_path / "ds" / "config.yaml"), "both", None, None, "custom", None)[1]
    with pytest.raises(DataError, match="0 image/mask pair"):
        prepare_folders(str(photos), str(tmp_path), str(tmp_path / "ds2"))


def test_folders_refuse_images_that_are_the_masks_and_name_rare_classes(tmp_path):
    _, masks = _photos(tmp_path / "m", _binary_masks(4, value=1))
    with pytest.raises(DataError, match="--images and --masks give the same file"):
        prepare_folders(str(masks), str(masks), str(tmp_path / "same"))
    root = tmp_path / "r"
    big = [np.zeros((120, 120), np.uint8) for _ in range(3)]
    big[0][:60] = 1
    big[1][0, 0] = 2  # one stray pixel of a third value
    _photos(root, big)
    _listed(root, 3, 3)
    (root / "val.txt").write_text("photos/p0.jpg\tmasks/p0.png\n")
    lines, _ = check_command(str(_config(tmp_path, root, classes=3)), "train", None, None, "custom", None)
    assert "class class_2 has 1 pixel(s)" in "\n".join(lines)


def test_colour_masks_with_vocs_void_colour_read_it_as_unlabeled(tmp_path):
    """RGB masks drawn in PASCAL VOC's colours: the void boundary colour is not counted as a class; the written
    config lists it in data.ignore_colors, and --fix colors makes it data.ignore_label."""
    from src.data.prepare import fix_command

    masks = []
    for i in range(4):
        m = np.zeros((6, 6, 3), np.uint8)
        m[:3] = (128, 0, 0)
        m[3, i:] = (224, 224, 192)
        masks.append(m)
    photos, mask_dir = _photos(tmp_path / "mine", masks)
    summary = prepare_folders(str(photos), str(mask_dir), str(tmp_path / "ds"), val_fraction=0.25)
    cfg = load_config(tmp_path / "ds" / "config.yaml")
    assert summary["classes"] == cfg.data.classes == 2
    assert cfg.data.class_colors == [[0, 0, 0], [128, 0, 0]] and cfg.data.ignore_colors == [[224, 224, 192]]
    assert any("void colour" in n for n in summary["notes"])
    fix_command(str(tmp_path / "ds" / "config.yaml"), "colors", str(tmp_path / "fixed"))
    fixed = load_config(tmp_path / "fixed" / "config.yaml")
    sample = read_list(os.path.join(fixed.data.data_root, "train.txt"), fixed.data.data_root)[0]
    label = np.array(Image.open(sample.label))
    assert sorted(np.unique(label).tolist()) == [0, 1, cfg.data.ignore_label] and (label[3] != 1).all()


def test_colour_masks_of_the_void_colour_alone_give_a_config_that_loads(tmp_path):
    """Masks holding only VOC's void colour (and one class colour, or none): the config still names 2 classes and
    2 colours (placeholders no mask holds), so it loads and the doctor can say what is missing."""
    void = np.full((6, 6, 3), (224, 224, 192), np.uint8)
    photos, mask_dir = _photos(tmp_path / "mine", [void] * 3)
    prepare_folders(str(photos), str(mask_dir), str(tmp_path / "ds"))
    cfg = load_config(tmp_path / "ds" / "config.yaml")
    assert cfg.data.classes == len(cfg.data.class_colors) == 2 and cfg.data.ignore_colors == [[224, 224, 192]]
    assert [224, 224, 192] not in cfg.data.class_colors


def test_a_palette_masks_void_colour_at_its_largest_value_is_read_as_unlabeled(tmp_path):
    """Palette masks whose palette draws value 6 in VOC's void colour (not at 255): value 6 is data.ignore_label,
    the classes are 0..5; drawn at a value among the classes, it is only named."""
    palette = [0, 0, 0] * 256
    palette[3 * 6:3 * 6 + 3] = [224, 224, 192]
    mask_dir = tmp_path / "masks"
    for i in range(3):
        m = np.array([[0, 1, 2, 3], [4, 5, 6, 6]], np.uint8)
        im = Image.fromarray(m, mode="P")
        im.putpalette(palette)
        mask_dir.mkdir(exist_ok=True)
        im.save(mask_dir / f"p{i}.png")
    photos, _ = _photos(tmp_path / "x", [np.zeros((2, 4), np.uint8)] * 3)
    summary = prepare_folders(str(photos), str(mask_dir), str(tmp_path / "ds"))
    cfg = load_config(tmp_path / "ds" / "config.yaml")
    assert (cfg.data.classes, cfg.data.ignore_label) == (6, 6) == (summary["classes"], 6)
    assert any("void colour" in n and "data.ignore_label 6" in n for n in summary["notes"])
    assert check_command(str(tmp_path / "ds" / "config.yaml"), "both", None, None, "custom", None)[1]
    palette[3 * 6:3 * 6 + 3], palette[3 * 2:3 * 2 + 3] = [1, 1, 1], [224, 224, 192]  # void drawn at class 2
    for i in range(3):
        im = Image.open(mask_dir / f"p{i}.png")
        im.putpalette(palette)
        im.save(mask_dir / f"p{i}.png")
    summary = prepare_folders(str(photos), str(mask_dir), str(tmp_path / "ds2"))
    assert summary["classes"] == 7 and any("value(s) 2 in PASCAL VOC's void colour" in n for n in summary["notes"])
    palette[3 * 2:3 * 2 + 3], palette[3 * 6:3 * 6 + 3] = [2, 2, 2], [224, 224, 192]
    for i in range(3):  # the largest value void in two masks' palettes, green in the third: a class after all
        im = Image.open(mask_dir / f"p{i}.png")
        im.putpalette(palette if i else palette[:18] + [10, 200, 10] + palette[21:])
        im.save(mask_dir / f"p{i}.png")
    summary = prepare_folders(str(photos), str(mask_dir), str(tmp_path / "ds3"))
    assert summary["classes"] == 7 and not any("void" in n for n in summary["notes"])
