"""data.prepare's fixes (`prepare check --fix binary|colors`): index copies of 0/255 binary and RGB colour masks
with a config that trains from any folder, never written over the masks they read, even with --overwrite."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from src.cli import main
from src.config import ConfigError, load_config
from src.data.dataset import DataError, load_sample, read_list
from src.data.labels import spec_of
from src.data.prepare import check_command, fix_command
from user_masks import (binary_masks as _binary_masks, config as _config, digests as _digests, listed as _listed,
                        photos as _photos)


def test_fix_binary_writes_copies_that_train_from_anywhere(tmp_path, monkeypatch):
    root = tmp_path / "d"
    photos, masks = _photos(root, _binary_masks())
    _listed(root, 6, 4)
    before = _digests(masks)
    cfg = _config(tmp_path, root)
    assert main(["prepare", "check", "--config", str(cfg), "--fix", "binary", "--out", str(tmp_path / "fixed")]) == 0
    assert _digests(masks) == before  # the user's masks byte for byte
    fixed_cfg = tmp_path / "fixed" / "config.yaml"
    monkeypatch.chdir(tmp_path / "fixed" / "masks")  # config paths resolve from the folder a command runs in
    loaded = load_config(fixed_cfg)
    assert Path(loaded.data.data_root).is_absolute() and Path(loaded.train.save_dir).is_absolute()
    samples = read_list(os.path.join(loaded.data.data_root, loaded.data.train_list), loaded.data.data_root)
    _, label = load_sample(samples[0], spec_of(loaded.data), 2)
    np.testing.assert_array_equal(label, (np.asarray(Image.open(masks / "p0.png")) == 255).astype(np.uint8))
    assert check_command(str(fixed_cfg), "both", None, None, "custom", None)[1]
    assert main(["prepare", "check", "--config", str(cfg), "--fix", "binary", "--out", str(tmp_path / "fixed")]) == 2


def test_fix_colors_maps_the_table_and_refuses_an_unlisted_colour(tmp_path):
    root = tmp_path / "d"
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (200, 0, 0)
    rgb[6:, 6:] = (0, 90, 9)
    photos, masks = _photos(root, [rgb, rgb, rgb])
    _listed(root, 3, 2)
    before = _digests(masks)
    table = [[0, 0, 0], [200, 0, 0], [0, 90, 9]]
    cfg = _config(tmp_path, root, classes=3, class_colors=table)
    fix_command(str(cfg), "colors", str(tmp_path / "fixed"))
    fixed = load_config(tmp_path / "fixed" / "config.yaml")
    samples = read_list(os.path.join(fixed.data.data_root, "val.txt"), fixed.data.data_root)
    _, label = load_sample(samples[0], spec_of(fixed.data), 3)
    want = np.zeros((8, 8), np.uint8)
    want[:4], want[6:, 6:] = 1, 2
    np.testing.assert_array_equal(label, want)
    short = _config(tmp_path, root, classes=2, class_colors=table[:2])
    assert main(["prepare", "check", "--config", str(short), "--fix", "colors", "--out", str(tmp_path / "f2")]) == 2
    with pytest.raises(DataError, match=r"p0.png has colour\(s\) 0, 90, 9 that data.class_colors does not list"):
        fix_command(str(short), "colors", str(tmp_path / "f3"))
    assert _digests(masks) == before
    with pytest.raises(ConfigError, match="needs data.class_colors"):
        fix_command(str(_config(tmp_path, root, classes=3)), "colors", str(tmp_path / "f4"))


def _first_label(fixed, list_name):
    """The class indices the loader reads from the first mask of a fixed copy's list."""
    samples = read_list(os.path.join(fixed.data.data_root, list_name), fixed.data.data_root)
    return load_sample(samples[0], spec_of(fixed.data), fixed.data.classes)[1]


def _voc_style_masks(root, foreground):
    """Three 8x8 RGB masks: black background, ``foreground`` in the top half, VOC's void colour on row 4."""
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = foreground
    rgb[4] = (224, 224, 192)
    _photos(root, [rgb, rgb, rgb])
    _listed(root, 3, 2)


