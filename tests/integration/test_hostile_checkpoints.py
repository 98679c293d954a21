"""Hostile suite of the checkpoint readers (src/checkpoint/, a run's resume, the .pth converter's weights): weights
that would give silent wrong results - NaN weights, colliding names, lying loop counters, damaged checkpoints and
checkpoints whose declared sizes lie. Each is one clear error (or an explicit, logged allowance), and nothing is
overwritten. Exported models run by the backends: test_hostile_backends.py."""
import collections

import numpy as np
import pytest
from mindspore import nn

from pth_writer import write_pth
from src.checkpoint import files as ckpt_module
from src.checkpoint import format as ckpt_format
from src.checkpoint.files import (arrays_to_entries, checksum_path, load_checkpoint_strict, load_params_strict,
                                  save_checkpoint_atomic)
from src.checkpoint.format import CheckpointError, read_checkpoint
from src.train.run_state import open_resume, resume_position, rotate_checkpoints
from src.convert.pth import PthError, extract_state_dict
from src.convert.weights import ConversionError, convert_file


class Tiny(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, has_bias=True)


def test_nan_weights_are_refused_at_load_unless_allowed(caplog):
    net = Tiny()
    before = net.conv.weight.asnumpy().copy()
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    params["conv.weight"] = params["conv.weight"].copy()
    params["conv.weight"][0, 0, 0, 0] = np.nan
    params["conv.bias"] = np.full(4, np.inf, np.float32)
    with pytest.raises(CheckpointError) as info:
        load_params_strict(net, params, "w.ckpt")
    assert "w.ckpt" in str(info.value) and "conv.weight" in str(info.value) and "conv.bias" in str(info.value)
    np.testing.assert_array_equal(net.conv.weight.asnumpy(), before)
    load_params_strict(net, params, "w.ckpt", allow_non_finite=True)
    assert np.isnan(net.conv.weight.asnumpy()[0, 0, 0, 0])
    assert "NaN or infinite" in caplog.text


@pytest.mark.slow
def test_nan_weights_are_refused_at_conversion_unless_allowed(tmp_path, reference_keys):
    from pth_writer import random_state_dict

    sd = random_state_dict(reference_keys["semseg_resnet50_v2_imagenet"])
    sd["layer1.0.conv1.weight"][0, 0] = np.nan
    sd["layer2.0.bn1.running_var"][:] = np.inf
    src = tmp_path / "nan.pth"
    write_pth(sd, str(src))
    dst = tmp_path / "out.ckpt"
    with pytest.raises(ConversionError) as info:
        convert_file(str(src), str(dst))
    message = str(info.value)
    assert "nan.pth" in message and "layer1.0.conv1.weight" in message and "layer2.0.bn1.running_var" in message
    assert not dst.exists()
    convert_file(str(src), str(dst), allow_non_finite=True)
    assert dst.exists()


def test_dataparallel_prefix_that_collides_is_refused():
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    for order in (["w", "module.w"], ["module.w", "w"]):
        sd = collections.OrderedDict((k, a if k == "w" else b) for k in order)
        with pytest.raises(PthError, match="'module.w' and 'w' both name|'w' and 'w' both name"):
            extract_state_dict(sd, "two.pth")
    assert list(extract_state_dict({"module.w": a, "module.v": b}, "ok.pth")) == ["w", "v"]


def _train_ckpt(path, epoch, step, counter_dtype=np.int32):
    entries = {"w": np.ones(3, np.float32), "epoch_num": np.array([epoch], counter_dtype),
               "step_num": np.array([step], counter_dtype), "best_miou": np.array([0.5], np.float32),
               "global_step": np.array([1], np.int32)}
    return save_checkpoint_atomic(arrays_to_entries(entries), path)


@pytest.mark.parametrize("epoch,step", [(-3, 5), (np.nan, 5), (2, np.inf), (1.5, 4)])
def test_loop_counters_that_are_not_counts_are_refused(tmp_path, epoch, step):
    _train_ckpt(tmp_path / "epoch_0002.ckpt", epoch, step, np.float32 if epoch != -3 else np.int32)
    found, params = open_resume("auto", tmp_path)
    with pytest.raises(CheckpointError, match="epoch_0002.ckpt: its (epoch|step)_num is"):
        resume_position(params, found)


