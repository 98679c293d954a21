"""Broken and hostile inputs outside the converter: each gives one clear error and loses nothing.

The training-level cases (a run that fails mid-way, resume) are in test_reliability_train.py.
"""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import make_shapes, tiny_config
from src.checkpoint.files import arrays_to_entries, save_checkpoint_atomic
from src.checkpoint.format import CheckpointError
from src.config import ConfigError, config_from_dict, load_config
from src.convert.weights import convert_file
from src.data import dataset as dataset_module
from src.data.dataset import DataError, SegDataset, read_image, read_list
from src.data.labels import dataset_spec
from src.data.prepare import check_list
from src.errors import PSPNetError
from src.evaluation.evaluate import open_results_dir
from src.outputs.atomic import ensure_output_dir
from src.outputs.errors import OutputExistsError, OutputPathError
from src.outputs.folder import OutputFolder
from src.train.loop import Trainer
from src.train.records import MetricsLog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6, size=48, seed=2)


def _jpeg(tmp_path, name="ok.jpg"):
    img = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    path = tmp_path / name
    cv2.imwrite(str(path), img)
    return path


# --- images -----------------------------------------------------------------------------------------------

def test_truncated_jpeg_is_detected(tmp_path):
    good = _jpeg(tmp_path)
    assert read_image(str(good)).shape == (40, 56, 3)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert cv2.imread(str(cut)) is not None  # the decoder alone accepts it (gray fill)
    with pytest.raises(DataError, match=r"list.txt:3: image .*cut\.jpg is a truncated JPEG"):
        read_image(str(cut), "list.txt:3")
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(good.read_bytes() + b"\x00" * 16)  # padding after the end marker is fine
    assert read_image(str(padded)).shape == (40, 56, 3)


@pytest.mark.parametrize("content,needle", [(b"", "empty file"), (b"this is text, not a picture\n", "cannot read")])
def test_empty_and_text_images(tmp_path, content, needle):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(DataError, match=needle) as info:
        read_image(str(path))
    assert "bad.jpg" in str(info.value)


def test_image_header_declaring_too_many_pixels_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), np.zeros((64, 80, 3), np.uint8))
    monkeypatch.setattr(dataset_module, "MAX_PIXELS", 64 * 79)
    with pytest.raises(DataError, match=r"declares 80x64 pixels"):
        read_image(str(path))


def test_truncated_jpeg_skipped_in_skip_mode_and_reported_by_check(tmp_path):
    root = make_shapes(tmp_path / "d", num=6, size=48, seed=1)
    victim = root / "JPEGImages" / "shapes_00001.jpg"
    victim.write_bytes(victim.read_bytes()[:300])
    samples = read_list(root / "train.txt", root)
    lenient = SegDataset(samples, dataset_spec("synthetic", 6), 6, on_bad_sample="skip")
    for i in range(len(samples)):
        lenient[i]
    assert lenient.bad_count == 1
    report = check_list(str(root / "train.txt"), str(root), "synthetic", 6)
    assert any("truncated JPEG" in p for p in report["problems"]["unreadable_image"])


def test_all_unreadable_in_skip_mode_names_the_list(tmp_path):
    root = make_shapes(tmp_path / "d", num=4, size=48, seed=1)
    for jpg in (root / "JPEGImages").glob("*.jpg"):
        jpg.write_bytes(b"")
    samples = read_list(root / "train.txt", root)
    with pytest.raises(DataError, match=r"every sample in .*train\.txt is unreadable"):
        SegDataset(samples, dataset_spec("synthetic", 6), 6, on_bad_sample="skip")[0]


def test_list_paths_with_spaces_separated_by_a_tab(tmp_path):
    root = make_shapes(tmp_path / "d", num=4, size=48, seed=1)
    (root / "My Images").mkdir()
    os.rename(root / "JPEGImages" / "shapes_00000.jpg", root / "My Images" / "a b.jpg")
    lst = root / "tab.txt"
    lst.write_text("My Images/a b.jpg\tSegmentationClassAug/shapes_00000.png\n")
    (sample,) = read_list(lst, root)
    assert sample.image.endswith("My Images/a b.jpg") and sample.label.endswith("shapes_00000.png")


