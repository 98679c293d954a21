import json

import numpy as np
import pytest
from PIL import Image

from src.config import config_from_dict
from src.data.dataset import DataError, SegDataset, read_label, read_list
from src.data.labels import VOC_CLASSES, ADE20K_CLASSES, dataset_spec, voc_palette
from src.data.pipeline import EpochShardSampler, build_train_pipeline, make_dataset
from src.data.prepare import check_list, prepare_voc_aug
from src.data.labels import write_palette_png
from src.data.synthetic import generate
from src.data.transforms import crop, pad_to, rand_rotate, rand_scale, normalize

IGNORE = 255  # the value these tests' labels use for unlabeled pixels
MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate(root, "shapes", num=10, size=64, seed=3)
    return root


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
    Image.fromarray(np.array([[7, 8, 26, 33, 0, 6, 255]], np.uint8), mode="L").save(tmp_path / "c.png")
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


def test_synthetic_round_trip_through_voc_loader(shapes_root):
    info = json.loads((shapes_root / "info.json").read_text())
    assert info["classes"] == 6 and info["train"] + info["val"] == 10
    cfg = config_from_dict({"data": {"dataset": "synthetic", "data_root": str(shapes_root), "classes": 6}})
    ds = make_dataset(cfg.data, "train.txt", None, 0)
    seen = set()
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.shape[:2] == label.shape == (48, 64)
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(6)) | {255} and len(seen - {0, 255}) >= 3
    # deterministic: the same seed writes the same label files
    again = shapes_root.parent / "again"
    generate(again, "shapes", num=10, size=64, seed=3)
    a = np.array(Image.open(shapes_root / "SegmentationClassAug" / "shapes_00004.png"))
    b = np.array(Image.open(again / "SegmentationClassAug" / "shapes_00004.png"))
    np.testing.assert_array_equal(a, b)


def test_context_task_labels_follow_the_scene(tmp_path):
    generate(tmp_path, "context", num=6, size=64, seed=1)
    for png in sorted((tmp_path / "SegmentationClassAug").glob("*.png")):
        lab = np.array(Image.open(png))
        present = set(np.unique(lab).tolist())
        assert (1 in present) != (2 in present)  # water xor road
        if 1 in present:
            assert 4 not in present  # no car on water
        else:
            assert 3 not in present


def test_sampler_shards_cover_every_sample_once():
    n, world = 11, 3
    for epoch in range(2):
        shards = [EpochShardSampler(n, world, r, seed=5).indices(epoch) for r in range(world)]
        assert len({len(s) for s in shards}) == 1
        flat = [i for s in shards for i in s]
        assert set(flat) == set(range(n)) and len(flat) == 12  # one wrapped repeat
    from src.system.distributed import shard

    eval_shards = [shard(range(n), r, world) for r in range(world)]  # evaluation: no repeats
    assert sorted(i for s in eval_shards for i in s) == list(range(n))
    s = EpochShardSampler(n, 1, 0, seed=5)
    codes = s.codes(0, 2, batch_size=4)  # each epoch cut to whole batches: 8 of 11
    first, second = codes[:8], codes[8:]
    assert len(codes) == 16 and all(c < n for c in first) and all(n <= c < 2 * n for c in second)  # epoch-tagged
    assert [c - n for c in second] != first  # reshuffled
    assert s.codes(1, 2, 4) == second  # a resumed run reads exactly what the uninterrupted one did


def test_augmentation_differs_per_sample_and_epoch_and_reproduces(shapes_root):
    cfg = config_from_dict({"data": {"dataset": "synthetic", "data_root": str(shapes_root), "classes": 6},
                            "train": {"crop_h": 33, "crop_w": 33}})
    from src.data.transforms import train_transform_from_config

    t = train_transform_from_config(cfg.data, cfg.train)
    ds = make_dataset(cfg.data, "train.txt", t, seed=11)
    n = len(ds)
    a0, _ = ds[0]
    a0_again, _ = make_dataset(cfg.data, "train.txt", t, seed=11)[0]
    np.testing.assert_array_equal(a0, a0_again)  # reproducible from the seed
    a0_epoch1, _ = ds[n + 0]
    assert not np.array_equal(a0, a0_epoch1)  # new epoch, new augmentation
    other_seed, _ = make_dataset(cfg.data, "train.txt", t, seed=12)[0]
    assert not np.array_equal(a0, other_seed)


def test_two_workers_draw_different_augmentations(shapes_root):
    # Same image listed twice: with a duplicated global RNG both workers would produce identical crops.
    lst = shapes_root / "dup.txt"
    line = (shapes_root / "train.txt").read_text().splitlines()[0]
    lst.write_text("\n".join([line] * 8) + "\n")
    cfg = config_from_dict({"data": {"dataset": "synthetic", "data_root": str(shapes_root), "classes": 6,
                                     "train_list": "dup.txt", "workers": 2},
                            "train": {"crop_h": 33, "crop_w": 33, "batch_size": 2, "seed": 4}})
    ds, _, _ = build_train_pipeline(cfg.data, cfg.train, end_epoch=1)
    images = [img for batch in ds.create_tuple_iterator(num_epochs=1, output_numpy=True) for img in batch[0]]
    assert len(images) == 8
    flat = {img.tobytes() for img in images}
    assert len(flat) == 8


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
    from src.outputs import OutputExistsError

    with pytest.raises(OutputExistsError, match="train.txt.*--overwrite"):  # an earlier prepare's lists stay
        prepare_camvid(str(cv))
    assert prepare_camvid(str(cv), overwrite=True) == {"train": 1, "val": 1, "test": 1}
    (cv / "testannot" / "0001TP_006690.png").unlink()
    with pytest.raises(DataError, match="no label"):
        prepare_camvid(str(cv), overwrite=True)


def test_ade20k_has_its_own_palette_of_distinct_colors():
    ade = dataset_spec("ade20k", 150).palette[:150].astype(int)
    assert len({tuple(c) for c in ade}) == 150
    assert not (ade == voc_palette()[:150]).all(axis=1).any()
    assert np.abs(np.diff(ade, axis=0)).sum(axis=1).min() > 40  # neighbouring classes are easy to tell apart


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
