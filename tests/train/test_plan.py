"""``train --plan``: three real steps, the memory and time figures, and nothing written anywhere."""
import logging
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import src.train.plan as plan_mod
from helpers import make_shapes, save_config, tiny_config
from src.data.dataset import read_list
from src.train.plan import PLAN_STEPS, plan_training, validations_in_schedule
from src.train.setup import StepPlan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6, size=48, seed=2)


def _tree(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _counting(monkeypatch) -> list:
    """Wrap the step cell plan_training builds so each call is counted outside the optimizer."""
    calls = []
    real = plan_mod.training_step

    def counted(*args, **kwargs):
        cell = real(*args, **kwargs)

        def step(image, label):
            calls.append(image.shape)
            return cell(image, label)
        return step

    monkeypatch.setattr(plan_mod, "training_step", counted)
    return calls


@pytest.mark.parametrize("train", [{}, pytest.param({"epochs": 1, "max_steps": 2}, marks=pytest.mark.slow)],
                         ids=["schedule", "shorter_than_plan"])
def test_plan_runs_three_steps_reports_the_schedule_and_writes_nothing(shapes, tmp_path, monkeypatch, caplog,
                                                                       train):
    cfg = tiny_config(shapes, tmp_path / "run", train=train)
    private_tmp = tmp_path / "tmp"  # where private_folder() puts the pipeline's error record
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    calls = _counting(monkeypatch)
    before = _tree(tmp_path)
    with caplog.at_level(logging.INFO, logger="src.train.plan"):
        p = plan_training(cfg)
    assert p.steps_run == PLAN_STEPS and len(calls) == PLAN_STEPS  # the optimizer's step and the calls agree
    assert all(shape[0] == cfg.train.batch_size for shape in calls)  # real batches of the pipeline
    samples = len(read_list(os.path.join(str(shapes), cfg.data.train_list), str(shapes)))
    expected = StepPlan.of(cfg.train, samples, 1)
    assert (p.steps_per_epoch, p.total_steps) == (expected.steps_per_epoch, expected.total_steps)
    for value in (p.compile_s, p.s_per_step, p.estimate_s, p.host_peak_gb):
        assert math.isfinite(value) and value > 0
    assert p.estimate_s == pytest.approx(p.s_per_step * p.total_steps)
    assert p.device_peak_gb is None and p.validations == 0  # CPU has no device pool; eval_interval 0
    assert not (tmp_path / "run").exists() and _tree(tmp_path) == before  # no save_dir, no file, tmp folder empty
    text = caplog.text
    assert "peak host memory" in text and "s/step" in text and f"{p.total_steps} steps" in text
    assert "not available on CPU" in text and "no in-training validation" in text


def test_validations_follow_the_interval_the_last_epoch_and_max_steps(shapes, tmp_path):
    def count(epochs, interval, per_epoch, total):
        cfg = tiny_config(shapes, tmp_path, train={"epochs": epochs, "eval_interval": interval})
        return validations_in_schedule(cfg, StepPlan(per_epoch, total))

    assert count(10, 0, 5, 50) == 0
    assert count(10, 3, 5, 50) == 4  # epochs 3, 6, 9 and the last
    assert count(10, 1, 5, 50) == 10
    assert count(10, 3, 5, 22) == 1  # max_steps stops in epoch 5: only epoch 3 validates


@pytest.mark.slow
def test_train_plan_command_prints_the_figures_and_creates_nothing(shapes, tmp_path):
    cfg_file = save_config(tiny_config(shapes, tmp_path / "run", train={"eval_interval": 1}), tmp_path / "c.yaml")
    (tmp_path / "tmp").mkdir()
    before = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK_SIZE", "RANK_ID", "DEVICE_ID", "PSPNET_PID_DIR")}
    proc = subprocess.run([sys.executable, "-m", "src", "train", "--config", str(cfg_file), "--plan"],
                          cwd=str(tmp_path), env={**env, "PYTHONPATH": str(ROOT), "GLOG_v": "3",
                                                  "TMPDIR": str(tmp_path / "tmp")},
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    for needle in ("plan: 3 training steps run", "peak host memory", "compilation", "s/step (steps 2-3",
                   "2 steps/epoch x 2 epochs = 4 steps", "estimated time", "in-training validation not included: "
                   "train.eval_interval 1 runs 2 validation(s) of 1 image(s)"):
        assert needle in out, out[-3000:]
    assert not (tmp_path / "run").exists() and _tree(tmp_path) == before