def test_pipeline_error_is_read_from_the_sources_record_not_from_mindspores_text(shapes, tmp_path):
    from src.data.pipeline import pipeline_error

    spec = dataset_spec("synthetic", 6)
    samples = read_list(shapes / "train.txt", shapes)
    broken = tmp_path / "x.jpg"
    broken.write_text("not an image")
    samples[0] = dataset_module.Sample(str(broken), samples[0].label, "train.txt", 4)
    source = SegDataset(samples, spec, 6, error_log=str(tmp_path / "data_error.txt"))
    with pytest.raises(DataError):
        source[0]
    wrapped = RuntimeError("Exception thrown from user defined Python function in dataset. (any wording)")
    err = pipeline_error(wrapped, source, "train.txt")
    assert isinstance(err, DataError)
    assert str(err) == f"train.txt:4: cannot read image {broken} (corrupt or not an image in one of JPEG, PNG, BMP, " \
                       f"TIFF, WEBP, GIF, PPM) (while reading train.txt)"
    other = RuntimeError("something else")
    assert pipeline_error(other, source, "train.txt") is other  # the record is used once


# --- config ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_empty_config_is_an_error(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"empty\.yaml: the config is empty"):
        load_config(path)


@pytest.mark.parametrize("key,value,needle", [("base_lr", -0.01, "train.base_lr must be > 0"),
                                              ("base_lr", float("nan"), "train.base_lr must be a finite"),
                                              ("weight_decay", float("inf"), "train.weight_decay must be a finite"),
                                              ("momentum", 1.5, "train.momentum")])
def test_bad_training_numbers_name_the_key(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        config_from_dict({"train": {key: value}}, "x.yaml")


@pytest.mark.parametrize("layers", [18, 34])
def test_depths_the_model_refuses_are_config_errors(layers):
    with pytest.raises(ConfigError, match="model.layers"):
        config_from_dict({"model": {"layers": layers}}, "x.yaml")


# --- output paths ----------------------------------------------------------------------------------------

def test_output_dir_that_is_a_file_or_under_one(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for path in (blocker, blocker / "sub"):
        with pytest.raises(OutputPathError, match=r"train.save_dir .*is a file, not a folder"):
            ensure_output_dir(path, "train.save_dir")
    with pytest.raises(OutputPathError, match="results folder"):
        open_results_dir(blocker / "eval", overwrite=False)


def test_read_only_output_dir(tmp_path):
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
    else:  # root writes into read-only folders; nobody can create folders in sysfs
        ro = Path("/sys") / "pspnet_test_output"
        assert not ro.exists()
    with pytest.raises(OutputPathError, match="cannot write there"):
        ensure_output_dir(ro / "x", "--results-dir")
    assert not (ro / "x").exists()


def test_converter_dst_checked_before_reading(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="--dst"):
        convert_file(str(tmp_path / "does_not_matter.pth"), str(blocker / "w.ckpt"))


def test_trainer_checks_save_dir_and_val_list_before_anything(shapes, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="train.save_dir"):
        Trainer(tiny_config(shapes, blocker / "run"))
    # A misspelled val list fails at the start, and the previous run's config.yaml is kept.
    run = tmp_path / "run"
    with OutputFolder(run, "train.save_dir", "train") as folder:
        folder.put_text("config.yaml", "previous run\n")  # as the previous run wrote it
    with pytest.raises(DataError, match=r"list file not found: .*vall\.txt"):
        Trainer(tiny_config(shapes, run, data={"val_list": "vall.txt"}, train={"eval_interval": 1}))
    assert (run / "config.yaml").read_text() == "previous run\n"


def test_partial_checkpoints_removed_at_start(shapes, tmp_path):
    run = tmp_path / "run"
    with OutputFolder(run, "train.save_dir", "train") as folder:  # a run that saved epoch 1, then was killed
        folder.put_bytes("checkpoints/epoch_0001.ckpt", b"a real one")
        folder.put_bytes("checkpoints/epoch_0002.ckpt", b"the one the kill interrupted")
    ckpts = run / "checkpoints"
    leftovers = [ckpts / ".epoch_0002.ckpt.3a2f9c01.part", ckpts / ".epoch_0001.ckpt.0b1c2d3e.part"]
    leftovers[0].write_bytes(b"partial")
    leftovers[1].mkdir()  # a writer's private staging folder, with MindSpore's own temporary inside
    (leftovers[1] / "epoch_0001.ckpt.tmp").write_bytes(b"partial")
    with pytest.raises(OutputExistsError, match="--resume auto"):  # stops right after the clean-up
        Trainer(tiny_config(shapes, run, data={"val_list": "nope.txt"}, train={"eval_interval": 1}))
    assert not any(p.exists() for p in leftovers) and (ckpts / "epoch_0001.ckpt").exists()


def test_full_disk_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch):
    import mindspore as ms

    path = tmp_path / "epoch_0001.ckpt"
    entries = arrays_to_entries({"w": np.ones((256, 1024), np.float32)})
    save_checkpoint_atomic(entries, path)
    before = path.read_bytes()

    def full_disk(entries, name):
        Path(os.path.splitext(name)[0] + ".tmp").write_bytes(b"half")  # as MindSpore leaves it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ms, "save_checkpoint", full_disk)
    with pytest.raises(CheckpointError) as info:
        save_checkpoint_atomic(entries, path)
    message = str(info.value)
    assert "No space left" in message and "needs about 1.0 MiB" in message and str(path) in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001.ckpt", "epoch_0001.ckpt.sha256"]
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]  # no temporary file left


