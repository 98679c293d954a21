"""Hostile suite of the model loaders: weights and models that would give silent wrong results - NaN weights,
colliding names, lying loop counters, damaged checkpoints and checkpoints whose declared sizes lie (the checkpoint
reader and strict loader, resume, the .pth converter), models of another class count or output size and foreign
ONNX / MindIR graphs (the runtime backends). Each is one clear error (or an explicit, logged allowance), and
nothing is overwritten."""
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
from src.evaluation.protocol import Protocol, segment
from src.runtime.backends import BackendError, checked_outputs, make_predict


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


def _protocol(classes):
    return Protocol(classes=classes, crop_h=9, crop_w=9, base_size=12, scales=(1.0,), flip=False,
                    stride_rate=2 / 3, batch_size=2, mean=(0.0,) * 3, std=(1.0,) * 3)


def test_model_outputs_of_another_size_or_class_count_are_refused_before_merging():
    image = np.zeros((10, 12, 3), np.float32)
    halves = checked_outputs(lambda b: np.zeros((b.shape[0], 3, b.shape[2] // 2, b.shape[3] // 2), np.float32),
                             3, "half.onnx")
    with pytest.raises(BackendError, match=r"half.onnx returned float32 \(2, 3, 4, 4\) .* expected float logits "
                                           r"\(2, 3, 9, 9\)"):
        segment(image, halves, _protocol(3))
    fewer = checked_outputs(lambda b: np.zeros((b.shape[0], 2) + b.shape[2:], np.float32), 3, "two.onnx")
    with pytest.raises(BackendError, match="two.onnx returned"):
        segment(image, fewer, _protocol(3))
    ints = checked_outputs(lambda b: np.zeros((b.shape[0], 3) + b.shape[2:], np.int64), 3, "int.onnx")
    with pytest.raises(BackendError, match="int64"):
        segment(image, ints, _protocol(3))


def test_onnx_model_with_a_wrong_output_is_one_backend_error(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, 3, 1, 1], np.ones(9, np.float32).tolist())
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("AveragePool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "halves", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "halves.onnx"
    onnx.save(model, str(path))
    predict = make_predict("onnx", str(path), None, 3, 2, (9, 9))
    with pytest.raises(BackendError, match=r"halves.onnx returned float32 \(2, 3, 4, 4\)"):
        segment(np.zeros((10, 12, 3), np.float32), predict, _protocol(3))


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


def _onnx_model(path, inputs, nodes, outputs, opset=11):
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return str(path)


def _io(name, elem, dims):
    from onnx import helper

    return helper.make_tensor_value_info(name, elem, dims)


def _hostile_onnx(tmp_path, kind):
    """ONNX graphs built as an attacker would: tiny files whose cost or interface is not a PSPNet's."""
    from onnx import TensorProto as T, helper

    f = tmp_path / f"{kind}.onnx"
    out = _io("y", T.FLOAT, [2, 6, 9, 9])
    if kind == "no_input":
        const = helper.make_tensor("c", T.FLOAT, [2, 6, 9, 9], np.zeros(2 * 6 * 81, np.float32))
        return _onnx_model(f, [], [helper.make_node("Constant", [], ["y"], value=const)], [out])
    if kind == "two_inputs":
        return _onnx_model(f, [_io("x", T.FLOAT, [2, 3, 9, 9]), _io("z", T.FLOAT, [2, 3, 9, 9])],
                           [helper.make_node("Add", ["x", "z"], ["y"])], [out])
    if kind == "nhwc":
        return _onnx_model(f, [_io("x", T.FLOAT, ["N", "H", "W", 3])],
                           [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 3, 1, 2])], [out])
    if kind in ("float16", "int64"):
        elem = T.FLOAT16 if kind == "float16" else T.INT64
        return _onnx_model(f, [_io("x", elem, [2, 3, 9, 9])], [helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT)],
                           [out])
    if kind == "constant_of_shape":  # 318 bytes that would allocate 25000 x 25000 floats
        shape = helper.make_tensor("s", T.INT64, [2], [25000, 25000])
        return _onnx_model(f, [_io("x", T.FLOAT, [2, 3, 9, 9])],
                           [helper.make_node("Constant", [], ["shape"], value=shape),
                            helper.make_node("ConstantOfShape", ["shape"], ["y"])], [out])
    if kind == "loop":  # a Loop of 10^12 iterations
        body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                                  helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
                                 [_io("i", T.INT64, []), _io("cond_in", T.BOOL, []), _io("v_in", T.FLOAT, [2, 3, 9, 9])],
                                 [_io("cond_out", T.BOOL, []), _io("v_out", T.FLOAT, [2, 3, 9, 9])])
        trip = helper.make_tensor("t", T.INT64, [], [10**12])
        cond = helper.make_tensor("b", T.BOOL, [], [True])
        return _onnx_model(f, [_io("x", T.FLOAT, [2, 3, 9, 9])],
                           [helper.make_node("Constant", [], ["trip"], value=trip),
                            helper.make_node("Constant", [], ["cond"], value=cond),
                            helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)], [out])
    raise ValueError(kind)


