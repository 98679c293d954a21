"""deploy.offline: the 310 file flow (preprocess -> runner -> postprocess), chunked under a disk budget, and
scripts/run_infer_310.sh, with eval.py's numbers."""
import json
from pathlib import Path

import pytest

from helpers import gray_masks as _gray, save_config
from src import cli
from src.data.dataset import DataError
from src.deploy.offline import postprocess, preprocess, run_inputs
from src.evaluation.evaluate import run_eval
from src.evaluation.protocol import protocol_from_config
from src.outputs.errors import OutputExistsError
from src.runtime.backends import onnx_predict

ROOT = Path(__file__).resolve().parents[2]


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