def test_metrics_log_truncates_records_after_resume_step(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl", OutputFolder(tmp_path, "train.save_dir", "train", lock=False).__enter__())
    for step in (1, 2, 3, 4):
        log.write({"kind": "step", "step": step})
    log.write({"kind": "eval", "epoch": 2, "step": 4})
    assert log.truncate_after(2) == 3
    assert [r["step"] for r in log.read()] == [1, 2]


# --- entry points: exit 2, one line ----------------------------------------------------------------------

def _run(args, **kw):
    env = {**os.environ, "GLOG_v": "3"}
    return subprocess.run([sys.executable, *args], cwd=str(ROOT), capture_output=True, text=True, env=env, **kw)


def test_export_height_zero_is_an_error(tmp_path):
    proc = _run(["export.py", "--config", "config/demo_synthetic.yaml", "--ckpt", str(tmp_path / "x.ckpt"),
                 "--file_format", "MINDIR", "--height", "0", "--file_name", str(tmp_path / "m")])
    assert proc.returncode == 2
    assert "input size must be positive" in proc.stderr and "Traceback" not in proc.stderr


def test_every_project_error_shares_one_base():
    from src.checkpoint.format import CheckpointError as C
    from src.convert.pth import PthError
    from src.convert.weights import ConversionError
    from src.system.device import DeviceError
    from src.runtime.backends import BackendError
    from src.outputs.errors import OutputExistsError, RunLockedError
    from src.deploy.export import ExportError
    from src.errors import TrainingError

    for cls in (C, ConfigError, ConversionError, DataError, DeviceError, BackendError, OutputExistsError, RunLockedError,
                ExportError, PthError, TrainingError, OutputPathError):
        assert issubclass(cls, PSPNetError), cls


def test_bad_samples_counted_across_two_workers(tmp_path):
    from src.data.pipeline import build_train_pipeline

    root = make_shapes(tmp_path / "d", num=8, size=48, seed=1)
    lines = (root / "train.txt").read_text().splitlines()
    for line in lines[:3]:
        (root / line.split()[0]).write_bytes(b"")
    cfg = config_from_dict({"data": {"dataset": "synthetic", "data_root": str(root), "classes": 6, "workers": 2,
                                     "train_list": "train.txt", "on_bad_sample": "skip"},
                            "train": {"crop_h": 33, "crop_w": 33, "batch_size": 1, "seed": 4}})
    log = tmp_path / "bad.tsv"
    ds, source, _ = build_train_pipeline(cfg.data, cfg.train, end_epoch=1, bad_log=str(log))
    batches = list(ds.create_tuple_iterator(num_epochs=1, output_numpy=True))
    assert len(batches) == len(lines)
    assert source.bad_seen == set()  # the main process read nothing itself: the workers did
    assert source.bad_count == 3


@pytest.mark.parametrize("kind", ["rgb", "16bit", "size", "values"])
def test_bad_labels_name_list_line_and_file(tmp_path, kind):
    from PIL import Image

    root = make_shapes(tmp_path / "d", num=4, size=48, seed=1)
    samples = read_list(root / "train.txt", root)
    label = Path(samples[0].label)
    if kind == "rgb":
        Image.new("RGB", (48, 48), (10, 20, 30)).save(label)
    elif kind == "16bit":
        Image.fromarray(np.full((48, 48), 4000, np.uint16)).save(label)
    elif kind == "size":
        Image.new("L", (20, 20), 1).save(label)
    else:
        with Image.open(samples[0].image) as im:
            Image.new("L", im.size, 17).save(label)
    needle = {"rgb": "is an RGB colour mask", "16bit": "values outside 0..255", "size": "but label", "values": "outside"}[kind]
    with pytest.raises(DataError, match=needle) as info:
        SegDataset(samples, dataset_spec("synthetic", 6), 6)[0]
    assert "train.txt:" in str(info.value) and label.name in str(info.value)


def test_export_file_name_under_a_file_checked_before_loading(tmp_path):
    from src.config import ModelConfig
    from src.deploy.export import export_model

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="--file_name"):
        export_model(ModelConfig(), 6, str(tmp_path / "missing.ckpt"), "MINDIR", 1, 33, 33, str(blocker / "m"))


