"""train.lean_backward: the input gradient of stride-1 3x3 convolutions as a forward convolution.

It must train the same function (forward untouched, gradients equal up to float summation order), keep every
parameter name, convert exactly the convolutions it can, and be what build_network uses on CPU under auto."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

from helpers import TINY, TINY_DEPTH
from src.model.lean import LeanConv2D, eligible, lean_backward
from src.model.resnet import conv


class _SquareSum(nn.Cell):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def construct(self, x):
        return (self.body(x) ** 2).sum()


class _TotalLoss(nn.Cell):
    def __init__(self, with_loss):
        super().__init__()
        self.with_loss = with_loss

    def construct(self, x, y):
        return self.with_loss(x, y)[0]


@pytest.fixture(params=["GRAPH", "PYNATIVE"])
def mode(request):
    """Both execution modes a training run can use (device.mode)."""
    ms.set_context(mode=ms.GRAPH_MODE if request.param == "GRAPH" else ms.PYNATIVE_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


@pytest.mark.parametrize("cin,cout,dilation,parts", [(6, 5, 1, 1), (6, 5, 2, 1), (6, 5, 4, 1), (12, 3, 1, 4)])
def test_lean_convolution_has_the_same_output_and_gradients(mode, cin, cout, dilation, parts):
    """(12, 3): a narrowing convolution, whose input gradient is computed in 4 square slices."""
    x = ms.Tensor(np.random.default_rng(dilation).standard_normal((2, cin, 17, 13)).astype(np.float32))
    plain, lean = conv(cin, cout, 3, dilation=dilation), conv(cin, cout, 3, dilation=dilation)
    lean.weight.set_data(plain.weight.data.copy())
    assert lean_backward(lean) == 1 and isinstance(lean.conv2d, LeanConv2D) and lean.conv2d.parts == parts
    assert [n for n, _ in lean.parameters_and_names()] == [n for n, _ in plain.parameters_and_names()] == ["weight"]
    np.testing.assert_array_equal(lean(x).asnumpy(), plain(x).asnumpy())
    (dx_p, (dw_p,)), (dx_l, (dw_l,)) = (
        ms.grad(_SquareSum(c), grad_position=0, weights=c.trainable_params())(x) for c in (plain, lean))
    scale = float(np.abs(dx_p.asnumpy()).max())
    np.testing.assert_allclose(dx_l.asnumpy(), dx_p.asnumpy(), rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(dw_l.asnumpy(), dw_p.asnumpy())  # MindSpore's own weight-gradient kernel


def test_only_stride_1_ungrouped_same_size_convolutions_are_converted():
    assert eligible(conv(4, 4, 3)) and eligible(conv(4, 4, 3, dilation=4))
    assert not eligible(conv(4, 4, 1))  # no im2col for 1x1
    assert not eligible(conv(4, 4, 3, stride=2))  # its input gradient is not a plain convolution
    assert not eligible(nn.Conv2d(4, 4, 3, pad_mode="valid"))  # changes the size
    assert not eligible(nn.Conv2d(4, 4, 3, pad_mode="pad", padding=1, group=2))
    assert not eligible(nn.Conv2d(4, 4, 3, pad_mode="pad", padding=(1, 1, 0, 0)))


@pytest.mark.slow
def test_pspnet_with_lean_backward_trains_the_same_function(mode):
    from src.model.pspnet import PSPNet
    from src.train.step import NetWithLoss

    ms.set_seed(5)
    plain = PSPNet(classes=5, layers=TINY_DEPTH, dropout=0.0, width_divisor=TINY)
    lean = PSPNet(classes=5, layers=TINY_DEPTH, dropout=0.0, width_divisor=TINY)
    for a, b in zip(plain.get_parameters(), lean.get_parameters()):
        b.set_data(a.data.copy())
    threes = [c for _, c in lean.cells_and_names() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]
    converted = lean_backward(lean)
    # every 3x3 convolution but the two with stride 2 (the stem's first, layer2's first block)
    assert converted == len(threes) - 2 and converted > 0
    assert [p.name for p in lean.get_parameters()] == [p.name for p in plain.get_parameters()]
    rng = np.random.default_rng(3)
    image = ms.Tensor(rng.standard_normal((2, 3, 41, 49)).astype(np.float32))
    label = rng.integers(0, 5, (2, 41, 49)).astype(np.int32)
    label[1, :4] = 255
    label = ms.Tensor(label)
    results = []
    for net in (plain, lean):
        net.set_train(True)
        loss, grads = ms.value_and_grad(_TotalLoss(NetWithLoss(net)), None, net.trainable_params())(image, label)
        results.append((float(loss.asnumpy()), [g.asnumpy() for g in grads]))
    (loss_p, grads_p), (loss_l, grads_l) = results
    assert loss_l == loss_p  # the forward is untouched
    for w, gp, gl in zip(plain.trainable_params(), grads_p, grads_l):
        np.testing.assert_allclose(gl, gp, rtol=0, atol=2e-4 * max(float(np.abs(gp).max()), 1e-8), err_msg=w.name)


@pytest.mark.parametrize("setting,target,expected", [("auto", "CPU", True), ("off", "CPU", False),
                                                      ("auto", "GPU", False), ("on", "GPU", True)])
def test_build_network_applies_it_on_cpu_under_auto(tmp_path, monkeypatch, setting, target, expected):
    from helpers import tiny_config
    from src.train import setup

    monkeypatch.setattr(setup, "apply_amp", lambda net, level: net)  # no GPU here: AMP is not the subject
    cfg = tiny_config(tmp_path, tmp_path / "run", train={"lean_backward": setting})
    net = setup.build_network(cfg, target, 1)
    wrapped = [c for _, c in net.cells_and_names() if isinstance(c, LeanConv2D)]
    assert bool(wrapped) == expected
