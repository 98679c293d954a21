"""Your own data: the label contract (data.ignore_label, data.reduce_zero_label), the data doctor, its fixes and
`prepare folders`, on masks made as a user makes them (real 0/255 PNGs, real RGB colour masks)."""
import ast
import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from src.cli import main
from src.config import ConfigError, DataConfig, apply_overrides, Config, load_config
from src.data.dataset import DataError, SegDataset, check_label_values, load_sample, read_label, read_list
from src.data.doctor import median_frequency_weights, scan_list
from src.data.labels import dataset_spec, spec_of
from src.data.prepare import check_command, fix_command, prepare_folders

SRC = Path(__file__).resolve().parents[2] / "src"


def _photos(root: Path, masks, name="masks", suffix=".png"):
    """Images and masks as two folders: ``masks`` is a list of (H, W) or (H, W, 3) uint8 arrays."""
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, m in enumerate(masks):
        cv2.imwrite(str(root / "photos" / f"p{i}.jpg"), (rng.random((*m.shape[:2], 3)) * 255).astype(np.uint8))
        Image.fromarray(m).save(root / name / f"p{i}{suffix}")
    return root / "photos", root / name


def _binary_masks(n=6, value=255):
    out = []
    for i in range(n):
        m = np.zeros((24, 32), np.uint8)
        m[5:15, 4 + i:20 + i] = value
        out.append(m)
    return out


def _config(tmp_path: Path, root: Path, train="train.txt", val="val.txt", **data) -> Path:
    d = {"dataset": "custom", "data_root": str(root), "train_list": train, "val_list": val, "classes": 2, **data}
    path = tmp_path / f"cfg_{hashlib.md5(json.dumps(d).encode()).hexdigest()[:6]}.yaml"
    path.write_text(yaml.safe_dump({"data": d, "train": {"save_dir": str(tmp_path / "run")}}))
    return path


def _digests(folder: Path):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- the label contract ---------------------------------------------------------------------------------------------

def test_another_ignore_value_is_read_everywhere_the_loader_looks(tmp_path):
    label = np.array([[0, 1, 2, 250]], np.uint8)
    Image.fromarray(label).save(tmp_path / "l.png")
    spec = dataset_spec("custom", 3, ignore_label=250)
    np.testing.assert_array_equal(read_label(str(tmp_path / "l.png"), spec), label)
    check_label_values(label, spec, "l.png")  # 250 is the ignore value: fine
    with pytest.raises(DataError, match=r"values \[255\] outside \[0, 3\) and not data.ignore_label 250"):
        check_label_values(np.array([[0, 255]], np.uint8), spec, "l.png")
    assert spec.palette[250].tolist() == [255, 255, 255] and spec.palette[255].tolist() != [255, 255, 255]


def test_reduce_zero_label_reads_1_to_n_as_classes_and_0_as_ignored(tmp_path):
    Image.fromarray(np.array([[0, 1, 2, 3, 255]], np.uint8)).save(tmp_path / "l.png")
    spec = dataset_spec("custom", 3, reduce_zero_label=True)
    np.testing.assert_array_equal(read_label(str(tmp_path / "l.png"), spec), [[255, 0, 1, 2, 255]])
    with pytest.raises(DataError, match=r"values \[4\] outside 0 \(unlabeled\), 1..3"):
        check_label_values(np.array([[0, 4]], np.uint8), spec, "l.png")
    # with ignore 250, file value 251 would become 250 = ignore after the shift: refused, never silently ignored
    spec250 = dataset_spec("custom", 3, ignore_label=250, reduce_zero_label=True)
    with pytest.raises(DataError, match=r"\[251\]"):
        check_label_values(np.array([[1, 251]], np.uint8), spec250, "l.png")


def test_label_settings_that_contradict_are_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="data.ignore_label 0 is one of the 3 classes.*reduce_zero_label true"):
        apply_overrides(Config(), ["data.dataset", "custom", "data.classes", "3", "data.ignore_label", "0"])
    with pytest.raises(ConfigError, match="ade20k.*already reads 0 as unlabeled.*twice"):
        apply_overrides(Config(), ["data.dataset", "ade20k", "data.classes", "150", "data.reduce_zero_label", "true"])
    for value, needle in (("[1, 2]", "2 weights for 21 classes"), ("auto2", "none, auto or a list"),
                          ("[" + ", ".join(["1"] * 20) + ", -1]", r"class_weights\[20\]")):
        with pytest.raises(ConfigError, match=needle):
            apply_overrides(Config(), ["train.class_weights", value])
    cfg = apply_overrides(Config(), ["data.classes", "2", "data.dataset", "custom", "train.class_weights", "[1, 3.5]"])
    assert cfg.train.class_weights == [1.0, 3.5]
    assert apply_overrides(Config(), ["train.class_weights", "auto"]).train.class_weights == "auto"


