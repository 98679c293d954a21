"""The validation inside training says which protocol its mIoU comes from: log line, metrics.jsonl, curves.png."""
import logging

import pytest

from helpers import make_shapes, tiny_config
from src.train import loop as loop_mod
from src.train.loop import Trainer
from src.train.records import MetricsLog, plot_curves, validation_of, validation_protocol

FAST = "center-crop 33x41 (fast check, not eval.py's protocol)"  # tiny_config's train crop is 33x41


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=10, size=40, seed=5)


@pytest.fixture
def plotted(monkeypatch):
    """The panels of every curves.png the trainer draws (what plot_curves returned)."""
    drawn = []

    def spy(*args, **kwargs):
        drawn.append(plot_curves(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(loop_mod, "plot_curves", spy)
    return drawn


def _validation_panel(panels):
    (title,) = [t for t in panels if t.startswith("validation during training")]
    return title, panels[title]


def test_the_protocol_names_the_crop_for_fast_and_eval_py_for_full():
    assert validation_protocol("fast", 473, 473) == "center-crop 473x473 (fast check, not eval.py's protocol)"
    assert validation_protocol("full", 473, 473) == "eval.py's protocol"
    t = tiny_config("data", "run", train={"eval_interval": 2, "eval_mode": "fast"}).train
    assert validation_of(t) == FAST
    assert validation_of(tiny_config("data", "run").train) is None  # tiny_config: train.eval_interval 0


@pytest.mark.parametrize("mode, protocol", [("fast", FAST), ("full", "eval.py's protocol")])
def test_validation_log_line_record_and_panel_name_the_protocol(shapes, tmp_path, caplog, plotted, mode, protocol):
    cfg = tiny_config(shapes, tmp_path / "run", train={"eval_interval": 1, "eval_mode": mode})
    trainer = Trainer(cfg)
    with caplog.at_level(logging.INFO, logger="src.train.loop"):
        miou = trainer._evaluate_and_record()
    (line,) = [r.getMessage() for r in caplog.records if "global mIoU" in r.getMessage()]
    assert line.startswith(f"validation epoch 0 [{protocol}] device 0: best mIoU ")
    (record,) = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r["kind"] == "eval"]
    assert record["protocol"] == protocol and record["miou"] == miou
    title, panel = _validation_panel(plotted[-1])
    assert title == f"validation during training: {protocol}".replace(" (", "\n(")
    assert panel["series"] == {"mIoU": 1, "mAcc": 1, "allAcc": 1} and panel["notes"] == []
    assert trainer._summary(miou)["validation"] == protocol


def test_without_validation_the_panel_says_so_and_points_to_eval_py(shapes, tmp_path, plotted):
    trainer = Trainer(tiny_config(shapes, tmp_path / "run"))  # train.eval_interval 0
    trainer._plot()  # what the run draws at its end
    title, panel = _validation_panel(plotted[-1])
    assert title == "validation during training: none" and panel["series"] == {}
    (note,) = panel["notes"]
    assert "train.eval_interval 0" in note and "eval.py's report.md" in note
    assert trainer._summary(None)["validation"] == "none"


def test_the_panel_title_comes_from_the_records_when_not_given(tmp_path):
    evals = [{"kind": "eval", "epoch": e, "step": e, "miou": 0.5, "macc": 0.5, "allacc": 0.5} for e in (1, 2)]
    old = _validation_panel(plot_curves(evals, tmp_path / "old.png"))[0]  # a run from before the protocol field
    assert old == "validation during training: protocol not recorded"
    evals[-1]["protocol"] = "eval.py's protocol"
    assert _validation_panel(plot_curves(evals, tmp_path / "new.png"))[0] == \
        "validation during training: eval.py's protocol"
    waiting = _validation_panel(plot_curves([], tmp_path / "w.png", validation=FAST))  # before the first validation
    assert waiting[0].endswith("center-crop 33x41\n(fast check, not eval.py's protocol)")
    assert waiting[1]["notes"] == ["no data yet"]
