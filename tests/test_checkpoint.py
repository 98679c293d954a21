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
