"""Tests of src/checkpoint/format.py: the ``.ckpt`` protobuf read entry by entry (a corrupt, truncated or foreign
file is one CheckpointError naming it; the ``names`` filter; a scalar entry) and the MindSpore model zoo's names
(its PSPNet and its ResNet backbone mapped onto this network's by whole names, a file mixing spellings or holding
an entry with no place refused in one bounded line, a file that does not fit named in its own spelling). The
strict load and its hints: test_files.py; lying sizes and sliced tensors: tests/integration/test_hostile_checkpoints.py."""
import logging

import numpy as np
import pytest

from checkpoint_cases import Tiny, _params, _refusal, _zoo_names_of
from src.checkpoint.files import arrays_to_entries, load_checkpoint_strict, save_checkpoint_atomic
from src.checkpoint.format import (CheckpointError, from_zoo_names, read_checkpoint, zoo_kind, zoo_spelling)


def test_corrupt_and_truncated_checkpoint(tmp_path):
    path = save_checkpoint_atomic(arrays_to_entries(_params(Tiny())), tmp_path / "good.ckpt")
    data = path.read_bytes()
    bad = tmp_path / "cut.ckpt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.ckpt"):
        read_checkpoint(bad)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        read_checkpoint(junk)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "none.ckpt")


def test_a_model_zoo_pspnet_checkpoint_loads_by_name(tmp_path, tiny_pspnet_weights, caplog):
    """Every tensor of a zoo-trained PSPNet lands in the parameter of the same role (its optimizer state is not
    a weight); the load no longer warns that scores differ (model.pyramid decides the form: its own tests in
    tests/model/test_zoo_pyramid.py); an entry with no place refuses the file."""
    from src.model.pspnet import PSPNet

    caplog.set_level("INFO")
    zoo = _zoo_names_of(tiny_pspnet_weights)
    assert "ppm.stage2.0.weight" in zoo and "backbone.layer5.0.down_sample_layer.0.weight" in zoo
    state = {"moments.cls.0.weight": np.zeros(1, np.float32), "learning_rate": np.ones(1, np.float32),
             "global_step": np.ones(1, np.int32)}
    path = save_checkpoint_atomic(arrays_to_entries({**zoo, **state}), tmp_path / "PSPNet-50_1323.ckpt")
    net = PSPNet(classes=6, layers=14, width_divisor=16)
    assert sorted(load_checkpoint_strict(net, path)) == sorted(tiny_pspnet_weights)
    assert all(np.array_equal(p.asnumpy(), tiny_pspnet_weights[p.name]) for p in net.get_parameters())
    assert "the model zoo's pspnet names, mapped" in caplog.text and "differ" not in caplog.text

    extra = save_checkpoint_atomic(arrays_to_entries({**zoo, "ppm.stage5.1.weight": np.zeros(2, np.float32)}),
                                   tmp_path / "extra.ckpt")
    before = {p.name: p.asnumpy() for p in net.get_parameters()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_strict(PSPNet(classes=6, layers=14, width_divisor=16), extra)
    assert "extra.ckpt" in str(info.value) and "ppm.stage5.1.weight" in str(info.value)
    assert "\n" not in str(info.value) and all(np.array_equal(p.asnumpy(), before[p.name]) for p in net.get_parameters())


def test_the_model_zoos_backbone_loads_as_pretrained_through_a_name_map(tmp_path, tiny_pspnet_weights, caplog):
    """resnet_deepbase.ckpt carries the zoo's ResNet cell names (conv1/bn1/.../down_sample_layer); every backbone
    tensor must land in this network's parameter of the same role, and an entry with no place is refused."""
    from src.model.pspnet import PSPNet
    from src.train.finetune import load_pretrained

    stem = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}
    ours = {n: v for n, v in tiny_pspnet_weights.items() if n.startswith("layer")}
    zoo = {}
    for name, value in ours.items():
        module, _, rest = name.partition(".")
        index, _, leaf = rest.partition(".")
        zoo[f"{stem[index]}.{leaf}" if module == "layer0" else name.replace(".downsample.", ".down_sample_layer.")] = value
    save_checkpoint_atomic(arrays_to_entries(zoo), tmp_path / "resnet_deepbase.ckpt")
    net = PSPNet(classes=6, layers=14, width_divisor=16)
    assert sorted(load_pretrained(net, str(tmp_path / "resnet_deepbase.ckpt"))) == sorted(ours)  # every tensor used
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    assert all(np.array_equal(params[n], v) for n, v in ours.items())
    # An ImageNet classifier beside the backbone (the zoo's ResNet calls it end_point) is skipped and named; any
    # other entry with no place refuses the file.
    classifier = {"end_point.weight": np.zeros((2, 2), np.float32), "end_point.bias": np.zeros(2, np.float32)}
    save_checkpoint_atomic(arrays_to_entries({**zoo, **classifier}), tmp_path / "with_fc.ckpt")
    caplog.clear()
    assert sorted(load_pretrained(net, str(tmp_path / "with_fc.ckpt"))) == sorted(ours)
    assert "skipped the ImageNet classifier" in caplog.text and "end_point.weight, end_point.bias" in caplog.text
    save_checkpoint_atomic(arrays_to_entries({**zoo, "end_point.scale": np.zeros(2, np.float32)}),
                           tmp_path / "odd.ckpt")
    with pytest.raises(CheckpointError, match="nor the model zoo.s backbone names: end_point.scale"):
        load_pretrained(net, str(tmp_path / "odd.ckpt"))


