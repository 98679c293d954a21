"""runtime.backends: the ms, mindir and onnx backends behind eval give the same predictions; eval through them
(report, pictures, the exported batch, the eval command, a full disk); the lite backend driven through a stand-in
mindspore_lite module."""
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import full_disk_at, gray_masks as _gray, save_config
from src import cli
from src.checkpoint.format import CheckpointError
from src.data.dataset import DataError
from src.data.labels import voc_palette
from src.evaluation.evaluate import run_eval
from src.outputs.errors import OutputExistsError
from src.runtime.backends import BackendError, lite_predict, onnx_predict


def test_eval_ms_backend_writes_report_and_pictures(trained, caplog):
    cfg, ckpt, tmp = trained
    with caplog.at_level("WARNING"):
        res = run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "ev_ms"))
    data = json.loads((tmp / "ev_ms" / "results.json").read_text())
    gt = np.array(data["confusion_matrix"]).sum(axis=1)
    missing = [f"class_{c}" for c in range(6) if gt[c] == 0]
    assert missing and f"{missing[0]}" in caplog.text and "have no pixel in the val labels" in caplog.text
    assert data["mIoU"] == pytest.approx(res["mIoU"]) and len(data["per_class"]) == 6
    assert data["tag"] == "Synthetic-ss" and np.array(data["confusion_matrix"]).sum() > 0
    gray = _gray(tmp / "ev_ms")
    assert len(gray) == 1  # one val image
    color = Image.open(next((tmp / "ev_ms" / "color").glob("*.png")))
    assert color.mode == "P" and np.array_equal(np.array(color), next(iter(gray.values())))
    assert color.getpalette()[3:6] == voc_palette()[1].tolist()
    assert next((tmp / "ev_ms" / "overlay").glob("*.jpg")).stat().st_size > 0
    report = (tmp / "ev_ms" / "report.md").read_text()
    assert all(f"| {p['class']} | " in report for p in data["per_class"])
    assert f"Synthetic-ss:mIoU/mAcc/allAcc {data['mIoU']:.4f}/" in report and "- worst: " in report
    assert all((tmp / "ev_ms" / f).stat().st_size > 1000 for f in ("per_class_iou.png", "confusion.png",
                                                                    "best_worst.png"))
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "ev_ms"))


def test_all_backends_give_the_same_predictions(trained, exported):
    cfg, ckpt, tmp = trained
    results = {"ms": run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "b_ms"))}
    results["mindir"] = run_eval(cfg, exported["MINDIR"]["file"], "mindir", results_dir=str(tmp / "b_mindir"))
    results["onnx"] = run_eval(cfg, exported["ONNX"]["file"], "onnx", results_dir=str(tmp / "b_onnx"))
    ref = _gray(tmp / "b_ms")
    for b in ("mindir", "onnx"):
        got = _gray(tmp / f"b_{b}")
        assert got.keys() == ref.keys()
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])
        assert results[b]["confusion_matrix"] == results["ms"]["confusion_matrix"]


def test_backend_shape_mismatch_is_clear(trained, exported):
    cfg, _, _ = trained
    with pytest.raises(BackendError, match=r"exported for input \[2, 3, 33, 33\]"):
        onnx_predict(exported["ONNX"]["file"], 1, (33, 33), cfg.data.classes)


def test_checkpoint_for_other_classes_is_refused(trained):
    cfg, ckpt, _ = trained
    from src.runtime.backends import load_eval_network

    with pytest.raises(CheckpointError, match=r"cls\.4\.weight.*\n?.*6 classes|shape mismatch") as info:
        load_eval_network(cfg.model, 21, str(ckpt))
    assert "21 classes" in str(info.value) and "cls.4.weight" in str(info.value)


def test_missing_list_is_clear(trained, tmp_path):
    cfg, ckpt, _ = trained
    from src.config import apply_overrides
    import copy

    bad = copy.deepcopy(cfg)
    apply_overrides(bad, ["data.val_list", "nope.txt"])
    with pytest.raises(DataError, match="nope.txt"):
        run_eval(bad, str(ckpt), "ms", results_dir=str(tmp_path / "r"))


def test_training_eval_full_mode_equals_eval_py(trained):
    cfg, ckpt, tmp = trained
    from src.runtime.backends import load_eval_network
    from src.evaluation.evaluate import evaluate_network as evaluate_net

    net = load_eval_network(cfg.model, cfg.data.classes, str(ckpt))
    matrix, count = evaluate_net(net, cfg, "full", 0, 1)
    ref = run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "full_ref"))
    assert count == ref["images"] == 1 and matrix.tolist() == ref["confusion_matrix"]
    fast, fast_count = evaluate_net(net, cfg, "fast", 0, 1)
    assert fast_count == 1 and fast.sum() > 0


