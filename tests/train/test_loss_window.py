"""The step loop's host-side bookkeeping (src/train/loss_window.py): losses kept as device values and fetched a
window at a time, the first non-finite step named (or the sink it was in), and the step time and ETA clock."""
import numpy as np
import mindspore as ms

from src.train.loss_window import Clock, LossWindow, StepLosses, first_non_finite


def test_window_keeps_order_and_names_the_first_bad_step():
    w = LossWindow()
    w.add(5, 1, (ms.Tensor(np.float32(1.5)), ms.Tensor(np.float32(1.0)), ms.Tensor(np.float32(1.25))))
    w.add(6, 1, (np.float32("inf"), 1.0, 1.0))
    w.add(9, 3, (np.float32("nan"), 1.0, 1.0))
    assert w.steps == 5
    rows = w.fetch()
    assert [r.step for r in rows] == [5, 6, 9] and rows[0].total == 1.5 and rows[0].aux == 1.25
    assert w.pending == [] and w.steps == 0
    bad = first_non_finite(rows)
    assert bad.step == 6 and bad.where() == "step 6"
    assert StepLosses(9, 3, float("nan"), 0, 0).where() == "steps 7-9 (one sink of 3)"
    assert first_non_finite(rows[:1]) is None


def test_clock_reports_the_window_average_and_eta():
    c = Clock(start=100.0, start_step=10, planned=30)
    assert c.lap(4, now=108.0) == 2.0  # 8 s over 4 steps
    assert c.lap(2, now=110.0) == 1.0
    assert c.eta(20, now=110.0) == "00:00:10"  # 10 s for 10 steps, 10 to go
    c.restart_lap(now=150.0)  # e.g. after an evaluation
    assert c.lap(5, now=155.0) == 1.0