def test_one_weight_under_two_spellings_refuses_the_file(tmp_path, tiny_pspnet_weights):
    """``down_sample_layer`` (the zoo's) and ``downsample`` (ours) of the same block both name one parameter:
    loading by name cannot choose, so the file is refused naming ours as the odd one (it used to keep whichever
    came last)."""
    from src.model.pspnet import PSPNet
    from src.train.finetune import load_pretrained

    stem = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}
    zoo = {}
    for name, value in tiny_pspnet_weights.items():
        module, _, rest = name.partition(".")
        if module == "layer0":
            index, _, leaf = rest.partition(".")
            zoo[f"{stem[index]}.{leaf}"] = value
        elif module.startswith("layer"):
            zoo[name.replace(".downsample.", ".down_sample_layer.")] = value
    twice = next(n for n in zoo if ".down_sample_layer." in n)
    zoo[twice.replace(".down_sample_layer.", ".downsample.")] = np.zeros_like(zoo[twice])
    path = save_checkpoint_atomic(arrays_to_entries(zoo), tmp_path / "resnet_deepbase.ckpt")
    net = PSPNet(classes=6, layers=14, width_divisor=16)
    before = {p.name: p.asnumpy() for p in net.get_parameters()}
    with pytest.raises(CheckpointError) as info:
        load_pretrained(net, str(path))
    message = str(info.value)
    assert "mixes the model zoo's names" in message and f"this network's (1: {twice.replace('.down_sample_layer.', '.downsample.')})" in message
    assert "\n" not in message
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in net.get_parameters())


def test_hostile_and_odd_zoo_checkpoints_are_refused_in_one_bounded_line(tmp_path, tiny_pspnet_weights):
    """What a hostile review tried: a name with a trailing newline (a `$` regex took it for a zoo name), a
    20,000-character or multi-line name, names the zoo's heads do not have, zoo names mixed with ours."""
    zoo = _zoo_names_of(tiny_pspnet_weights)
    newline = dict(zoo)
    newline["backbone.layer1.0.weight\n"] = newline.pop("backbone.layer1.0.weight")
    assert "backbone.layer1.0.weight\\n" in _refusal(tmp_path, newline)
    long_name = _refusal(tmp_path, {**zoo, "ppm.stage9.1." + "w" * 20000: np.zeros(1, np.float32)})
    assert "ppm.stage9.1.www" in long_name and len(long_name) < 600
    assert "\\nSECOND" in _refusal(tmp_path, {**zoo, "ppm.stage9.1.weight\nSECOND": np.zeros(1, np.float32)})
    ours = _refusal(tmp_path, {**tiny_pspnet_weights, "cls.\n" + "w" * 20000: np.zeros(1, np.float32)})
    assert "unexpected in the checkpoint (1): cls.\\nwww" in ours and len(ours) < 600
    assert "auxiliary_branch.totally.bogus" in _refusal(tmp_path, {**zoo, "auxiliary_branch.totally.bogus":
                                                                  np.zeros(1, np.float32)})
    mixed = dict(tiny_pspnet_weights)
    mixed["auxiliary_branch.0.weight"] = mixed["aux.0.weight"]
    message = _refusal(tmp_path, mixed)
    assert "mixes the model zoo's names (1: auxiliary_branch.0.weight)" in message


