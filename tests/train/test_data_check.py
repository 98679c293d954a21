"""Training's check of its labels (src/train/data_check.py): labels that cannot teach what the config declares
are refused before anything is built; one scan serves that check and train.class_weights auto, kept in the run
folder (a resume does not scan again) and in the run state (a resume uses the same weights)."""
import json
import logging
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from src.config import load_config
from src.data.dataset import DataError
from src.data.prepare import fix_command, prepare_folders
from src.data.synthetic import generate
from src.train import data_check
from src.train.data_check import SCAN_NAME, check_training_data, continued_class_weights
from src.train.loop import Trainer
from src.train.run_state import CLASS_WEIGHTS_NAME

from helpers import TINY, TINY_DEPTH

TINY_RUN = ["train.epochs", "1", "train.batch_size", "2", "train.crop_h", "33", "train.crop_w", "33",
            "train.scale_min", "1.0", "train.scale_max", "1.0", "train.rotate_prob", "0", "train.blur_prob", "0",
            "train.eval_interval", "0", "train.log_every", "1", "model.layers", str(TINY_DEPTH),
            "model.width_divisor", str(TINY), "data.workers", "1"]


@pytest.fixture(scope="module")
def binary_set(tmp_path_factory):
    """A user's two folders of photos and 0/255 masks, paired by `prepare folders`."""
    root = tmp_path_factory.mktemp("own")
    generate(root / "mine", "shapes", num=8, size=48, seed=1, layout="folders", masks="binary")
    prepare_folders(str(root / "mine" / "images"), str(root / "mine" / "masks"), str(root / "ds"), 0.25)
    return root


def _cfg(path, tmp_path, *opts):
    return load_config(path, [*TINY_RUN, "train.save_dir", str(tmp_path / "run"), *opts])


def test_binary_masks_are_refused_before_anything_is_built(binary_set, tmp_path, monkeypatch):
    cfg = _cfg(binary_set / "ds" / "config.yaml", tmp_path)
    built = []
    monkeypatch.setattr("src.train.loop.build_network", lambda *a, **k: built.append(1))
    with pytest.raises(DataError, match=r"refusing to train: .*255 = data.ignore_label.*--fix binary"):
        Trainer(cfg, "CPU")
    assert not built


def test_absent_classes_and_mostly_ignored_labels_are_refused_naming_the_fix(binary_set, tmp_path):
    fix_command(str(binary_set / "ds" / "config.yaml"), "binary", str(tmp_path / "fixed"))
    cfg_path = tmp_path / "fixed" / "config.yaml"
    three = ["data.classes", "3", "data.class_names", "[bg, object, sky]"]
    with pytest.raises(DataError, match=r"no pixel of class\(es\) sky .*data.allow_absent_classes"):
        check_training_data(_cfg(cfg_path, tmp_path, *three))
    assert check_training_data(_cfg(cfg_path, tmp_path, *three, "data.allow_absent_classes", "[sky]")) is None
    # the same masks read with 1 as the ignore value: almost every labelled pixel is background, ~13% ignored
    # is fine; make the masks 97% ignored instead
    masks = sorted((tmp_path / "fixed" / "masks").glob("*.png"))
    for m in masks:
        arr = np.full(np.asarray(Image.open(m)).shape, 255, np.uint8)
        arr[0, :2], arr[1, :2] = 0, 1
        Image.fromarray(arr).save(m)
    with pytest.raises(DataError, match=r"refusing to train: 9\d\.\d% of the labels' pixels are data.ignore_label"):
        check_training_data(_cfg(cfg_path, tmp_path, "train.save_dir", str(tmp_path / "run2")))