def test_a_32_bit_label_with_negative_values_is_refused_not_wrapped(tmp_path):
    Image.fromarray(np.array([[0, -255]], np.int32)).save(tmp_path / "neg.tif")
    with pytest.raises(DataError, match=r"values outside 0..255 \(-255 to 0\)"):
        read_label(str(tmp_path / "neg.tif"), dataset_spec("custom", 3))


def test_the_ignore_constant_is_only_the_configs_default():
    """No module keeps its own ignore value: every `ignore_label` parameter or field is required or defaults to the
    config's default, and no module-level name holds the number as 'IGNORE'."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults + \
                    node.args.kw_defaults
                pairs = zip(args, defaults)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                pairs = [(node.target, node.value)]
            elif isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets if isinstance(t, ast.Name)]
            else:
                continue
            for target, default in pairs:
                name = getattr(target, "arg", None) or getattr(target, "id", None)
                if name is None or not (name.lower() in ("ignore", "ignore_value", "ignore_index")
                                        or name.lower().endswith("ignore_label")):
                    continue
                if default is None or ast.unparse(default) == "DataConfig.ignore_label":
                    continue
                if path.name == "config.py" and name == "ignore_label":
                    continue  # the default itself
                if isinstance(default, ast.Constant) and isinstance(default.value, int):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} {name} = {default.value}")
    assert not offenders, offenders
    assert DataConfig.ignore_label == 255


def test_training_and_eval_count_exactly_the_labelled_pixels_with_ignore_250(tmp_path):
    """A data set whose unlabeled value is 250: the loader serves it, the padding uses it, the metrics skip it."""
    from src.data.transforms import CenterCropTransform
    from src.evaluation.metrics import ConfusionMatrix

    label = np.full((10, 12), 250, np.uint8)
    label[2:6, 3:9] = 1
    label[6:, :] = 0
    _photos(tmp_path, [label, label])
    (tmp_path / "list.txt").write_text("photos/p0.jpg masks/p0.png\nphotos/p1.jpg masks/p1.png\n")
    spec = dataset_spec("custom", 2, ignore_label=250)
    transform = CenterCropTransform(16, 16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 250)
    ds = SegDataset(read_list(tmp_path / "list.txt", tmp_path), spec, 2, transform)
    _, served = ds[0]
    assert set(np.unique(served).tolist()) == {0, 1, 250}
    labelled = int((label != 250).sum())
    assert int((served != 250).sum()) == labelled  # the padding added only ignored pixels
    cm = ConfusionMatrix(2, 250)
    cm.update(np.zeros_like(served), served)
    assert int(cm.matrix.sum()) == labelled


# --- the doctor -----------------------------------------------------------------------------------------------------

def _listed(root: Path, n: int, split_at: int, name="masks", suffix=".png"):
    lines = [f"photos/p{i}.jpg\t{name}/p{i}{suffix}" for i in range(n)]
    (root / "train.txt").write_text("\n".join(lines[:split_at]) + "\n")
    (root / "val.txt").write_text("\n".join(lines[split_at:]) + "\n")


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


# --- fixes: new copies, never in place --------------------------------------------------------------------------------

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


# --- from two folders -------------------------------------------------------------------------------------------------

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


# --- from a hostile review ----------------------------------------------------------------------------------------

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


def test_jpeg_masks_are_refused_and_1_bit_masks_read(tmp_path):
    Image.fromarray(np.array([[0, 1, 1, 0]] * 4, np.uint8)).save(tmp_path / "m.png", format="JPEG")
    with pytest.raises(DataError, match="is a JPEG: its lossy compression invents values"):
        read_label(str(tmp_path / "m.png"), dataset_spec("custom", 2))
    Image.fromarray(np.array([[0, 1, 1, 0]], bool)).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_label(str(tmp_path / "b.png"), dataset_spec("custom", 2)), [[0, 1, 1, 0]])


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


def test_weights_that_vanish_in_float32_and_unknown_absent_classes_are_refused():
    with pytest.raises(ConfigError, match=r"all 0 \(in float32"):
        apply_overrides(Config(), ["data.dataset", "custom", "data.classes", "2", "train.class_weights", "[0, 1e-300]"])
    with pytest.raises(ConfigError, match="must be a list of finite numbers"):
        apply_overrides(Config(), ["data.dataset", "custom", "data.classes", "2", "train.class_weights", "[nan, 1]"])
    from src.data.doctor import check_allowed_absent

    with pytest.raises(ConfigError, match="data.allow_absent_classes names nope, which is no class"):
        check_allowed_absent(["nope"], dataset_spec("custom", 2))