def test_fix_colors_reads_ignore_colors_as_unlabeled_and_each_colour_means_one_thing(tmp_path):
    """VOC-style colour masks: the void boundary colour (224, 224, 192) listed in data.ignore_colors becomes
    data.ignore_label in the copies (not a class of its own); a colour both a class and ignored is refused."""
    root = tmp_path / "d"
    _voc_style_masks(root, (200, 0, 0))
    table = [[0, 0, 0], [200, 0, 0]]
    fix_command(str(_config(tmp_path, root, class_colors=table, ignore_colors=[[224, 224, 192]], ignore_label=250)),
                "colors", str(tmp_path / "fixed"))
    fixed = load_config(tmp_path / "fixed" / "config.yaml")
    label = _first_label(fixed, "val.txt")
    want = np.zeros((8, 8), np.uint8)
    want[:4], want[4] = 1, 250
    np.testing.assert_array_equal(label, want)
    with pytest.raises(DataError, match=r"224, 224, 192 that data.class_colors does not list.*data.ignore_colors"):
        fix_command(str(_config(tmp_path, root, class_colors=table)), "colors", str(tmp_path / "f2"))
    with pytest.raises(ConfigError, match=r"data.ignore_colors\[0\] repeats the colour of class 1 \(200, 0, 0\)"):
        load_config(_config(tmp_path, root, class_colors=table, ignore_colors=[[200, 0, 0]]))
    with pytest.raises(ConfigError, match=r"data.ignore_colors\[1\] must be \[r, g, b\] with values 0-255"):
        load_config(_config(tmp_path, root, class_colors=table, ignore_colors=[[1, 2, 3], [1, 2, 256]]))
    with pytest.raises(ConfigError, match="data.ignore_colors needs data.class_colors"):
        load_config(_config(tmp_path, root, ignore_colors=[[224, 224, 192]]))

def test_a_fix_never_writes_over_the_masks_it_reads_even_with_overwrite(tmp_path):
    root = tmp_path / "d"
    photos, masks = _photos(root, _binary_masks())
    _listed(root, 6, 4)
    before = _digests(masks)
    cfg = _config(tmp_path, root)
    with pytest.raises(DataError, match=r"would write train.txt over .*d/train.txt, a file the fix reads"):
        fix_command(str(cfg), "binary", str(root), overwrite=True)
    # masks listed by absolute path outside the data root keep their own name: --out at their parent folder
    (root / "train.txt").write_text("".join(f"{photos}/p{i}.jpg\t{masks}/p{i}.png\n" for i in range(4)))
    other = _config(tmp_path, tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "train.txt").write_text((root / "train.txt").read_text())
    (tmp_path / "elsewhere" / "val.txt").write_text((root / "train.txt").read_text())
    with pytest.raises(DataError, match=r"would write masks/p0.png over .*masks/p0.png, a file the fix reads"):
        fix_command(str(other), "binary", str(root), overwrite=True)
    assert _digests(masks) == before and not (root / "config.yaml").exists()
    assert not (root / "masks" / "masks").exists()


def test_fix_colors_refuses_index_masks_and_its_copies_drop_reduce_zero_label(tmp_path):
    """A second --fix colors over the copies the first wrote (palette PNGs) is refused: read through the palette,
    their ignore index turned into a class. The copies hold class indices themselves, so their config sets
    data.reduce_zero_label false (kept, every class was read one lower and the background ignored)."""
    root = tmp_path / "d"
    _voc_style_masks(root, (255, 255, 255))
    cfg = _config(tmp_path, root, class_colors=[[0, 0, 0], [255, 255, 255]], ignore_colors=[[224, 224, 192]],
                  reduce_zero_label=True)
    lines = fix_command(str(cfg), "colors", str(tmp_path / "fixed"))
    assert any("sets data.reduce_zero_label false" in line for line in lines)
    fixed = load_config(tmp_path / "fixed" / "config.yaml")
    assert fixed.data.reduce_zero_label is False
    label = _first_label(fixed, "train.txt")
    want = np.zeros((8, 8), np.uint8)
    want[:4], want[4] = 1, 255
    np.testing.assert_array_equal(label, want)
    with pytest.raises(DataError, match=r"already holds class indices \(a palette PNG"):
        fix_command(str(tmp_path / "fixed" / "config.yaml"), "colors", str(tmp_path / "again"))
    assert not (tmp_path / "again" / "config.yaml").exists()