def test_one_scan_is_kept_and_changed_masks_are_scanned_again(binary_set, tmp_path, monkeypatch):
    fix_command(str(binary_set / "ds" / "config.yaml"), "binary", str(tmp_path / "fixed"))
    cfg = _cfg(tmp_path / "fixed" / "config.yaml", tmp_path, "train.class_weights", "auto")
    (tmp_path / "run").mkdir()
    from src.outputs.folder import OutputFolder

    scans = []
    real = data_check.scan_samples
    monkeypatch.setattr(data_check, "scan_samples", lambda *a, **k: scans.append(1) or real(*a, **k))
    with OutputFolder(tmp_path / "run", "train.save_dir", "train") as folder:
        first = check_training_data(cfg, folder=folder)
    assert len(scans) == 1 and (tmp_path / "run" / SCAN_NAME).is_file()
    assert check_training_data(cfg) == first and len(scans) == 1  # from the kept scan
    kept = json.loads((tmp_path / "run" / SCAN_NAME).read_text())
    forged = dict(kept, scan=dict(kept["scan"], class_pixels=[1, 1]))  # counts edited, fingerprint kept
    (tmp_path / "run" / SCAN_NAME).write_text(json.dumps(forged))
    assert check_training_data(cfg) == first and len(scans) == 2  # not trusted: scanned again
    (tmp_path / "run" / SCAN_NAME).unlink()
    with OutputFolder(tmp_path / "run", "train.save_dir", "train") as folder:
        check_training_data(cfg, folder=folder)
    scans.clear()
    mask = sorted((tmp_path / "fixed" / "masks").glob("*.png"))[0]
    Image.fromarray(np.ones(np.asarray(Image.open(mask)).shape, np.uint8)).save(mask)
    os.utime(mask, ns=(1, 1))
    changed = check_training_data(cfg)
    assert len(scans) == 1 and changed != first  # the changed mask was read again, and its pixels count
    (tmp_path / "run" / SCAN_NAME).write_text(json.dumps({"fingerprint": "x" * 64, "scan": {}}))
    assert check_training_data(cfg) == changed and len(scans) == 2  # a foreign or stale file: scanned again


def test_auto_class_weights_reach_the_loss_the_config_record_and_a_resume(binary_set, tmp_path):
    fix_command(str(binary_set / "ds" / "config.yaml"), "binary", str(tmp_path / "fixed"))
    cfg = _cfg(tmp_path / "fixed" / "config.yaml", tmp_path, "train.class_weights", "auto")
    trainer = Trainer(cfg, "CPU")
    weights = trainer.state.class_weights
    assert weights is not None and weights[1] > weights[0] > 0  # the object is the rarer class
    np.testing.assert_allclose(trainer.step_cell.network.loss.ce.weights.asnumpy(), weights, rtol=1e-6)
    trainer.run()
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["train"]["class_weights"] == pytest.approx(weights)
    from src.checkpoint.format import read_checkpoint

    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt"))[-1]
    np.testing.assert_allclose(read_checkpoint(str(ckpt))[CLASS_WEIGHTS_NAME], weights, rtol=1e-6)
    # the labels change; a resume keeps the weights the run started with
    for m in sorted((tmp_path / "fixed" / "masks").glob("*.png"))[:3]:
        Image.fromarray(np.ones(np.asarray(Image.open(m)).shape, np.uint8)).save(m)
    more = _cfg(tmp_path / "fixed" / "config.yaml", tmp_path, "train.class_weights", "auto", "train.epochs", "2")
    resumed = Trainer(more, "CPU", resume="auto", allow_schedule_change=True)
    np.testing.assert_allclose(resumed.state.class_weights, weights, rtol=1e-6)


def test_a_resumed_auto_run_keeps_its_starting_weights_and_a_changed_config_is_followed(caplog):
    with caplog.at_level(logging.WARNING, logger="src.train.data_check"):
        assert continued_class_weights("auto", [1.0, 3.0], None) == [1.0, 3.0]  # a fresh run: the scan's
        assert continued_class_weights("auto", [1.0, 2.0], [1.0, 2.0]) == [1.0, 2.0]
        assert caplog.text == ""
        assert continued_class_weights("auto", [1.0, 3.0], [1.0, 2.0]) == [1.0, 2.0]  # resumed: the saved ones
        assert "the resumed run keeps the ones it started with (1, 2)" in caplog.text
        caplog.clear()
        assert continued_class_weights([1.0, 5.0], [1.0, 5.0], [1.0, 2.0]) == [1.0, 5.0]  # the config's own list
        assert "started with [1.0, 2.0] and continues with [1.0, 5.0]" in caplog.text
    assert continued_class_weights("none", None, None) is None
