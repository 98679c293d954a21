"""The learning-rate schedule and its parameter groups (src/train/lr.py): the poly curve with its warm-up, the
backbone / head split with the head's multiplier at every step, and the per-group lr read back from the optimizer."""
import numpy as np
import pytest
import mindspore as ms

from helpers import TINY, TINY_DEPTH
from src.model.pspnet import PSPNet
from src.train.lr import build_optimizer, current_lrs, lr_tables, lrs_at, poly_lr, split_params


def test_poly_schedule_values():
    lr = poly_lr(0.01, 100, 0.9)
    assert lr[0] == pytest.approx(0.01)
    for it in (1, 37, 99):
        assert lr[it] == pytest.approx(0.01 * (1 - it / 100) ** 0.9, rel=1e-6)
    assert np.all(np.diff(lr) < 0)


def test_poly_schedule_with_warmup_ramps_into_the_same_curve():
    plain = poly_lr(0.02, 100, 0.9)
    lr = poly_lr(0.02, 100, 0.9, warmup_steps=9)
    assert lr[0] == pytest.approx(plain[0] / 10) and lr[4] == pytest.approx(plain[4] * 5 / 10)
    assert np.all(np.diff(lr[:10]) > 0)  # rising through the warm-up
    np.testing.assert_array_equal(lr[9:], plain[9:])  # then exactly the poly curve
    with pytest.raises(ValueError, match="warmup_steps"):
        poly_lr(0.02, 100, 0.9, warmup_steps=-1)


def test_head_lr_is_exactly_ten_times_backbone_at_every_step():
    net = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY)
    opt = build_optimizer(net, 0.01, 50, 0.9, head_lr_mult=10.0)
    backbone, head = split_params(net)
    assert {p.name.split(".")[0] for p in head} == {"ppm", "cls", "aux"}
    assert all(p.name.startswith("layer") for p in backbone)
    assert len(backbone) + len(head) == len(net.trainable_params())
    for step in (0, 1, 17, 49):
        opt.global_step.set_data(ms.Tensor(np.array([step], np.int32)))
        lrs = {p.name: float(opt.get_lr_parameter(p).asnumpy().reshape(-1)[step]) for p in (backbone[0], head[0], head[-1])}
        b = lrs[backbone[0].name]
        assert b == pytest.approx(0.01 * (1 - step / 50) ** 0.9, rel=1e-6)
        assert lrs[head[0].name] == pytest.approx(10 * b, rel=1e-6) and lrs[head[-1].name] == pytest.approx(10 * b, rel=1e-6)
        assert current_lrs(opt) == pytest.approx([b, 10 * b], rel=1e-6)


def test_lrs_at_reads_each_group_at_the_step_and_holds_the_last_value_past_the_end():
    net = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY)
    tables = lr_tables(build_optimizer(net, 0.01, 6, 0.9, head_lr_mult=4.0))
    assert len(tables) == 2 and all(t.size == 6 for t in tables)
    np.testing.assert_allclose(tables[0], poly_lr(0.01, 6, 0.9), rtol=1e-6)
    assert lrs_at(tables, 2) == pytest.approx([tables[0][2], 4 * tables[0][2]], rel=1e-6)
    assert lrs_at(tables, 60) == lrs_at(tables, 5) == [float(tables[0][-1]), float(tables[1][-1])]
