"""Behaviour of MindSpore 2.10 that the reference recipe depends on, pinned so an upgrade that changes it fails:
the network's numerics (BatchNorm running statistics, the stem's max pool, the fixed graph form training the same
function as the dynamic one). AMP O2 keeping norm layers in float32 is pinned in tests/train/test_step.py, the config
refusing levels that would not in tests/test_config.py.

MindSpore announced for releases after 2.9 that BatchNorm's ``momentum`` takes PyTorch's meaning; the
reference's momentum 0.1 is written ``momentum=0.9`` here today.
"""
import numpy as np
import pytest
import mindspore as ms

from helpers import TINY, TINY_DEPTH
from src.model.resnet import batch_norm


def test_batchnorm_running_stats_follow_pytorch_momentum_0_1():
    bn = batch_norm(4)
    bn.set_train(True)
    old_mean = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    old_var = np.array([1.0, 2.0, 0.5, 3.0], np.float32)
    bn.moving_mean.set_data(ms.Tensor(old_mean))
    bn.moving_variance.set_data(ms.Tensor(old_var))
    x = np.random.default_rng(0).standard_normal((6, 4, 5, 7)).astype(np.float32) * 3 + 1
    bn(ms.Tensor(x))
    batch_mean = x.mean(axis=(0, 2, 3))
    batch_var_unbiased = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.moving_mean.asnumpy(), 0.9 * old_mean + 0.1 * batch_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.asnumpy(), 0.9 * old_var + 0.1 * batch_var_unbiased,
                               rtol=1e-5, atol=1e-6)


def _max_pool_reference(x: np.ndarray) -> np.ndarray:
    """PyTorch's MaxPool2d(3, 2, padding=1): the border counts as -inf."""
    n, c, h, w = x.shape
    padded = np.full((n, c, h + 2, w + 2), -np.inf, np.float32)
    padded[:, :, 1:-1, 1:-1] = x
    oh, ow = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    out = np.empty((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
    return out


@pytest.mark.parametrize("hw", [(9, 9), (10, 7)])
def test_stem_pool_equals_the_reference_padded_max_pool_after_relu(hw):
    from src.model.resnet import StemMaxPool

    x = np.maximum(np.random.default_rng(1).standard_normal((2, 3, *hw)), 0).astype(np.float32)
    np.testing.assert_array_equal(StemMaxPool()(ms.Tensor(x)).asnumpy(), _max_pool_reference(x))


def test_fixed_form_training_loss_and_gradients_equal_the_dynamic_form():
    """model.graph_form fixed (Ascend's default) trains the same function as the dynamic form."""

    from src.model.pspnet import PSPNet, training_input_hw
    from src.train.step import NetWithLoss

    hw = training_input_hw("fixed", "CPU", (41, 49))
    assert hw == (41, 49) and training_input_hw("auto", "Ascend", (41, 49)) == hw
    assert training_input_hw("auto", "CPU", hw) is None and training_input_hw("dynamic", "Ascend", hw) is None
    ms.set_seed(4)
    dynamic = PSPNet(classes=5, layers=TINY_DEPTH, dropout=0.0, width_divisor=TINY)
    fixed = PSPNet(classes=5, layers=TINY_DEPTH, dropout=0.0, static_hw=hw, width_divisor=TINY)
    assert [p.name for p in fixed.get_parameters()] == [p.name for p in dynamic.get_parameters()]
    for a, b in zip(dynamic.get_parameters(), fixed.get_parameters()):
        b.set_data(a.data.copy())
    rng = np.random.default_rng(2)
    image = ms.Tensor(rng.standard_normal((2, 3, *hw)).astype(np.float32))
    label = rng.integers(0, 5, (2, *hw)).astype(np.int32)
    label[0, :5] = 255
    label = ms.Tensor(label)
    results = []
    for net in (dynamic, fixed):
        net.set_train(True)
        with_loss = NetWithLoss(net)
        weights = net.trainable_params()
        grad_fn = ms.value_and_grad(lambda x, y: with_loss(x, y)[0], None, weights)
        loss, grads = grad_fn(image, label)
        results.append((float(loss.asnumpy()), {w.name: g.asnumpy() for w, g in zip(weights, grads)}))
    (loss_d, grads_d), (loss_f, grads_f) = results
    assert loss_f == pytest.approx(loss_d, rel=1e-5)
    assert grads_d.keys() == grads_f.keys() and len(grads_d) == len(dynamic.trainable_params())
    for name, g in grads_d.items():
        scale = max(float(np.abs(g).max()), 1e-8)
        np.testing.assert_allclose(grads_f[name], g, rtol=0, atol=2e-4 * scale, err_msg=name)
