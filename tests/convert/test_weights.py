"""src.convert.weights: PyTorch state dicts renamed to this network's parameters - each supported kind converted
and loaded strictly with exact values, BatchNorm mapped by name, the kind told from the keys, and weights that do
not fit (shapes, unknown keys, depth) refused."""
import collections

import numpy as np
import pytest

from pth_writer import random_state_dict, write_pth
from src.checkpoint.files import load_checkpoint_strict
from src.convert.weights import ConversionError, convert_file, convert_state_dict, detect_kind
from src.model.pspnet import PSPNet

BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def expected_name(key, kind, bn_modules):
    module, _, leaf = key.rpartition(".")
    stems = {"semseg_backbone": {"conv1": "layer0.0", "bn1": "layer0.1", "conv2": "layer0.3", "bn2": "layer0.4",
                                 "conv3": "layer0.6", "bn3": "layer0.7"},
             "torchvision": {"conv1": "layer0.0", "bn1": "layer0.1"}, "semseg_pspnet": {}}[kind]
    new_module = stems.get(module, module)
    return f"{new_module}.{BN[leaf] if module in bn_modules else leaf}"


CASES = [("semseg_backbone", "semseg_resnet50_v2_imagenet", True, False),
         ("torchvision", "torchvision_resnet50_imagenet", False, False),
         ("semseg_pspnet", "semseg_pspnet50_voc21", True, False),
         ("semseg_pspnet", "semseg_pspnet50_voc21", True, True)]


@pytest.mark.slow
@pytest.mark.parametrize("kind,ref,deep,legacy", CASES)
def test_convert_loads_strictly_with_exact_values(tmp_path, reference_keys, kind, ref, deep, legacy):
    entries = reference_keys[ref]
    sd = random_state_dict(entries)
    src = tmp_path / "w.pth"
    if kind == "semseg_pspnet":  # as semseg saves it: wrapped, with DataParallel prefixes
        payload = {"epoch": 50, "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())}
    else:
        payload = sd
    write_pth(payload, str(src), legacy=legacy)
    report = convert_file(str(src), str(tmp_path / "w.ckpt"))  # kind auto-detected
    assert report.kind == kind and report.layers == 50 and report.deep_stem == deep
    assert not report.unknown and not report.mismatched
    skipped = {k for k in sd if k.endswith("num_batches_tracked") or k.startswith("fc.")}
    assert set(report.skipped) == skipped

    net = PSPNet(classes=21, layers=50, deep_stem=deep)
    allow = () if kind == "semseg_pspnet" else ("ppm.", "cls.", "aux.")
    loaded = load_checkpoint_strict(net, tmp_path / "w.ckpt", allow_missing=allow)
    assert len(loaded) == len(sd) - len(skipped)
    bn_modules = {k.rpartition(".")[0] for k in sd if k.endswith("running_mean")}
    params = {p.name: p for p in net.get_parameters()}
    for key, value in sd.items():
        if key in skipped:
            continue
        np.testing.assert_array_equal(params[expected_name(key, kind, bn_modules)].asnumpy(), value)


def test_bn_mapping_is_by_name_not_position():
    # Same shapes everywhere: a positional mapping would pass shape checks and be wrong.
    sd = collections.OrderedDict()
    for key in ("layer0.1.weight", "layer0.1.bias", "layer0.1.running_mean", "layer0.1.running_var"):
        sd[key] = np.full((4,), float(len(sd)), np.float32)
    sd.update({f"layer3.{i}.conv1.weight": np.zeros((1,), np.float32) for i in range(6)})
    out, _ = convert_state_dict(sd, "semseg_pspnet")
    assert out["layer0.1.gamma"][0] == 0 and out["layer0.1.beta"][0] == 1
    assert out["layer0.1.moving_mean"][0] == 2 and out["layer0.1.moving_variance"][0] == 3


@pytest.mark.slow
def test_shape_mismatch_and_unknown_key_refused(tmp_path, reference_keys):
    sd = random_state_dict(reference_keys["semseg_resnet50_v2_imagenet"])
    sd["layer1.0.conv1.weight"] = np.zeros((64, 128, 3, 3), np.float32)
    sd["layer9.weird"] = np.zeros(3, np.float32)
    write_pth(sd, str(tmp_path / "bad.pth"))
    with pytest.raises(ConversionError) as info:
        convert_file(str(tmp_path / "bad.pth"), str(tmp_path / "bad.ckpt"))
    assert str(info.value).startswith(f"{tmp_path / 'bad.pth'}: the weights do not fit")  # the file is named
    assert "layer1.0.conv1.weight" in str(info.value) and "layer9.weird" in str(info.value)
    assert not (tmp_path / "bad.ckpt").exists()
    report = convert_file(str(tmp_path / "bad.pth"), str(tmp_path / "bad.ckpt"), allow_mismatch=True)
    assert report.unknown == ["layer9.weird"] and len(report.mismatched) == 1
    assert (tmp_path / "bad.ckpt").exists()


def test_layers_flag_checked(tmp_path, reference_keys):
    sd = random_state_dict(reference_keys["semseg_resnet50_v2_imagenet"])
    with pytest.raises(ConversionError, match="ResNet-50"):
        convert_state_dict(sd, "auto", layers=101)


def test_detect_kind_tells_the_three_layouts_apart_by_keys_and_stem():
    w = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    assert detect_kind({"layer0.0.weight": w(64, 3, 3, 3)}) == "semseg_pspnet"
    assert detect_kind({"ppm.features.0.1.weight": w(2), "conv1.weight": w(64, 3, 7, 7)}) == "semseg_pspnet"
    assert detect_kind({"conv1.weight": w(64, 3, 7, 7), "fc.weight": w(10, 2048)}) == "torchvision"
    assert detect_kind({"conv1.weight": w(64, 3, 3, 3), "conv2.weight": w(64, 64, 3, 3)}) == "semseg_backbone"
    with pytest.raises(ConversionError, match="pass --kind"):
        detect_kind({"conv1.weight": w(64, 3, 3, 3)})  # a 3x3 stem without the deep stem's second conv
