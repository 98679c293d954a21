"""src.model.resnet: the dilated ResNet backbone - its argument checks (depth, output stride, width divisor), the
zero-initialised residual option, and the stage strides/dilations that set the feature map's size.

(The BatchNorm momentum and stem max-pool pins of this module live with the other MindSpore numerics pins in
test_pspnet_numerics.py; the parameter names against the PyTorch reference in test_pspnet.py.)
"""
import numpy as np
import pytest
import mindspore as ms
from mindspore import ops

from helpers import TINY, TINY_DEPTH
from src.model.pspnet import PSPNet
from src.model.resnet import (Bottleneck, batch_norm, build_resnet_stages, make_layer, stage_strides,
                              zero_residual_gammas)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="depth"):
        PSPNet(classes=2, layers=34)
    with pytest.raises(ValueError, match="output_stride"):
        PSPNet(classes=2, output_stride=4)
    with pytest.raises(ValueError, match="width_divisor"):
        PSPNet(classes=2, width_divisor=3)


def test_zero_init_residual_zeroes_only_each_blocks_last_bn_scale():
    net = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY, zero_init_residual=True)
    ref = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY)
    gammas = {p.name: p.asnumpy() for p in net.get_parameters() if p.name.endswith(".gamma")}
    zeroed = sorted(n for n, g in gammas.items() if not g.any())
    # one bottleneck per stage at the test depth: layer1.0 .. layer4.0, each its bn3 and nothing else
    assert zeroed == [f"layer{i}.0.bn3.gamma" for i in range(1, 5)]
    assert all(np.all(g == 1) for n, g in gammas.items() if n not in zeroed)
    assert [p.name for p in net.get_parameters()] == [p.name for p in ref.get_parameters()]
    # the block then passes its shortcut through: with eval-mode BN (fresh stats) bn3 outputs beta = 0
    block = net.layer1[0]
    block.set_train(False)
    x = ms.Tensor(np.random.default_rng(1).standard_normal((1, 8, 9, 9)).astype(np.float32))
    expect = ops.relu(block.downsample(x)).asnumpy()
    np.testing.assert_allclose(block(x).asnumpy(), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_stage_strides_trade_each_stride_removed_for_a_doubled_dilation(output_stride):
    (s3, d3), (s4, d4) = stage_strides(output_stride)
    assert 8 * s3 * s4 == output_stride  # the stem (4) and layer2 (2) stride 8 together, always
    assert s3 * d3 == 2 and s4 * d4 == 2 * d3  # layer3 / layer4 see as far as with their strides
    with pytest.raises(ValueError, match="output_stride"):
        stage_strides(output_stride * 3)


@pytest.mark.parametrize("output_stride", [8, 32])
def test_backbone_stages_end_at_the_output_stride_with_the_last_stages_width(output_stride):
    stages = build_resnet_stages(TINY_DEPTH, True, output_stride, width_divisor=TINY)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3, 65, 49)).astype(np.float32))
    for stage in stages:
        stage.set_train(False)
        x = stage(x)
    size = [65, 49]
    for _ in range(int(np.log2(output_stride))):
        size = [(n - 1) // 2 + 1 for n in size]  # each stride-2 step: a 3x3 conv or pool padded by 1
    assert tuple(x.shape) == (1, 2048 // TINY, *size)


def test_zero_residual_gammas_counts_its_blocks_and_leaves_the_other_norms_alone():
    layer, out_channels = make_layer(8, 4, 3, 1, 1, batch_norm)
    assert out_channels == 16
    assert zero_residual_gammas(layer) == 3
    for i in range(3):
        block = layer[i]
        assert isinstance(block, Bottleneck)
        assert not block.bn3.gamma.asnumpy().any()
        assert np.all(block.bn1.gamma.asnumpy() == 1) and np.all(block.bn2.gamma.asnumpy() == 1)
    assert np.all(layer[0].downsample[1].gamma.asnumpy() == 1)  # the shortcut's norm is not a residual scale