def test_exported_model_sets_the_eval_batch(trained, exported):
    import copy

    cfg, ckpt, tmp = trained
    other = copy.deepcopy(cfg)
    other.eval.batch_size = 3  # the models were exported for batch 2: the README's case (export 1, eval 4)
    got = run_eval(other, exported["ONNX"]["file"], "onnx", results_dir=str(tmp / "batch_onnx"))
    ref = run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "batch_ms"))
    assert got["confusion_matrix"] == ref["confusion_matrix"]


def test_eval_command_takes_zoo_device_options_and_writes_a_dated_log(trained, exported, tmp_path):
    import re

    cfg, _, _ = trained
    cfg_file = save_config(cfg, tmp_path / "c.yaml")
    out = tmp_path / "ev"
    import mindspore as ms

    try:
        assert cli.main(["--config", str(cfg_file), "--ckpt", exported["ONNX"]["file"], "--backend", "onnx",
                         "--results-dir", str(out), "--device_target", "CPU", "--device_id", "0"], command="eval") == 0
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)  # the command set up GRAPH mode for this process
    lines = (out / "eval.log").read_text().splitlines()
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in lines[:3])
    assert any("mIoU/mAcc/allAcc" in line for line in lines) and (out / "results.json").is_file()
    for command, extra in (("train", []), ("export", ["--ckpt", "x.ckpt", "--file_format", "MINDIR"])):
        a = cli.build_parser(command).parse_args(["--config", str(cfg_file), "--device_target", "CPU",
                                                  "--device_id", "3", *extra])
        loaded = cli._load(a)
        assert (loaded.device.target, loaded.device.device_id) == ("CPU", 3)


def test_full_disk_while_eval_writes_pictures_and_results(trained, tmp_path, caplog, monkeypatch):
    from src.data.dataset import read_list
    from src.outputs.errors import OutputPathError

    cfg, ckpt, _ = trained
    out = tmp_path / "res"
    first = Path(read_list(Path(cfg.data.data_root) / cfg.data.val_list, cfg.data.data_root)[0].image).stem
    full_disk_at(monkeypatch, f"{first}.png", "results.json")
    caplog.set_level("INFO")
    with pytest.raises(OutputPathError) as info:
        run_eval(cfg, str(ckpt), overwrite=True, results_dir=str(out))
    message = str(info.value)
    assert "results.json" in message and "No space left on device" in message and "scores are complete" in message
    assert "\n" not in message
    assert f"cannot write the pictures of {first}" in caplog.text and "the evaluation goes on" in caplog.text
    assert any("mIoU/mAcc/allAcc" in r.message for r in caplog.records)  # the scores were logged before
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]  # no temporary file left


def test_lite_backend_without_the_wheel_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mindspore_lite", None)  # import fails as if not installed
    with pytest.raises(BackendError, match="mindspore_lite Python package"):
        lite_predict(str(tmp_path / "m.mindir"), 1, (33, 33), 6)


def _fake_lite(calls):
    """A stand-in for the mindspore_lite module recording how the backend drives it."""
    mod = types.ModuleType("mindspore_lite")

    class Context:
        def __init__(self):
            self.target = None
            self.ascend = types.SimpleNamespace(device_id=None)

    class Tensor:
        def set_data_from_numpy(self, x):
            calls.append(("input", x.dtype, x.shape))
            self.data = x

        def get_data_to_numpy(self):
            return self.data * 2

    class Model:
        def build_from_file(self, path, model_type, context):
            calls.append(("build", path, model_type, context.target, context.ascend.device_id))
            self.inputs = [Tensor()]

        def get_inputs(self):
            return self.inputs

        def predict(self, inputs):
            return [inputs[0]]

    mod.Context, mod.Model = Context, Model
    mod.ModelType = types.SimpleNamespace(MINDIR="MINDIR")
    return mod


def test_lite_backend_builds_from_file_and_predicts(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "mindspore_lite", _fake_lite(calls))
    import mindspore as ms
    from mindspore import nn, ops

    class Net(nn.Cell):
        def construct(self, x):
            return ops.relu(x)

    ms.export(Net(), ms.Tensor(np.zeros((2, 3, 33, 33), np.float32)), file_name=str(tmp_path / "m"),
              file_format="MINDIR")  # a real file: its input is read and checked before Lite builds it
    model = tmp_path / "m.mindir"
    predict = lite_predict(str(model), 2, (33, 33), 6, target="ascend", device_id=3)
    out = predict(np.ones((2, 3, 33, 33), np.float64))
    assert calls[0] == ("build", str(model), "MINDIR", ["ascend"], 3)
    assert calls[1] == ("input", np.float32, (2, 3, 33, 33))
    np.testing.assert_array_equal(out, np.full((2, 3, 33, 33), 2.0))
    with pytest.raises(BackendError, match="not found"):
        lite_predict(str(tmp_path / "none.mindir"), 2, (33, 33), 6)
