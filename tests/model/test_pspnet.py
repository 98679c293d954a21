"""src.model.pspnet: the PSPNet network - parameter names and shapes equal the PyTorch references (semseg's PSPNet,
torchvision's ResNet stem), parameter count, forward shapes at odd sizes, other bins and no pyramid, the pyramid's
pooling and resize matrices against MindSpore's ops, and the fixed-size (static) graph forms equal the dynamic one."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import nn, ops

from helpers import TINY, TINY_DEPTH
from src.model.pspnet import (PPM, PSPNet, adaptive_pool_matrix, bilinear_matrix, feature_size)

BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def _expected_from_reference(entries):
    """Reference (PyTorch) keys -> our names: BN leaves renamed, num_batches_tracked dropped."""
    bn_modules = {k.rpartition(".")[0] for k, _ in entries if k.endswith("running_mean")}
    out = {}
    for key, shape in entries:
        module, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue
        if module in bn_modules:
            leaf = BN[leaf]
        out[f"{module}.{leaf}"] = tuple(shape)
    return out


@pytest.mark.parametrize("layers", [50, 101])
def test_names_and_shapes_equal_reference(reference_keys, layers):
    net = PSPNet(classes=21, layers=layers)
    ours = {p.name: tuple(p.shape) for p in net.get_parameters()}
    expected = _expected_from_reference(reference_keys[f"semseg_pspnet{layers}_voc21"])
    assert sorted(ours) == sorted(expected)
    assert ours == expected


@pytest.mark.slow
def test_parameter_count_pspnet50():
    net = PSPNet(classes=21, layers=50)
    trainable = sum(int(np.prod(p.shape)) for p in net.trainable_params())
    assert trainable == 49_081_578
    no_aux = PSPNet(classes=21, layers=50, use_aux=False)
    assert sum(int(np.prod(p.shape)) for p in no_aux.trainable_params()) == 46_716_373


def test_torchvision_stem_names(reference_keys):
    net = PSPNet(classes=21, layers=50, deep_stem=False)
    ours = {p.name: tuple(p.shape) for p in net.get_parameters() if p.name.startswith("layer")}
    ref = _expected_from_reference([e for e in reference_keys["torchvision_resnet50_imagenet"]
                                    if not e[0].startswith("fc.")])
    renamed = {n.replace("conv1.", "layer0.0.", 1) if n.startswith("conv1.") else
               n.replace("bn1.", "layer0.1.", 1) if n.startswith("bn1.") else n: s for n, s in ref.items()}
    assert ours == renamed


@pytest.mark.parametrize("hw", [(65, 65), (97, 97), (129, 97)])
def test_forward_shapes_odd_sizes(hw):
    net = PSPNet(classes=5, layers=TINY_DEPTH, width_divisor=TINY)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1, 3) + hw).astype(np.float32))
    net.set_train(True)
    main, aux = net(x)
    assert main.shape == (1, 5) + hw and aux.shape == (1, 5) + hw
    net.set_train(False)
    out = net(x)
    assert out.shape == (1, 5) + hw


def test_other_bins_and_no_ppm():
    net = PSPNet(classes=3, layers=TINY_DEPTH, bins=(1, 4, 8), use_aux=False, width_divisor=TINY)
    names = {p.name for p in net.get_parameters()}
    assert "ppm.features.2.1.weight" in names and "ppm.features.3.1.weight" not in names
    # 2048/16 + 3 * (128 // 3) channels into cls.0 (2048 + 3 * 682 at full width)
    assert tuple(net.cls[0].weight.shape) == (32, 128 + 3 * 42, 3, 3)
    net.set_train(False)
    out = net(ms.Tensor(np.zeros((2, 3, 65, 81), np.float32)))
    assert out.shape == (2, 3, 65, 81)
    base = PSPNet(classes=3, layers=TINY_DEPTH, use_ppm=False, use_aux=False, width_divisor=TINY)
    assert not any(p.name.startswith("ppm.") for p in base.get_parameters())
    assert tuple(base.cls[0].weight.shape) == (32, 128, 3, 3)


def test_output_stride_16_feature_size():
    assert feature_size(473, 8) == 60 and feature_size(473, 16) == 30 and feature_size(65, 8) == 9


def test_ppm_pooled_sizes_and_concat():
    ppm = PPM(8, 2, (1, 2, 3, 6))
    ppm.set_train(False)
    x = ms.Tensor(np.random.default_rng(1).standard_normal((1, 8, 9, 7)).astype(np.float32))
    for feature, b in zip(ppm.features, (1, 2, 3, 6)):
        assert feature[0](x).shape == (1, 8, b, b)
    assert ppm(x).shape == (1, 8 + 4 * 2, 9, 7)


@pytest.mark.parametrize("in_size,out_size", [(9, 6), (7, 3), (60, 6), (5, 1), (4, 4)])
def test_adaptive_pool_matrix_matches_op(in_size, out_size):
    x = np.random.default_rng(2).standard_normal((1, 2, in_size, in_size + 2)).astype(np.float32)
    want = nn.AdaptiveAvgPool2d((out_size, out_size))(ms.Tensor(x)).asnumpy()
    got = np.einsum("ih,nchw,jw->ncij", adaptive_pool_matrix(in_size, out_size), x,
                    adaptive_pool_matrix(in_size + 2, out_size))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("in_size,out_size", [(1, 9), (2, 9), (6, 60), (9, 65), (13, 4)])
def test_bilinear_matrix_matches_interpolate(in_size, out_size):
    x = np.random.default_rng(3).standard_normal((1, 2, in_size, in_size + 1)).astype(np.float32)
    want = ops.interpolate(ms.Tensor(x), size=(out_size, out_size + 3), mode="bilinear",
                           align_corners=True).asnumpy()
    got = np.einsum("ih,nchw,jw->ncij", bilinear_matrix(in_size, out_size), x,
                    bilinear_matrix(in_size + 1, out_size + 3))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_static_export_form_equals_dynamic():
    hw = (73, 57)
    dyn = PSPNet(classes=4, layers=TINY_DEPTH, use_aux=False, width_divisor=TINY)
    fixed = PSPNet(classes=4, layers=TINY_DEPTH, use_aux=False, static_hw=hw, width_divisor=TINY)
    assert [p.name for p in dyn.get_parameters()] == [p.name for p in fixed.get_parameters()]
    for a, b in zip(dyn.get_parameters(), fixed.get_parameters()):
        b.set_data(a.data.copy())
    dyn.set_train(False)
    fixed.set_train(False)
    x = ms.Tensor(np.random.default_rng(4).standard_normal((1, 3) + hw).astype(np.float32))
    np.testing.assert_allclose(fixed(x).asnumpy(), dyn(x).asnumpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride", [8, 32])
def test_static_training_form_with_aux_equals_dynamic(stride):
    """The aux head reads layer3, which stays at stride 16 when layer4 goes to 32: its fixed-size upsampling
    must start from layer3's size (it took layer4's and failed at the first step)."""
    hw = (41, 33)
    nets = [PSPNet(classes=3, layers=TINY_DEPTH, dropout=0.0, output_stride=stride, static_hw=form,
                   width_divisor=TINY) for form in (None, hw)]
    for a, b in zip(*(n.get_parameters() for n in nets)):
        b.set_data(a.data.copy())
    x = ms.Tensor(np.random.default_rng(5).standard_normal((2, 3) + hw).astype(np.float32))
    (main_d, aux_d), (main_f, aux_f) = [n.set_train(True)(x) for n in nets]
    np.testing.assert_allclose(main_f.asnumpy(), main_d.asnumpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(aux_f.asnumpy(), aux_d.asnumpy(), rtol=1e-4, atol=1e-4)
