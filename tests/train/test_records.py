"""Run records (src/train/records.py): metrics.jsonl written whole lines at a time, read past a line cut short and
cut back on a resume; and which protocol the validation inside training names (its log line, its metrics.jsonl
record, the curves.png panel), with when it is due."""
import json
import logging
from dataclasses import replace

import pytest

from helpers import tiny_config
from src.outputs.folder import OutputFolder
from src.train import loop as loop_mod
from src.train.loop import Trainer
from src.train.records import MetricsLog, plot_curves, validation_due, validation_of, validation_protocol

FAST = "center-crop 33x41 (fast check, not eval.py's protocol)"  # tiny_config's train crop is 33x41


@pytest.fixture
def shapes(ten_shapes):
    """The ten 40x40 images (tests/train/conftest.py)."""
    return ten_shapes


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


def test_metrics_log_appends_records_and_drops_those_after_a_resumed_step(tmp_path):
    with OutputFolder(tmp_path / "run", "train.save_dir", "train") as folder:
        log = MetricsLog(tmp_path / "run" / "metrics.jsonl", folder)
        for step in (1, 2, 3):
            log.write({"kind": "step", "step": step, "loss": 1.0 / step})
        log.write({"kind": "eval", "epoch": 1, "step": 3, "miou": 0.5})
        assert [(r["kind"], r["step"]) for r in log.read()] == [("step", 1), ("step", 2), ("step", 3), ("eval", 3)]
        assert log.truncate_after(5) == 0
        assert log.truncate_after(2) == 2
        assert [r["step"] for r in MetricsLog(log.path).read()] == [1, 2]
        log.write({"kind": "step", "step": 3, "loss": 0.25})  # the resumed run goes on in the same file
    assert [r["loss"] for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read()] == [1.0, 0.5, 0.25]


def test_a_read_only_metrics_log_skips_lines_it_cannot_read_and_writes_nothing(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    text = json.dumps({"kind": "step", "step": 1}) + "\n[1, 2]\n\n" + json.dumps({"kind": "step", "step": 2}) + \
        '\n{"kind": "step", "st'  # a list, an empty line, and a last line cut short by a kill
    path.write_text(text)
    log = MetricsLog(path)
    with caplog.at_level(logging.WARNING, logger="src.train.records"):
        assert [r["step"] for r in log.read()] == [1, 2]
    assert "skipped 2 unreadable line(s)" in caplog.text
    assert log.truncate_after(1) == 1 and path.read_text() == text  # counted, not rewritten: no output folder
    with pytest.raises(ValueError, match="read-only"):
        log.write({"kind": "step", "step": 3})
    assert MetricsLog(tmp_path / "absent.jsonl").read() == []


def test_validation_is_due_every_interval_and_after_the_last_epoch():
    t = replace(tiny_config("data", "run").train, epochs=5, eval_interval=2)
    assert [e for e in range(1, 6) if validation_due(t, e)] == [2, 4, 5]
    assert not any(validation_due(replace(t, eval_interval=0), e) for e in range(1, 6))
