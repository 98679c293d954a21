"""Training runs that meet broken data or a changed schedule: one clear error, and no finished work lost."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import make_shapes, tiny_config
from src.checkpoint.files import arrays_to_entries, save_checkpoint_atomic
from src.checkpoint.format import CheckpointError, read_checkpoint
from src.train.run_state import epoch_checkpoints
from src.data.dataset import DataError
from src.errors import TrainingError
from src.train.loop import Trainer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6, size=48, seed=2)


def _broken_copy(tmp_path, what):
    root = make_shapes(tmp_path / "data", num=6, size=48, seed=2)
    for jpg in (root / "JPEGImages").glob("*.jpg"):
        if what == "text":
            jpg.write_text("not an image\n")
        elif what == "empty":
            jpg.write_bytes(b"")
    return root


@pytest.mark.parametrize("what", ["text", "empty"])
def test_bad_training_sample_is_one_data_error(tmp_path, what):
    root = _broken_copy(tmp_path, what)
    with pytest.raises(DataError) as info:
        Trainer(tiny_config(root, tmp_path / "run")).run()
    message = str(info.value)
    assert "train.txt:" in message and ".jpg" in message and "Traceback" not in message
    assert "\n" not in message


@pytest.mark.slow
def test_resume_bookkeeping(shapes, tmp_path, caplog):
    run = tmp_path / "run"
    first = Trainer(tiny_config(shapes, run, train={"epochs": 3}))
    first.state.local_best, first.state.device_bests = 0.375, [0.375]  # as an evaluation would have left them
    first.run(stop_after_epoch=1)
    del first
    log = run / "metrics.jsonl"
    with open(log, "a") as f:  # records of an interrupted epoch 2 that never reached its checkpoint
        f.write(json.dumps({"kind": "step", "epoch": 2, "step": 3, "loss": 1.0}) + "\n")

    # A changed schedule is refused with the differences listed, unless explicitly allowed.
    with pytest.raises(TrainingError, match=r"epochs: checkpoint 3, now 5.*base_lr: checkpoint 0.01, now 0.02"):
        Trainer(tiny_config(shapes, run, train={"epochs": 5, "base_lr": 0.02}), resume="auto")
    allowed = Trainer(tiny_config(shapes, run, train={"epochs": 5}), resume="auto", allow_schedule_change=True)
    assert allowed.state.epoch == 1
    del allowed

    # A newest checkpoint that does not match its checksum (a save cut short) falls back to the one before,
    # with a warning.  The checksum decides, not the reader's exception.
    ckpts = run / "checkpoints"
    good = ckpts / "epoch_0001.ckpt"
    (ckpts / "epoch_0002.ckpt").write_bytes(good.read_bytes()[:4000])
    digest = (ckpts / "epoch_0001.ckpt.sha256").read_text().split()[0]
    (ckpts / "epoch_0002.ckpt.sha256").write_text(f"{digest}  epoch_0002.ckpt\n")
    with caplog.at_level("WARNING"):
        resumed = Trainer(tiny_config(shapes, run, train={"epochs": 3}), resume="auto")
    assert resumed.state.epoch == 1 and resumed.state.step == 2
    assert resumed.state.local_best == 0.375  # the per-device best survives a resume
    assert any("epoch_0002.ckpt" in r.message and "does not match its checksum" in r.message for r in caplog.records)
    (ckpts / "epoch_0002.ckpt").unlink()  # the user removes the damaged file (both were made by hand here)
    (ckpts / "epoch_0002.ckpt.sha256").unlink()
    resumed.run()
    steps = [r["step"] for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "step"]
    assert steps == sorted(set(steps)) and steps[-1] == 6


def test_resume_auto_says_when_it_starts_fresh(shapes, tmp_path, caplog):
    with caplog.at_level("INFO"):
        trainer = Trainer(tiny_config(shapes, tmp_path / "fresh"), resume="auto")
    assert trainer.state.epoch == 0
    assert any("starting a fresh run" in r.message for r in caplog.records)


@pytest.mark.slow
def test_eval_failure_keeps_the_epoch_checkpoint(tmp_path):
    root = make_shapes(tmp_path / "data", num=6, size=48, seed=2)
    val = [line.split()[0] for line in (root / "val.txt").read_text().splitlines() if line.strip()]
    (root / val[0]).write_text("broken after the start\n")
    trainer = Trainer(tiny_config(root, tmp_path / "run", train={"epochs": 2, "eval_interval": 1}))
    with pytest.raises(TrainingError) as info:
        trainer.run()
    message = str(info.value)
    assert "evaluation after epoch 1 failed" in message and "val.txt" in message
    assert "epoch_0001.ckpt" in message and "\n" not in message
    assert [e for e, _ in epoch_checkpoints(tmp_path / "run" / "checkpoints")] == [1]
    assert int(read_checkpoint(tmp_path / "run" / "checkpoints" / "epoch_0001.ckpt")["epoch_num"][0]) == 1


def test_train_cli_bad_sample_exits_2_with_one_line(tmp_path):
    root = _broken_copy(tmp_path, "text")
    cfg = tiny_config(root, tmp_path / "run")
    raw = {s: {k: v for k, v in vars(getattr(cfg, s)).items()} for s in ("data", "model", "train", "eval")}
    raw["device"] = {"target": "CPU", "mode": "PYNATIVE"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "train.py", "--config", str(path)], cwd=str(ROOT), capture_output=True,
                          text=True, env={**os.environ, "GLOG_v": "3"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in (proc.stderr + proc.stdout).splitlines() if "error:" in line]
    assert len(errors) == 1 and "train.txt:" in errors[0] and "cannot read image" in errors[0]


@pytest.mark.slow
def test_resume_from_corrupt_or_weights_only_checkpoint_is_refused(shapes, tmp_path):
    Trainer(tiny_config(shapes, tmp_path / "r", train={"epochs": 1})).run()
    ckpt = tmp_path / "r" / "checkpoints" / "epoch_0001.ckpt"
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        Trainer(tiny_config(shapes, tmp_path / "r2", train={"epochs": 2}), resume=str(cut))
    weights = {k: v for k, v in read_checkpoint(ckpt).items() if k.startswith(("layer", "ppm", "cls", "aux"))}
    save_checkpoint_atomic(arrays_to_entries(weights), tmp_path / "w.ckpt")
    with pytest.raises(CheckpointError, match="weights-only"):
        Trainer(tiny_config(shapes, tmp_path / "r3", train={"epochs": 2}), resume=str(tmp_path / "w.ckpt"))
    with pytest.raises(CheckpointError, match="not found"):
        Trainer(tiny_config(shapes, tmp_path / "r4"), resume=str(tmp_path / "nope.ckpt"))


@pytest.mark.slow
def test_resume_reads_one_checkpoint_file(shapes, tmp_path, monkeypatch):
    """Resume reads the epoch checkpoint once; best.ckpt's mIoU comes from best.json beside it."""
    import src.train.run_state as checkpoint

    run = tmp_path / "run"
    trainer = Trainer(tiny_config(shapes, run, train={"epochs": 2, "eval_interval": 1}))
    trainer.run(stop_after_epoch=1)
    ckpts = run / "checkpoints"
    best = json.loads((ckpts / "best.json").read_text())
    assert (ckpts / "best.ckpt").is_file() and best["best_miou"] == trainer.state.best_miou and best["epoch"] == 1
    (ckpts / "best.json").write_text(json.dumps({**best, "best_miou": 0.625}))  # tells which source was used
    reads = []
    real_read = checkpoint.read_checkpoint
    monkeypatch.setattr(checkpoint, "read_checkpoint", lambda path, *a: reads.append(str(path)) or real_read(path, *a))
    resumed = Trainer(tiny_config(shapes, run, train={"epochs": 2, "eval_interval": 1}), resume="auto")
    assert reads == [str(ckpts / "epoch_0001.ckpt")]
    assert resumed.state.best_miou == 0.625
    (ckpts / "best.json").unlink()  # a run from before best.json: the mIoU is read from best.ckpt itself
    assert checkpoint.read_best_miou(ckpts) == pytest.approx(best["best_miou"])