def test_curves_plot_shows_every_series_with_labels(tmp_path):
    from src.train.records import plot_curves

    steps = [{"kind": "step", "epoch": 1, "step": s, "loss": 3.0 / s, "main": 2.0 / s, "aux": 2.5 / s,
              "lr": 0.01 * (1 - s / 10) ** 0.9, "head_lr": 0.1 * (1 - s / 10) ** 0.9} for s in range(1, 7)]
    evals = [{"kind": "eval", "epoch": e, "step": 3 * e, "miou": 0.2 * e, "macc": 0.3 * e, "allacc": 0.4 * e}
             for e in (1, 2)]
    panels = plot_curves(steps + evals, tmp_path / "curves.png")
    loss, lr, val = panels.values()
    assert loss["series"] == {"total": 6, "main": 6, "aux": 6} and loss["xlabel"] == "global step"
    assert lr["series"] == {"backbone lr": 6, "head lr (ppm/cls/aux)": 6} and lr["ylabel"] == "learning rate"
    assert val["series"] == {"mIoU": 2, "mAcc": 2, "allAcc": 2} and val["xlabel"] == "epoch"
    import cv2

    image = cv2.imread(str(tmp_path / "curves.png"))
    assert image.shape[:2] == (420, 1500)
    empty = plot_curves([], tmp_path / "empty.png")
    assert all(not p["series"] for p in empty.values())


@pytest.mark.parametrize("payload", [b"\x00\xffnot json", b"[1, 2]", b'{"input_shape": "x"}',
                                     b'{"input_shape": [1, 3, 33, -5]}', b'{"input_shape": [1, 3, 33, 33], "classes": "6"}'])
