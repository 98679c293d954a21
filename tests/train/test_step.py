"""The training step (src/train/step.py): the loss cell's three losses under the network's own parameter names,
the loss-scale setting as the step takes it, a fixed loss scale that leaves the update unchanged, and the AMP
levels it accepts."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops

from src.train.lr import build_optimizer
from src.train.step import NORM_CELLS, NetWithLoss, TrainStep, apply_amp, make_loss_scale


class _TwoHeads(nn.Cell):
    """A stand-in for PSPNet at a fraction of its cost: a main and an aux head (1x1 convolutions, full size)."""

    def __init__(self):
        super().__init__()
        self.layer0 = nn.Conv2d(3, 4, 3, pad_mode="same", has_bias=True)
        self.cls = nn.Conv2d(4, 3, 1, has_bias=True)
        self.aux = nn.Conv2d(4, 3, 1, has_bias=True)

    def construct(self, x):
        features = ops.relu(self.layer0(x))
        return self.cls(features), self.aux(features)


def _tiny_net():
    ms.set_seed(1)
    return _TwoHeads()


def _batch():
    rng = np.random.default_rng(4)
    return (ms.Tensor(rng.standard_normal((2, 3, 33, 33)).astype(np.float32)),
            ms.Tensor(rng.integers(0, 3, (2, 33, 33)).astype(np.int32)))


def test_the_loss_cell_adds_the_weighted_aux_loss_and_keeps_the_networks_names():
    net = _tiny_net()
    cell = NetWithLoss(net, aux_weight=0.25)
    cell.set_train(True)
    total, main, aux = (float(v.asnumpy()) for v in cell(*_batch()))
    assert main > 0 and aux > 0 and aux != main  # two heads, two losses
    assert total == pytest.approx(main + 0.25 * aux, rel=1e-6)
    assert [p.name for p in cell.get_parameters()] == [p.name for p in net.get_parameters()]


def test_the_loss_scale_setting_as_the_step_takes_it():
    assert make_loss_scale("none") == 0.0
    assert make_loss_scale("fixed", 128) == 128.0
    dynamic = make_loss_scale("dynamic", 512.0)
    assert isinstance(dynamic, ms.amp.DynamicLossScaler) and float(dynamic.scale_value.asnumpy()) == 512.0
    with pytest.raises(ValueError, match="none, fixed or dynamic, got 'auto'"):
        make_loss_scale("auto")


def test_a_fixed_loss_scale_is_undone_before_the_update():
    """The gradients of a loss scaled by 1024 are divided back: the step moves the weights as an unscaled one."""
    image, label = _batch()
    moved, start = [], None
    for scale in (0.0, 1024.0):
        net = _tiny_net()
        for p in net.get_parameters() if start else ():  # the same start
            p.set_data(ms.Tensor(start[p.name]))
        start = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
        step = TrainStep(NetWithLoss(net), build_optimizer(net, 0.01, 10), loss_scale=scale)
        step.set_train(True)
        losses = [float(v.asnumpy()) for v in step(image, label)]
        moved.append(({p.name: p.asnumpy() - start[p.name] for p in net.trainable_params()}, losses))
    (plain, plain_losses), (scaled, scaled_losses) = moved
    assert scaled_losses == pytest.approx(plain_losses, rel=1e-6)  # the losses before the update, unscaled
    assert max(np.abs(d).max() for d in plain.values()) > 1e-6
    for name, delta in plain.items():
        np.testing.assert_allclose(scaled[name], delta, rtol=1e-3, atol=1e-7, err_msg=name)


def test_amp_level_o0_is_the_network_itself_and_unknown_levels_are_refused():
    net = _tiny_net()
    assert apply_amp(net, "O0") is net
    with pytest.raises(ValueError, match="unsupported AMP level 'O3'"):
        apply_amp(net, "O3")


def test_amp_o2_keeps_every_norm_layer_float32():
    net = nn.SequentialCell([nn.Conv2d(3, 8, 3), nn.SyncBatchNorm(8), nn.BatchNorm2d(8), nn.GroupNorm(2, 8),
                             nn.Conv2d(8, 8, 1)])
    names = [p.name for p in net.get_parameters()]
    amp = apply_amp(net, "O2")
    assert [p.name for p in amp.get_parameters()] == names
    norms = [c for _, c in amp.cells_and_names() if isinstance(c, NORM_CELLS)]
    convs = [c for _, c in amp.cells_and_names() if isinstance(c, nn.Conv2d)]
    assert len(norms) == 3 and len(convs) == 2
    assert all(c.get_flags().get("fp32") and not c.get_flags().get("fp16") for c in norms)
    assert all(c.get_flags().get("fp16") for c in convs)
    # MindSpore's own O2 list would leave SyncBatchNorm in float16: the reason for the custom list.
    assert nn.SyncBatchNorm not in ms.amp.get_black_list()