@pytest.mark.parametrize("kind,match", [
    ("no_input", "has 0 inputs"), ("two_inputs", "has 2 inputs"), ("nhwc", "channels last"),
    ("float16", "is float16, not float32"), ("int64", "is int64, not float32"),
    ("constant_of_shape", "operators this project's exports never use: ConstantOfShape"),
    ("loop", "never use: Loop"),
])
def test_foreign_onnx_models_are_checked_before_they_run(tmp_path, kind, match):
    import time
    import tracemalloc

    path = _hostile_onnx(tmp_path, kind)
    tracemalloc.start()
    start = time.monotonic()
    with pytest.raises(BackendError, match=match) as info:
        make_predict("onnx", path, None, 6, 2, (9, 9))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert time.monotonic() - start < 10 and peak < 50e6  # refused from the graph, nothing run
    assert "\n" not in str(info.value) and f"{kind}.onnx" in str(info.value)


def test_an_onnx_model_with_operators_its_sidecar_did_not_record_is_refused(tmp_path):
    import json

    from onnx import TensorProto as T, helper

    path = _onnx_model(tmp_path / "m.onnx", [_io("x", T.FLOAT, [2, 3, 9, 9])],
                       [helper.make_node("Conv", ["x", "w"], ["y"])], [_io("y", T.FLOAT, [2, 6, 9, 9])])
    (tmp_path / "m.onnx.json").write_text(json.dumps({"input_shape": [2, 3, 9, 9], "classes": 6, "onnx_ops": ["Add"]}))
    with pytest.raises(BackendError, match="never use: Conv"):
        make_predict("onnx", path, None, 6, 2, (9, 9))


@pytest.mark.parametrize("shape", [[10**9, 3, 9, 9], [2, 3, 100000, 9], [2, 4, 9, 9]])
def test_a_sidecar_claiming_an_impossible_export_is_refused_before_any_buffer(tmp_path, shape):
    import json

    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"input_shape": shape, "classes": 6}))
    with pytest.raises(BackendError, match="not an export sidecar"):
        make_predict("onnx", str(tmp_path / "m.onnx"), None, 6, 2, (9, 9))


@pytest.mark.parametrize("shape,match", [((2, 9, 9, 3), "channels last"), ((2, 3, 17, 17), r"takes input \[2, 3, 17, 17\]")])
def test_a_mindir_of_another_layout_or_size_is_refused_before_it_runs(tmp_path, shape, match):
    """An NHWC export, or one made at another size without its sidecar: refused from the file's own graph."""
    import mindspore as ms
    from mindspore import ops

    class Net(nn.Cell):
        def construct(self, x):
            return ops.relu(x)

    ms.export(Net(), ms.Tensor(np.zeros(shape, np.float32)), file_name=str(tmp_path / "m"), file_format="MINDIR")
    with pytest.raises(BackendError, match=match) as info:
        make_predict("mindir", str(tmp_path / "m.mindir"), None, 3, 2, (9, 9))
    assert "\n" not in str(info.value)
