"""The step loop of Trainer (src/train/loop.py): losses read from the device only on logging steps while the first
bad step is still named, the logged time per step, data-sink chunks, the fixed-size graph form, and the loop
counts the config must hold positive."""
import time

import numpy as np
import pytest
import mindspore as ms

from helpers import tiny_config
from src.config import ConfigError
from src.train import loop as loop_mod
from src.train.run_state import epoch_checkpoints
from src.errors import TrainingError
from src.train.loop import Trainer
from src.train.loss_window import LossWindow
from src.train.records import MetricsLog


@pytest.fixture
def shapes(ten_shapes):
    """The ten 40x40 images (tests/train/conftest.py)."""
    return ten_shapes


class CountingStep:
    """Wraps a step cell: counts calls, can replace one call's losses by NaN."""

    def __init__(self, cell, nan_at: int = 0):
        self.cell, self.nan_at, self.calls = cell, nan_at, 0

    def __call__(self, image, label):
        self.calls += 1
        out = self.cell(image, label)
        if self.calls == self.nan_at:
            return tuple(ms.Tensor(np.float32("nan")) for _ in out)
        return out


class CountingWindow(LossWindow):
    fetches = 0

    def fetch(self):
        CountingWindow.fetches += 1
        return super().fetch()


class SlowStep(CountingStep):
    """A step that takes a known 0.2 s more than the real one."""

    def __call__(self, image, label):
        time.sleep(0.2)
        return super().__call__(image, label)


@pytest.mark.slow
def test_logged_time_per_step_matches_wall_time(shapes, tmp_path):
    """The logged s/step is the window's time over the window's steps (it was divided by 1: 20x too slow)."""
    cfg = tiny_config(shapes, tmp_path / "run", train={"epochs": 1, "batch_size": 1, "log_every": 2})
    trainer = Trainer(cfg)
    trainer.step_cell = SlowStep(trainer.step_cell)
    start = time.perf_counter()
    trainer.run()
    wall = time.perf_counter() - start
    rows = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r["kind"] == "step"]
    steps = [b["step"] - a for a, b in zip([0] + [r["step"] for r in rows], rows)]
    logged = sum(r["step_s"] * n for r, n in zip(rows, steps))
    assert all(r["step_s"] >= 0.2 for r in rows)  # each step sleeps 0.2 s
    assert 0.2 * trainer.steps_per_epoch <= logged <= wall  # with the window's time on one step: ~2x wall


@pytest.mark.slow
def test_losses_are_fetched_once_per_logging_window(shapes, tmp_path, monkeypatch):
    monkeypatch.setattr(loop_mod, "LossWindow", CountingWindow)
    CountingWindow.fetches = 0
    cfg = tiny_config(shapes, tmp_path / "run", train={"epochs": 2, "batch_size": 1, "log_every": 3})
    trainer = Trainer(cfg)
    per_epoch = trainer.steps_per_epoch
    assert per_epoch >= 4
    trainer.step_cell = CountingStep(trainer.step_cell)
    trainer.run()
    steps = [r["step"] for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r["kind"] == "step"]
    # A record at every multiple of log_every and at each epoch's end, one fetch for each.
    expected = sorted({s for s in range(1, 2 * per_epoch + 1) if s % 3 == 0 or s % per_epoch == 0})
    assert steps == expected
    assert CountingWindow.fetches == len(expected) < trainer.step_cell.calls == 2 * per_epoch


@pytest.mark.slow
def test_a_nan_between_logging_steps_is_named_by_its_own_step(shapes, tmp_path):
    cfg = tiny_config(shapes, tmp_path / "nan", train={"epochs": 2, "batch_size": 1, "log_every": 100,
                                                        "save_every": 1})
    trainer = Trainer(cfg)
    trainer.step_cell = CountingStep(trainer.step_cell, nan_at=2)
    with pytest.raises(TrainingError, match=r"loss is nan at step 2 \(epoch 1;"):
        trainer.run()
    assert trainer.step_cell.calls == trainer.steps_per_epoch  # found at the epoch's end, not at once
    assert epoch_checkpoints(tmp_path / "nan" / "checkpoints") == []  # nothing saved after the bad step


@pytest.mark.slow
def test_sink_chunks_advance_the_step_and_log_per_sink(shapes, tmp_path, monkeypatch):
    """The sink path on CPU with a stand-in for ms.data_sink: k host steps per call, the last losses returned."""
    cfg = tiny_config(shapes, tmp_path / "sink", train={"epochs": 2, "batch_size": 1, "log_every": 1})
    trainer = Trainer(cfg)
    per_epoch = trainer.steps_per_epoch
    k = 2 if per_epoch % 2 == 0 else 1
    trainer.sink_size = k
    batches = iter(trainer.train_ds.create_tuple_iterator(num_epochs=1, output_numpy=True))
    calls = []

    def fake_sink():
        out = None
        for _ in range(k):
            image, label = next(batches)
            out = trainer.step_cell(ms.Tensor(image), ms.Tensor(label))
        calls.append(k)
        return out

    monkeypatch.setattr(trainer, "_make_sink", lambda: fake_sink)
    summary = trainer.run()
    assert summary["step"] == 2 * per_epoch == sum(calls)
    steps = [r["step"] for r in MetricsLog(tmp_path / "sink" / "metrics.jsonl").read() if r["kind"] == "step"]
    assert steps == list(range(k, 2 * per_epoch + 1, k))


def test_fixed_form_refuses_full_eval_windows_of_another_size(shapes, tmp_path):
    cfg = tiny_config(shapes, tmp_path / "fixed", train={"eval_interval": 1, "eval_mode": "full"},
                      model={"graph_form": "fixed"}, eval_={"test_h": 33, "test_w": 33})
    with pytest.raises(ConfigError, match=r"graph_form fixed builds the network for 33x41 inputs, but .* 33x33"):
        Trainer(cfg)


@pytest.mark.slow
def test_fixed_form_trains_and_evaluates_on_cpu(shapes, tmp_path):
    cfg = tiny_config(shapes, tmp_path / "fixedrun", train={"epochs": 1, "eval_interval": 1},
                      model={"graph_form": "fixed"}, data={"val_list": "train.txt"})
    trainer = Trainer(cfg)
    assert type(trainer.net.ppm.features[0][0]).__name__ == "SeparableMatmul"
    summary = trainer.run()
    assert summary["step"] == trainer.steps_per_epoch and 0 <= summary["last_miou"] <= 1