def test_checksum_decides_corruption_and_an_interrupted_read_changes_nothing(tmp_path, monkeypatch, caplog):
    old = _train_ckpt(tmp_path / "epoch_0001.ckpt", 1, 10)
    new = _train_ckpt(tmp_path / "epoch_0002.ckpt", 2, 20)
    assert checksum_path(new).is_file()
    path, params = open_resume("auto", tmp_path)
    assert path == new and resume_position(params, path) == (2, 20)

    # A reader that fails (MindSpore turned Ctrl-C into a ValueError) is not corruption: the run stops.
    def interrupted(*args, **kwargs):
        raise ValueError("For 'load_checkpoint', KeyboardInterrupt")

    monkeypatch.setattr(ckpt_format, "_checkpoint_values", interrupted)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match="epoch_0002.ckpt"):
        open_resume("auto", tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()

    # A file that does not match its checksum is damaged: auto falls back, an explicit path is refused.
    data = new.read_bytes()
    new.write_bytes(data[:-10] + bytes(10))
    path, params = open_resume("auto", tmp_path)
    assert path == old and "does not match its checksum" in caplog.text
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        open_resume(str(new), tmp_path)

    # Without a checksum (a file from elsewhere) it is read as it is.
    checksum_path(new).unlink()
    new.write_bytes(data)
    assert open_resume("auto", tmp_path)[0] == new
    from src.outputs.folder import OutputFolder

    with OutputFolder(tmp_path.parent, "train.save_dir", "train") as folder:
        rotate_checkpoints(folder, tmp_path.name, keep_last=1)  # neither was written through this folder
        assert old.exists() and new.exists()
        folder.adopt(f"{tmp_path.name}/{old.name}")
        folder.adopt(f"{tmp_path.name}/{new.name}")
        rotate_checkpoints(folder, tmp_path.name, keep_last=1)
    assert not old.exists() and new.exists()


def test_interrupt_while_hashing_propagates(tmp_path, monkeypatch):
    _train_ckpt(tmp_path / "epoch_0001.ckpt", 1, 10)

    def ctrl_c(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module, "file_sha256", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        open_resume("auto", tmp_path)


def _raw_ckpt(path, values):
    """A .ckpt written value by value: (name, dims, tensor_type, content bytes), sizes that may lie."""
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    for name, dims, dtype, content in values:
        v = proto.value.add()
        v.tag = name
        v.tensor.dims.extend(dims)
        v.tensor.tensor_type = dtype
        v.tensor.tensor_content = content
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.mark.parametrize("values,match", [
    ([("w", [-1, 3], "Float32", b"\0" * 12)], r"declares dimensions \[-1, 3\]"),
    ([("w", [1000, 1000], "Float32", b"\0" * 16)], r"declares Float32 \[1000, 1000\] \(4000000 bytes\) but holds 16"),
    ([("w", [2], "Float32", b"\0" * 8), ("v", [2], "Float32", b"\0" * 8), ("w", [2], "Float32", b"\1" * 8)],
     "'w' appears twice"),
    ([("w", [2], "Complex64", b"\0" * 16)], "unsupported dtype 'Complex64'"),
])
def test_checkpoints_whose_declared_sizes_lie_are_refused(tmp_path, values, match):
    path = _raw_ckpt(tmp_path / "bad.ckpt", values)
    with pytest.raises(CheckpointError, match=match) as info:
        read_checkpoint(path)
    assert "bad.ckpt" in str(info.value) and "\n" not in str(info.value)


def test_large_tensors_in_slices_read_whole_and_int_weights_are_refused(tmp_path):
    import mindspore as ms
    from mindspore import nn

    data = np.arange(6, dtype=np.float32)
    path = _raw_ckpt(tmp_path / "sliced.ckpt", [("w", [2, 3], "Float32", data[:4].tobytes()),
                                                 ("w", [2, 3], "Float32", data[4:].tobytes())])
    np.testing.assert_array_equal(read_checkpoint(path)["w"], data.reshape(2, 3))
    net = nn.Dense(3, 2, has_bias=False)
    name = net.weight.name
    ints = _raw_ckpt(tmp_path / "ints.ckpt", [(name, [2, 3], "Int32", np.ones(6, np.int32).tobytes())])
    with pytest.raises(CheckpointError, match=f"{name} is int32 in the checkpoint, the network's is float32"):
        load_checkpoint_strict(net, ints)
    doubles = _raw_ckpt(tmp_path / "f64.ckpt", [(name, [2, 3], "Float64", np.ones(6).tobytes())])
    assert load_checkpoint_strict(net, doubles) == [name]
    assert np.array_equal(net.weight.asnumpy(), np.ones((2, 3), np.float32)) and net.weight.dtype == ms.float32
