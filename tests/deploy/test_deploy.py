"""Eval backends, export, the 310 file flow and predict, end to end on a small synthetic set."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import ANY_CLASS_MAY_BE_ABSENT, full_disk_at, make_shapes, tiny_config
from src import cli
from src.checkpoint import CheckpointError
from src.data.dataset import DataError
from helpers import save_config
from src.data.labels import voc_palette
from src.runtime.backends import BackendError
from src.deploy.predict import collect_images, predict_images
from src.outputs import OutputExistsError
from src.evaluation.protocol import protocol_from_config
from src.deploy.offline import postprocess, preprocess, run_inputs
from src.runtime.backends import onnx_predict
from src.evaluation.evaluate import run_eval
from src.deploy.export import ExportError, export_model
from src.train.loop import Trainer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deploy")
    root = make_shapes(tmp / "data", num=5, size=48, seed=6)
    cfg = tiny_config(root, tmp / "run", train={"epochs": 1, "max_steps": 1}, data=ANY_CLASS_MAY_BE_ABSENT,
                      eval_={"base_size": 40, "test_h": 33, "test_w": 33, "batch_size": 2, "save_images": True})
    Trainer(cfg).run()
    ckpt = tmp / "run" / "checkpoints" / "epoch_0001.ckpt"
    assert ckpt.is_file()
    return cfg, ckpt, tmp


def _gray(results_dir):
    return {p.name: np.array(Image.open(p)) for p in sorted(Path(results_dir, "gray").glob("*.png"))}


@pytest.fixture(scope="module")
def exported(trained):
    cfg, ckpt, tmp = trained
    out = {}
    for fmt in ("MINDIR", "ONNX"):
        out[fmt] = export_model(cfg.model, cfg.data.classes, str(ckpt), fmt, 2, 33, 33, str(tmp / "exp" / "m"),
                                mean=cfg.data.mean, std=cfg.data.std)
    return out


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


def test_export_mindir_reloads_equal(exported):
    r = exported["MINDIR"]
    assert Path(r["file"]).suffix == ".mindir" and r["input_shape"] == [2, 3, 33, 33]
    # The export is the fixed-size form; it matches the dynamic network to float rounding (~3e-6).
    assert r["max_abs_diff"] <= 1e-5 and r["argmax_agreement"] == 1.0
    assert json.loads(Path(r["file"] + ".json").read_text())["output"] == "logits"


@pytest.mark.parametrize("hw", [(33, 41), (473, 473)])
def test_export_onnx_matches_mindspore(trained, hw):
    cfg, ckpt, tmp = trained
    r = export_model(cfg.model, cfg.data.classes, str(ckpt), "ONNX", 1, hw[0], hw[1], str(tmp / f"o{hw[0]}"))
    assert r["max_abs_diff"] < 1e-4 and r["argmax_agreement"] == 1.0
    import onnx

    model = onnx.load(r["file"])
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"Resize", "GlobalAveragePool", "AveragePool"}  # pooling/resizes became matmuls


def test_air_needs_ascend(trained):
    cfg, ckpt, tmp = trained
    with pytest.raises(ExportError, match="AIR export needs the Ascend backend"):
        export_model(cfg.model, cfg.data.classes, str(ckpt), "AIR", 1, 33, 33, str(tmp / "a"), device_target="CPU")


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


def test_offline_flow_equals_eval(trained, exported):
    cfg, ckpt, tmp = trained
    work = tmp / "work"
    protocol = protocol_from_config(cfg.data, cfg.eval)
    meta = preprocess(str(Path(cfg.data.data_root) / cfg.data.val_list), cfg.data.data_root, str(work), protocol)
    assert meta["input_shape"] == [2, 3, 33, 33]
    n = run_inputs(str(work), onnx_predict(exported["ONNX"]["file"], 2, (33, 33), cfg.data.classes))
    assert n == len(list((work / "input").glob("*.bin")))
    from src.data.labels import dataset_spec

    matrix = postprocess(str(work), dataset_spec("synthetic", 6), 255, str(work / "pics"))
    ref = run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "off_ref"))
    assert matrix.tolist() == ref["confusion_matrix"]
    assert _gray(work / "pics").keys() == _gray(tmp / "off_ref").keys()
    cfg_file = save_config(cfg, tmp / "offline_cfg.yaml")
    assert cli.main(["--config", str(cfg_file), "--work", str(work), "--report-dir", str(tmp / "off_report")],
                    command="postprocess") == 0
    assert (tmp / "off_report" / "report.md").read_text().splitlines()[4] == \
        (tmp / "off_ref" / "report.md").read_text().splitlines()[4].replace("Synthetic-ss", "310-flow")
    (work / "output" / sorted(p.name for p in (work / "output").iterdir())[0]).unlink()
    with pytest.raises(DataError, match="missing model output"):
        postprocess(str(work), dataset_spec("synthetic", 6))


def test_predict_writes_masks_of_image_size_with_palette(trained, tmp_path):
    cfg, ckpt, tmp = trained
    from src.runtime.backends import make_predict

    protocol = protocol_from_config(cfg.data, cfg.eval)
    predict = make_predict("ms", str(ckpt), cfg.model, 6, protocol.batch_size, (33, 33))
    img = np.random.default_rng(0).integers(0, 255, (70, 25, 3), np.uint8)
    Image.fromarray(img).save(tmp_path / "odd.png")
    paths = collect_images([str(tmp_path)])
    written = predict_images(paths, predict, protocol, tmp_path / "out", voc_palette())
    mask = Image.open(written[0])
    assert mask.size == (25, 70) and mask.mode == "P"
    assert mask.getpalette()[: 3 * 6] == voc_palette()[:6].reshape(-1).tolist()
    with pytest.raises(DataError, match="input not found"):
        collect_images([str(tmp_path / "nope.jpg")])


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


def test_mindir_has_no_aicpu_pooling_ops(exported):
    from src.deploy.export import mindir_primitives

    ops = mindir_primitives(exported["MINDIR"]["file"])
    assert ops.get("Conv2D") == 25  # the parse found the real graph: the tiny network has 19 + 4 (PPM) + 2 (cls) convs
    assert not {"AdaptiveAvgPool2D", "MaxPool3DWithArgmax", "ResizeBilinearV2"} & set(ops), sorted(ops)
    assert exported["MINDIR"]["max_abs_diff"] < 1e-3


def test_exported_model_sets_the_eval_batch(trained, exported):
    import copy

    cfg, ckpt, tmp = trained
    other = copy.deepcopy(cfg)
    other.eval.batch_size = 3  # the models were exported for batch 2: the README's case (export 1, eval 4)
    got = run_eval(other, exported["ONNX"]["file"], "onnx", results_dir=str(tmp / "batch_onnx"))
    ref = run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp / "batch_ms"))
    assert got["confusion_matrix"] == ref["confusion_matrix"]


# --- the chunked 310 flow: bounded disk, a work folder it may clear, the same numbers as eval.py ----------------

@pytest.mark.slow
def test_chunked_flow_equals_eval_and_leaves_no_windows(trained, exported, tmp_path):
    from src.data.dataset import read_list
    from src.data.labels import spec_of
    from src.deploy.offline import bytes_per_image, python_runner, run_flow

    import dataclasses

    cfg, ckpt, tmp = trained
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_list=cfg.data.train_list))  # 4 images
    protocol = protocol_from_config(cfg.data, cfg.eval)
    samples = read_list(str(Path(cfg.data.data_root) / cfg.data.val_list), cfg.data.data_root)
    seen = []

    def runner(folder):
        seen.append(sorted(p.name for p in (folder.root / "input").iterdir()))
        python_runner(onnx_predict(exported["ONNX"]["file"], 2, (33, 33), cfg.data.classes))(folder)

    one_image = bytes_per_image(protocol) / 1e9
    res = run_flow(samples, tmp_path / "w", protocol, runner, spec_of(cfg.data), 255, max_disk_gb=one_image)
    ref = run_eval(cfg, str(ckpt), "ms", results_dir=str(tmp_path / "ref"))
    assert res["confusion_matrix"] == ref["confusion_matrix"]
    assert res["chunks"] == len(samples) == len(seen) >= 2  # one image per chunk at that budget
    assert not (tmp_path / "w" / "input").exists() and not (tmp_path / "w" / "output").exists()
    assert json.loads((tmp_path / "w" / "results.json").read_text())["mIoU"] == pytest.approx(ref["mIoU"])
    assert (tmp_path / "w" / "report.md").is_file()
    # a second run reuses its own work folder: its results only with overwrite, and a user's files stay
    (tmp_path / "w" / "mine.txt").write_text("a user's file")
    (tmp_path / "w" / "results").mkdir()
    (tmp_path / "w" / "results" / "my_analysis.txt").write_text("notes")
    with pytest.raises(OutputExistsError, match="earlier result"):
        run_flow(samples[:1], tmp_path / "w", protocol, runner, spec_of(cfg.data), 255)
    run_flow(samples[:1], tmp_path / "w", protocol, runner, spec_of(cfg.data), 255, save_images=True, overwrite=True)
    assert (tmp_path / "w" / "mine.txt").read_text() == "a user's file"
    assert (tmp_path / "w" / "results" / "my_analysis.txt").read_text() == "notes"
    assert len(list((tmp_path / "w" / "results" / "gray").glob("*.png"))) == 1


def test_flow_work_folder_keeps_a_users_files(tmp_path):
    from src.deploy.offline import WorkDirError, prepare_work_dir

    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "thesis.tex").write_text("precious")
    (tmp_path / "user" / "input").mkdir()
    (tmp_path / "user" / "input" / "mine.bin").write_bytes(b"12")
    (tmp_path / "user" / "results.json").write_text("{}")  # a user's file where the flow writes its result
    with pytest.raises(OutputExistsError, match="not written by this program"):
        prepare_work_dir(tmp_path / "user")
    (tmp_path / "user" / "results.json").unlink()
    prepare_work_dir(tmp_path / "user").close()
    assert (tmp_path / "user" / "thesis.tex").read_text() == "precious"
    assert (tmp_path / "user" / "input" / "mine.bin").read_bytes() == b"12"
    (tmp_path / "f").write_text("x")
    with pytest.raises(WorkDirError, match="is a file"):
        prepare_work_dir(tmp_path / "f")


def test_voc_val_disk_plan_stays_under_5_gb():
    from src.config import load_config
    from src.deploy.offline import plan_disk

    cfg = load_config(str(ROOT / "config" / "voc2012_pspnet50.yaml"))
    protocol = protocol_from_config(cfg.data, cfg.eval)
    plan = plan_disk(1449, protocol)
    assert plan.peak_bytes < 5e9 and plan.chunks > 1
    assert plan.images * plan.per_image_bytes > 50e9  # what the unchunked flow could need at once
    assert f"{plan.peak_bytes / 1e9:.2f} GB" in plan.describe()
    multi = plan_disk(1449, protocol_from_config(cfg.data, load_config(
        str(ROOT / "config" / "voc2012_pspnet50.yaml"), ["eval.scales", "[0.5, 0.75, 1.0, 1.25, 1.5, 1.75]"]).eval))
    assert multi.peak_bytes < 5e9 and multi.per_image_bytes > plan.per_image_bytes


def _infer_310(args, cwd, **env):
    import os
    import subprocess

    clean = {k: v for k, v in os.environ.items() if k not in ("LITE_HOME", "RUNNER", "APP")}
    return subprocess.run(["bash", str(ROOT / "scripts" / "run_infer_310.sh"), *args], cwd=str(cwd),
                          env={**clean, **env}, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_run_infer_310_never_touches_a_folder_it_did_not_create(trained, exported, tmp_path):
    cfg, _, tmp = trained
    cfg_file = save_config(cfg, tmp_path / "c.yaml")
    (tmp_path / "keep.txt").write_text("mine")
    (tmp_path / "report.md").write_text("my report")  # a user's file where the flow writes its report
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "0", "."], tmp_path, RUNNER="python")
    assert proc.returncode == 2 and "report.md exists and was not written by this program" in proc.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine" and (tmp_path / "report.md").read_text() == "my report"
    (tmp_path / "report.md").unlink()
    # the 310 app path checks LITE_HOME before any work folder is made
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "0", "w310"], tmp_path)
    assert proc.returncode == 2 and "LITE_HOME" in proc.stderr and not (tmp_path / "w310").exists()
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "x1"], tmp_path)
    assert proc.returncode == 2 and "DEVICE_ID must be a number" in proc.stderr
    # relative WORK is the caller's, and the python runner gives eval.py's numbers
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "0", "w"], tmp_path, RUNNER="python")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "peak disk at most" in proc.stderr and (tmp_path / "w" / "results.json").is_file()


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


@pytest.mark.slow
def test_run_infer_310_drives_the_app_with_float32_and_the_device(trained, exported, tmp_path):
    from fake_lite import build_fake_lite

    cfg, _, _ = trained
    home, app = build_fake_lite(tmp_path / "lite")
    cfg_file = save_config(cfg, tmp_path / "c.yaml")
    rec = tmp_path / "rec.txt"
    env = {"LITE_HOME": str(home), "APP": str(app), "FAKE_LITE_RECORD": str(rec)}
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "5", "w"], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(rec.read_text().splitlines()) == {"device=ascend id=5 precision=enforce_fp32"}
    assert json.loads((tmp_path / "w" / "results.json").read_text())["confusion_matrix"]
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "5", "w"], tmp_path, PRECISION="float16", **env)
    assert proc.returncode == 2 and "earlier result" in proc.stderr and "--overwrite" in proc.stderr
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "5", "w"], tmp_path, PRECISION="float16",
                      OVERWRITE="1", **env)
    assert proc.returncode == 0 and "enforce_fp16" in rec.read_text()
    proc = _infer_310([exported["MINDIR"]["file"], str(cfg_file), "5", "w2"], tmp_path, FAKE_LITE_MODE="wrong_shape",
                      **env)
    assert proc.returncode == 2 and "has shape (2, 6, 5, 5)" in proc.stderr


def test_flow_needs_the_models_batch_before_any_work(trained, exported, tmp_path):
    import shutil

    cfg, _, _ = trained
    cfg_file = save_config(cfg, tmp_path / "c.yaml")
    bare = tmp_path / "bare.mindir"
    shutil.copy(exported["MINDIR"]["file"], bare)  # without its sidecar
    code = cli.main(["--config", str(cfg_file), "--model", str(bare), "--work", str(tmp_path / "w"), "--runner",
                     "python"], command="flow310")
    assert code == 2 and not (tmp_path / "w").exists()
    code = cli.main(["--config", str(cfg_file), "--model", str(bare), "--work", str(tmp_path / "w"), "--runner",
                     "app", "--app", str(tmp_path / "no_app"), "--batch_size", "2"], command="flow310")
    assert code == 2 and not (tmp_path / "w").exists()  # the app is checked before the work folder is made


def test_export_verification_fails_on_non_finite_weights(trained, tmp_path):
    import mindspore as ms

    cfg, ckpt, _ = trained
    params = ms.load_checkpoint(str(ckpt))
    entries = [{"name": n, "data": p.data if hasattr(p, "data") else p} for n, p in params.items()]
    for e in entries:
        if e["name"] == "cls.4.weight":
            arr = e["data"].asnumpy().copy()
            arr[0, 0] = np.nan
            e["data"] = ms.Tensor(arr)
    ms.save_checkpoint(entries, str(tmp_path / "nan.ckpt"))
    with pytest.raises(CheckpointError, match="nan.ckpt: 1 parameters hold NaN or infinite values: cls.4.weight"):
        export_model(cfg.model, cfg.data.classes, str(tmp_path / "nan.ckpt"), "MINDIR", 1, 33, 33,
                     str(tmp_path / "m"), mean=cfg.data.mean, std=cfg.data.std)
    allowed = dataclasses.replace(cfg.model, allow_non_finite=True)  # loaded on request: verification still fails
    with pytest.raises(ExportError, match="non-finite outputs"):
        export_model(allowed, cfg.data.classes, str(tmp_path / "nan.ckpt"), "MINDIR", 1, 33, 33,
                     str(tmp_path / "m"), mean=cfg.data.mean, std=cfg.data.std)
    assert not (tmp_path / "m.mindir").exists() and not (tmp_path / "m.mindir.json").exists()


def test_predict_skips_special_files_and_keeps_every_output_apart(trained, tmp_path):
    import os

    from src.deploy.predict import output_names

    cfg, ckpt, _ = trained
    from src.runtime.backends import make_predict

    img = np.random.default_rng(0).integers(0, 255, (40, 30, 3), np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(img).save(tmp_path / "in" / "a.jpg")
    Image.fromarray(img[::-1]).save(tmp_path / "in" / "a.png")
    os.mkfifo(tmp_path / "in" / "pipe.png")  # opening it would wait forever for a writer
    paths = collect_images([str(tmp_path / "in")])
    assert [p.name for p in paths] == ["a.jpg", "a.png"]
    protocol = protocol_from_config(cfg.data, cfg.eval)
    predict = make_predict("ms", str(ckpt), cfg.model, 6, protocol.batch_size, (33, 33))
    written = predict_images(paths, predict, protocol, tmp_path / "out", voc_palette())
    assert [p.name for p in written] == ["a_jpg.png", "a_png.png"] and all(p.is_file() for p in written)
    assert output_names([Path("x/a.jpg"), Path("y/a.jpg"), Path("b.png")]) == ["a_jpg_1", "a_jpg_2", "b"]


def test_full_disk_while_eval_writes_pictures_and_results(trained, tmp_path, caplog, monkeypatch):
    from src.data.dataset import read_list
    from src.outputs import OutputPathError

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


def test_full_disk_while_predict_writes_masks(trained, tmp_path, monkeypatch):
    from src.outputs import OutputPathError

    cfg, ckpt, tmp = trained
    images = sorted((tmp / "data" / "JPEGImages").glob("*.jpg"))[:2]
    out = tmp_path / "pred"
    full_disk_at(monkeypatch, f"{images[1].stem}.png")
    protocol = protocol_from_config(cfg.data, cfg.eval)
    from src.runtime.backends import make_predict
    predict = make_predict("ms", str(ckpt), cfg.model, cfg.data.classes, protocol.batch_size, (33, 33))
    with pytest.raises(OutputPathError, match=r"No space left on device.*the masks of the 1 images before it are "
                                              r"complete"):
        predict_images(images, predict, protocol, out, voc_palette())
    assert (out / "color" / f"{images[0].stem}.png").stat().st_size > 0