def test_a_zoo_file_that_does_not_fit_is_named_in_its_own_spelling(tmp_path, tiny_pspnet_weights):
    """After the rename a missing or mis-shaped tensor is named as this network calls it and as the file does,
    so the user can find it in their file."""
    zoo = _zoo_names_of(tiny_pspnet_weights)
    del zoo["backbone.layer2.0.conv1.weight"]
    zoo["ppm.stage2.0.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    message = _refusal(tmp_path, zoo)
    assert "layer1.0.conv1.weight (in the file: backbone.layer2.0.conv1.weight)" in message
    assert "ppm.features.1.1.weight: checkpoint (1, 1, 1, 1)" in message and "(in the file: ppm.stage2.0.weight)" in message


def test_read_checkpoint_gives_back_each_entry_and_keeps_only_the_named_ones(tmp_path):
    entries = {"cls.w": np.arange(6, dtype=np.float32).reshape(2, 3), "cls.n": np.array([3, -4], np.int32),
               "aux.h": np.array([0.5, 2.0], np.float16), "step": np.array(5, np.int64)}
    path = save_checkpoint_atomic(arrays_to_entries(entries), tmp_path / "all.ckpt")
    read = read_checkpoint(path)
    assert sorted(read) == sorted(entries)
    for name, value in entries.items():
        assert read[name].dtype == value.dtype and read[name].shape == value.shape, name
        np.testing.assert_array_equal(read[name], value)
    assert sorted(read_checkpoint(path, names=("cls.",))) == ["cls.n", "cls.w"]


def test_zoo_kind_tells_the_zoos_pspnet_and_backbone_names_from_any_others():
    assert zoo_kind(["backbone.layer1.0.weight", "cls.4.bias"]) == "pspnet"
    assert zoo_kind(["ppm.stage2.0.weight"]) == "pspnet"
    assert zoo_kind(["conv1.weight", "layer1.0.down_sample_layer.0.weight"]) == "backbone"
    assert zoo_kind(["conv1.weight", "layer1.0.conv1.weight"]) == ""  # a stem alone is not the zoo's ResNet
    assert zoo_kind(["layer0.0.weight", "layer1.0.downsample.0.weight", "ppm.features.0.1.weight"]) == ""


@pytest.mark.parametrize("kind,example,ours", [
    ("pspnet", ("layer1.0.downsample.0.weight", "backbone.layer2.0.down_sample_layer.0.weight"),
     ["layer0.0.weight", "layer0.1.gamma", "layer1.0.conv1.weight", "layer1.0.downsample.0.weight",
      "layer1.0.downsample.1.moving_variance", "layer4.2.bn3.moving_mean", "ppm.features.0.1.weight",
      "ppm.features.1.2.beta", "ppm.features.3.2.gamma", "cls.4.bias", "aux.0.weight", "aux.4.bias"]),
    ("backbone", ("layer0.1.gamma", "bn1.gamma"),
     ["layer0.0.weight", "layer0.1.gamma", "layer0.7.moving_mean", "layer1.0.conv1.weight",
      "layer1.0.downsample.0.weight", "layer3.1.bn2.beta"]),
])
def test_zoo_spelling_is_undone_by_the_rename_of_from_zoo_names(kind, example, ours):
    assert zoo_spelling(example[0], kind) == example[1]
    values = {name: np.full(1, i, np.float32) for i, name in enumerate(ours)}
    zoo = {zoo_spelling(name, kind): value for name, value in values.items()}
    assert len(zoo) == len(ours) and zoo_kind(zoo) == kind
    renamed, found = from_zoo_names(zoo, "zoo.ckpt")
    assert found == kind and sorted(renamed) == sorted(ours)
    assert all(renamed[name] is value for name, value in values.items())


def test_from_zoo_names_passes_other_files_through_and_refuses_an_entry_with_no_place(caplog):
    ours = {"layer0.0.weight": np.zeros(1, np.float32), "cls.4.bias": np.ones(1, np.float32)}
    same, kind = from_zoo_names(ours, "ours.ckpt")
    assert kind == "" and list(same) == list(ours) and all(same[n] is ours[n] for n in ours)
    caplog.set_level(logging.WARNING)
    backbone = {"conv1.weight": np.zeros(1, np.float32), "layer1.0.down_sample_layer.0.weight": np.zeros(1, np.float32),
                "end_point.weight": np.zeros(1, np.float32)}
    renamed, kind = from_zoo_names(backbone, "r.ckpt")
    assert kind == "backbone" and sorted(renamed) == ["layer0.0.weight", "layer1.0.downsample.0.weight"]
    assert "skipped the ImageNet classifier" in caplog.text and "end_point.weight" in caplog.text
    with pytest.raises(CheckpointError, match=r"^z.ckpt: has 1 entries that are neither this network's nor the "
                                              r"model zoo's pspnet names: backbone.bogus$"):
        from_zoo_names({"backbone.layer1.0.weight": np.zeros(1), "backbone.bogus": np.zeros(1)}, "z.ckpt")
