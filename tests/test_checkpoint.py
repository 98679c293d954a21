import numpy as np
import pytest
from mindspore import nn

from src.checkpoint import (CheckpointError, arrays_to_entries, load_checkpoint_strict, load_params_strict,
                            read_checkpoint, save_checkpoint_atomic)


class Tiny(nn.Cell):
    def __init__(self, aux=True):
        super().__init__()
        self.cls = nn.SequentialCell([nn.Conv2d(3, 4, 1, has_bias=True), nn.BatchNorm2d(4)])
        if aux:
            self.aux = nn.Conv2d(3, 2, 1, has_bias=True)


def _params(net):
    return {p.name: p.asnumpy() + 1.5 for p in net.get_parameters()}


def test_round_trip_exact(tmp_path):
    net = Tiny()
    params = _params(net)
    path = save_checkpoint_atomic(arrays_to_entries(params), tmp_path / "a.ckpt")
    other = Tiny()
    loaded = load_checkpoint_strict(other, path)
    assert sorted(loaded) == sorted(params)
    for p in other.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), params[p.name])
    assert not list(tmp_path.glob("*.tmp*"))


def test_missing_unexpected_and_shape_errors_list_names():
    net = Tiny()
    params = _params(net)
    del params["cls.1.gamma"]
    params["extra.weight"] = np.zeros(3, np.float32)
    params["cls.0.bias"] = np.zeros(5, np.float32)
    with pytest.raises(CheckpointError) as info:
        load_params_strict(net, params, "x.ckpt")
    msg = str(info.value)
    assert "x.ckpt" in msg and "cls.1.gamma" in msg and "extra.weight" in msg and "cls.0.bias" in msg
    assert "(4,)" in msg and "(5,)" in msg


def test_nothing_changes_when_refused():
    net = Tiny()
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    params = _params(net)
    params.pop("aux.weight")
    with pytest.raises(CheckpointError):
        load_params_strict(net, params)
    for p in net.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), before[p.name])


def test_training_checkpoint_into_eval_net_needs_explicit_aux_allowance():
    params = _params(Tiny(aux=True))
    eval_net = Tiny(aux=False)
    with pytest.raises(CheckpointError, match="aux.weight"):
        load_params_strict(eval_net, params)
    loaded = load_params_strict(eval_net, params, allow_unexpected=("aux.",))
    assert not any(n.startswith("aux.") for n in loaded)


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


def _zoo_names_of(ours):
    """Our PSPNet names as the model zoo's cells name them (written from its ResNet and PSPNet cells: the stem is
    ``backbone.layer1`` (conv1, bn1, conv2, ... as one sequence), ResNet's layer1-4 are ``backbone.layer2-5``, the
    pyramid's branches ``ppm.stage1-4`` (stage2 has no pool cell in front), ``auxiliary_branch``)."""
    zoo = {}
    for name, value in ours.items():
        module, _, rest = name.partition(".")
        if module == "layer0":
            new = f"backbone.layer1.{rest}"
        elif module.startswith("layer"):
            new = f"backbone.layer{int(module[5:]) + 1}.{rest}".replace(".downsample.", ".down_sample_layer.")
        elif module == "ppm":
            _, branch, index, leaf = rest.split(".")
            index = int(index) - 1 if branch == "1" else int(index)
            new = f"ppm.stage{int(branch) + 1}.{index}.{leaf}"
        elif module == "aux":
            new = f"auxiliary_branch.{rest}"
        else:
            new = name
        zoo[new] = value
    return zoo


@pytest.fixture(scope="module")
def tiny_pspnet_weights():
    from src.model.pspnet import PSPNet

    net = PSPNet(classes=6, layers=14, width_divisor=16)
    return {p.name: np.random.default_rng(len(p.name)).standard_normal(p.shape).astype(np.float32)
            for p in net.get_parameters()}


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
    from src.train.loop import load_pretrained

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


def test_every_entry_a_training_checkpoint_adds_is_known_as_training_state():
    """The loader tells weights from training state by name; the run's own names (src.train.run_state) must all
    be known to it, or a resumed checkpoint given to eval would be refused as unexpected weights."""
    from src.checkpoint import is_training_state
    from src.train import run_state

    names = run_state.OPTIMIZER_STATE_PREFIXES + run_state.LOOP_STATE_NAMES + (run_state.SCHEDULE_PREFIX + "base_lr",
                                                                            run_state.LOCAL_BEST_NAME)
    assert all(is_training_state(n) for n in names)
    assert not is_training_state("layer0.0.weight") and not is_training_state("cls.4.bias")


def test_one_weight_under_two_spellings_refuses_the_file(tmp_path, tiny_pspnet_weights):
    """``down_sample_layer`` (the zoo's) and ``downsample`` (ours) of the same block both name one parameter:
    loading by name cannot choose, so the file is refused naming ours as the odd one (it used to keep whichever
    came last)."""
    from src.model.pspnet import PSPNet
    from src.train.loop import load_pretrained

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


def _refusal(tmp_path, entries, load="strict"):
    """The one-line message loading ``entries`` gives, with the network checked unchanged."""
    from src.model.pspnet import PSPNet
    from src.train.loop import load_pretrained

    path = save_checkpoint_atomic(arrays_to_entries(entries), tmp_path / "user.ckpt")
    net = PSPNet(classes=6, layers=14, width_divisor=16)
    before = {p.name: p.asnumpy() for p in net.get_parameters()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_strict(net, path) if load == "strict" else load_pretrained(net, str(path))
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in net.get_parameters())
    message = str(info.value)
    assert "\n" not in message and len(message) < 1500 and "user.ckpt" in message
    return message


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


def test_misplaced_checkpoints_get_the_right_hint(tmp_path, tiny_pspnet_weights):
    """A backbone given as the model points to model.pretrained (it said "another pyramid"); a file of training
    state only says it holds no weights (it said "a 7x7 stem"); a zoo backbone missing one tensor is still read
    as the zoo's and names that tensor."""
    backbone = {n: v for n, v in tiny_pspnet_weights.items() if n.startswith("layer")}
    assert "give it as model.pretrained" in _refusal(tmp_path, backbone)
    state = {"global_step": np.ones(1, np.int32), "moments.layer0.0.weight": np.zeros(1, np.float32)}
    assert "holds none of this network's weights (only training state)" in _refusal(tmp_path, state)
    stem = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}
    zoo = {(f"{stem[n.split('.')[1]]}.{n.split('.', 2)[2]}" if n.startswith("layer0.") else
            n.replace(".downsample.", ".down_sample_layer.")): v for n, v in backbone.items()}
    del zoo["bn1.gamma"]
    message = _refusal(tmp_path, zoo, load="pretrained")
    assert "missing from the checkpoint (1): layer0.1.gamma" in message


def test_a_zoo_file_that_does_not_fit_is_named_in_its_own_spelling(tmp_path, tiny_pspnet_weights):
    """After the rename a missing or mis-shaped tensor is named as this network calls it and as the file does,
    so the user can find it in their file."""
    zoo = _zoo_names_of(tiny_pspnet_weights)
    del zoo["backbone.layer2.0.conv1.weight"]
    zoo["ppm.stage2.0.weight"] = np.zeros((1, 1, 1, 1), np.float32)
    message = _refusal(tmp_path, zoo)
    assert "layer1.0.conv1.weight (in the file: backbone.layer2.0.conv1.weight)" in message
    assert "ppm.features.1.1.weight: checkpoint (1, 1, 1, 1)" in message and "(in the file: ppm.stage2.0.weight)" in message