def test_hostile_export_sidecar_is_one_backend_error(tmp_path, payload):
    from src.runtime.backends import BackendError, onnx_predict, read_sidecar

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    (tmp_path / "m.onnx.json").write_bytes(payload)
    with pytest.raises(BackendError, match=r"m\.onnx\.json: not an export sidecar"):
        read_sidecar(model)
    with pytest.raises(BackendError, match="not an export sidecar"):  # checked before the model is opened
        onnx_predict(str(model), 1, (33, 33), 6)


PROTOCOL = {"classes": 6, "crop_h": 33, "crop_w": 33, "base_size": 48, "batch_size": 1, "scales": [1.0],
            "flip": False, "stride_rate": 0.5, "mean": [1, 2, 3], "std": [1, 1, 1], "max_image_gb": 1.0}


def _meta(files=("00000_s0_000.bin",), name="a"):
    return {"protocol": dict(PROTOCOL), "input_shape": [1, 3, 33, 33],
            "images": [{"name": name, "image": "a.png", "label": None, "h": 33, "w": 33,
                        "scales": [{"plan": {}, "files": list(files)}]}]}


@pytest.mark.parametrize("payload,match", [
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[1, 2]", "expected an object"),
    (json.dumps({**_meta(), "input_shape": [1, 3, 33]}).encode(), "input_shape must be 4 positive integers"),
    (json.dumps(_meta(files=["../../evil.bin"])).encode(), "plain input file names"),
    (json.dumps(_meta(name="../../evil")).encode(), "plain file name"),
])
def test_hostile_meta_json_is_one_data_error_and_writes_nothing(tmp_path, payload, match):
    """A meta.json from elsewhere: garbage, wrong types, or names that climb out of the work folder."""
    from src.data.labels import dataset_spec
    from src.deploy.offline import postprocess, run_inputs

    work = tmp_path / "work" / "w"
    (work / "input").mkdir(parents=True)
    (work / "meta.json").write_bytes(payload)
    before = sorted(p for p in tmp_path.rglob("*"))
    calls = []
    for fn in (lambda: run_inputs(str(work), calls.append), lambda: postprocess(str(work), dataset_spec("synthetic", 6),
                                                                             results_dir=str(tmp_path / "pics"))):
        with pytest.raises(DataError, match=match) as info:
            fn()
        assert "meta.json" in str(info.value)
    assert not calls and sorted(p for p in tmp_path.rglob("*")) == before  # nothing predicted, nothing written


def test_meta_json_of_another_version_or_missing_inputs_is_one_data_error(tmp_path):
    from src.data.labels import dataset_spec
    from src.deploy.offline import postprocess, run_inputs

    (tmp_path / "input").mkdir()
    (tmp_path / "meta.json").write_text(json.dumps({**_meta(), "protocol": {**PROTOCOL, "not_a_field": 1}}))
    with pytest.raises(DataError, match="protocol has fields this version does not know: not_a_field"):
        postprocess(str(tmp_path), dataset_spec("synthetic", 6))
    (tmp_path / "meta.json").write_text(json.dumps({**_meta(), "protocol": {"classes": 6}}))
    with pytest.raises(DataError, match=r"protocol\.crop_h must be an integer from 1 to 8192, got nothing"):
        postprocess(str(tmp_path), dataset_spec("synthetic", 6))
    (tmp_path / "meta.json").write_text(json.dumps(_meta()))
    with pytest.raises(DataError, match=r"input[/\\]00000_s0_000\.bin not found"):
        run_inputs(str(tmp_path), lambda x: x)


def test_runner_cli_on_a_hostile_meta_json_exits_2_with_one_line(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps(_meta(files=["../evil.bin"])))
    proc = subprocess.run([sys.executable, "inference/run.py", "--work", str(tmp_path), "--model",
                           str(tmp_path / "m.onnx")], cwd=str(ROOT), capture_output=True, text=True,
                          env={**os.environ, "GLOG_v": "3"})
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(errors) == 1 and "plain input file names" in errors[0]
    assert "Traceback" not in proc.stderr and not (tmp_path.parent / "evil.bin_0.bin").exists()
