"""Hostile suite of the runtime backends (src/runtime/backends.py): exported models that would give silent wrong
results or cost without bound - outputs of another class count or size, foreign ONNX graphs, operators the export
sidecar did not record, sidecars claiming impossible inputs, MindIR files of another layout or size. Each is refused
in one line before the model runs or any buffer is made."""
import numpy as np
import pytest
from mindspore import nn

from src.evaluation.protocol import Protocol, segment
from src.runtime.backends import BackendError, checked_outputs, make_predict


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
