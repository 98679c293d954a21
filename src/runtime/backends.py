"""Model formats: a MindSpore checkpoint, a MINDIR, an ONNX model (and a MINDIR in MindSpore Lite).

Loading the eval network from a checkpoint, the export sidecar, the backend
a file's extension implies, and one ``predict(batch NCHW float32) -> logits
NCHW`` per format: the :data:`src.evaluation.protocol.Predict` contract.
Exported files carry a JSON sidecar (``<file>.json``, written by export) with
their input shape and output kind, which is checked here so a mismatch is one
clear error.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from src.config import PYRAMIDS, ModelConfig
from src.checkpoint.files import NonFiniteWeights, load_params_strict, read_weights_and_state, saved_pyramid
from src.checkpoint.format import CheckpointError
from src.errors import PSPNetError, shown, shown_names
from src.outputs.atomic import write_json
from src.outputs.folder import OutputFolder
from src.runtime.types import Predict

logger = logging.getLogger(__name__)


class BackendError(PSPNetError, RuntimeError):
    """A model file that cannot be used with the requested settings."""


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(str(model_path) + ".json")


def read_sidecar(model_path: str | os.PathLike) -> Optional[Dict]:
    """The export metadata next to a model file, or None if there is none; a sidecar that is not the JSON
    export writes (garbage, wrong types, a shape that is not 4 positive sizes) is one :class:`BackendError`."""
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BackendError(f"{path}: not an export sidecar (invalid JSON: {exc}); remove it or export again") from None
    shape = meta.get("input_shape") if isinstance(meta, dict) else None
    ops = meta.get("onnx_ops", []) if isinstance(meta, dict) else []
    if not isinstance(meta, dict) or ("input_shape" in meta and not _is_shape(shape)) \
            or not isinstance(meta.get("output", "logits"), str) or not _is_count(meta.get("classes", 1)) \
            or not (isinstance(ops, list) and all(isinstance(o, str) for o in ops)):
        raise BackendError(f"{path}: not an export sidecar (expected an object with input_shape [N, 3, H, W], "
                           f"output and classes); remove it or export again")
    if meta.get("pyramid", "semseg") not in PYRAMIDS:
        raise BackendError(f"{path}: not an export sidecar (its pyramid is {shown(repr(meta['pyramid']), 60)}, not "
                           f"{' or '.join(PYRAMIDS)}); remove it or export again")
    return meta


def sidecar_pyramid(meta: Optional[Dict]) -> Optional[str]:
    """The pyramid form an export computes, from its sidecar (:func:`read_sidecar`): a sidecar written before
    exports recorded it is the semseg form; None without a sidecar (unknown)."""
    return None if meta is None else meta.get("pyramid", "semseg")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


MAX_EXPORT_BATCH, MAX_EXPORT_SIDE = 1024, 8192  # a sidecar claiming more is refused before any buffer is made


def _is_shape(value) -> bool:
    """(N, 3, H, W): positive integers, N and the sides within what an export of this project can be."""
    return isinstance(value, list) and len(value) == 4 and all(_is_count(v) for v in value) and \
        value[0] <= MAX_EXPORT_BATCH and value[1] == 3 and max(value[2:]) <= MAX_EXPORT_SIDE


def write_sidecar(model_path: str | os.PathLike, meta: Dict, folder: Optional[OutputFolder] = None) -> Path:
    """``<model>.json`` beside the exported model (through its output folder when given)."""
    path = sidecar_path(model_path)
    if folder is not None:
        return folder.put_json(os.path.relpath(path, folder.root), meta)
    write_json(path, meta)
    return path


def load_eval_network(model_cfg: ModelConfig, classes: int, ckpt: str, static_hw: Optional[Tuple[int, int]] = None,
                      window: Optional[Tuple[int, int]] = None, window_keys: str = "the evaluation window "
                      "(eval.test_h/test_w)"):
    """The eval network (no aux head) with ``ckpt`` loaded strictly; a training checkpoint's aux is allowed.

    ``model.pyramid`` is resolved for the file's weights (``auto``: the model zoo's pyramid for a zoo PSPNet or a
    network trained in that form, logged; the network's ``pyramid`` attribute says which); in the zoo form the
    input ``window`` (set by ``window_keys``) must give its 60x60 map, one ConfigError line otherwise."""
    from src.model.pspnet import build_pspnet, check_zoo_input, resolve_pyramid

    weights, zoo, state = read_weights_and_state(ckpt)
    model_cfg = resolve_pyramid(model_cfg, ckpt, zoo, saved_pyramid(state, ckpt))
    for hw in (window, static_hw):
        if hw is not None:
            check_zoo_input(model_cfg, hw, window_keys)
    net = build_pspnet(model_cfg, classes, for_training=False, static_hw=static_hw)
    try:
        load_params_strict(net, weights, ckpt, allow_unexpected=("aux.",), allow_non_finite=model_cfg.allow_non_finite,
                           zoo=zoo)
    except NonFiniteWeights:
        raise
    except CheckpointError as exc:
        if "does not match the network" not in str(exc):
            raise  # the file itself is the problem (not found, damaged)
        fix = "" if " - " in str(exc) else ": set those to the checkpoint's"
        raise CheckpointError(f"{exc} (the config describes PSPNet-{model_cfg.layers}, {classes} classes, bins "
                              f"{list(model_cfg.bins)}, use_ppm {model_cfg.use_ppm}{fix})") from None
    net.set_train(False)
    return net


def ms_predict(net) -> Predict:
    import mindspore as ms

    def predict(batch: np.ndarray) -> np.ndarray:
        return net(ms.Tensor(batch)).asnumpy()

    return predict


def _check_shape(meta: Optional[Dict], path: str, batch: int, crop: Tuple[int, int], classes: int) -> None:
    if meta is None:
        return
    want = [batch, 3, crop[0], crop[1]]
    if list(meta["input_shape"]) != want:
        raise BackendError(f"{path} was exported for input {shown(meta['input_shape'], 100)} but evaluation feeds "
                           f"{want}; set eval.batch_size / eval.test_h / eval.test_w to match, or export again")
    if meta.get("output", "logits") != "logits":
        raise BackendError(f"{path} outputs {shown(meta['output'])}; evaluation needs a model exported with logits "
                           f"output")
    if int(meta.get("classes", classes)) != classes:
        raise BackendError(f"{path} predicts {shown(meta['classes'])} classes but the config has {classes}")
    logger.info("%s: exported with the %s pyramid (its sidecar)", path, sidecar_pyramid(meta))


def mindir_predict(path: str, batch: int, crop: Tuple[int, int], classes: int) -> Predict:
    """A MINDIR loaded with ``ms.load`` + ``nn.GraphCell`` (fixed to its export shape)."""
    import mindspore as ms
    from mindspore import nn

    if not os.path.isfile(path):
        raise BackendError(f"MINDIR not found: {path}")
    _check_shape(read_sidecar(path), path, batch, crop, classes)
    check_mindir_input(path, batch, crop)
    try:
        cell = nn.GraphCell(ms.load(path))
    except Exception as exc:  # noqa: BLE001 - MindSpore raises RuntimeError/ValueError with C++ text
        raise BackendError(f"cannot load MINDIR {path}: {str(exc).splitlines()[0][:200]}") from exc

    def predict(x: np.ndarray) -> np.ndarray:
        try:
            return cell(ms.Tensor(x)).asnumpy()
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BackendError(f"{path}: MindSpore failed on an input {list(x.shape)}: "
                               f"{' '.join(str(exc).split())[:300]}") from None

    return predict


def check_mindir_input(path: str, batch: int, crop: Tuple[int, int]) -> None:
    """The MINDIR's graph input read from the file before MindSpore runs it: one float32 (N, 3, H, W) of the
    size evaluation feeds (an export is fixed to its shape; another size failed deep inside a Conv2D)."""
    from mindspore.train import mind_ir_pb2

    if os.path.getsize(path) > MAX_MODEL_BYTES:
        raise BackendError(f"{path}: {os.path.getsize(path)} bytes is more than a PSPNet export")
    model = mind_ir_pb2.ModelProto()
    try:
        with open(path, "rb") as f:
            model.ParseFromString(f.read())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError
        raise BackendError(f"cannot read MINDIR {path}: {type(exc).__name__}") from None
    inputs = [t for i in model.graph.input for t in i.tensor]
    if len(inputs) != 1:
        raise BackendError(f"{path}: the model has {len(inputs)} inputs; a PSPNet export has one (N, 3, H, W) image")
    dims, dtype = list(inputs[0].dims), inputs[0].data_type
    if dtype != mind_ir_pb2.TensorProto.DataType.Value("FLOAT"):
        raise BackendError(f"{path}: its input is {mind_ir_pb2.TensorProto.DataType.Name(dtype).lower()}, not "
                           f"float32")
    want = [batch, 3, crop[0], crop[1]]
    if dims != want:
        layout = " (channels last? this project feeds NCHW)" if len(dims) == 4 and dims[3] == 3 else ""
        raise BackendError(f"{path} takes input {shown(dims, 200)} but evaluation feeds {want}{layout}; a MINDIR is "
                           f"fixed to its export shape: use the export's batch and eval.test_h / test_w, or export "
                           f"again")


# The operators this project's ONNX exports use (the fixed-size form, opset 11; logits, softmax or argmax head),
# and a few plain element-wise ones. Control flow (Loop, If, Scan) and operators that make tensors of a size
# computed at run time (ConstantOfShape, Expand, Tile, Range, ...) are not among them: a 318-byte model with
# ConstantOfShape 25000x25000 took 3 GB, one with a Loop of 10^12 iterations never returned.
ONNX_OPS = frozenset({"Add", "ArgMax", "BatchNormalization", "Cast", "Concat", "Constant", "Conv", "MatMul",
                      "MaxPool", "Relu", "Reshape", "Softmax", "Transpose", "Pad", "Identity", "Mul", "Sub", "Div",
                      "Squeeze", "Unsqueeze", "Flatten", "Gemm", "AveragePool", "Slice",
                      "ReduceMean"})  # ReduceMean: the model zoo's pyramid (model.pyramid zoo)
MAX_MODEL_BYTES = 2 << 30
ONNX_FLOAT = 1  # TensorProto.FLOAT


def onnx_ops(path: str) -> List[str]:
    """The operator types of an ONNX file's main graph (what the export sidecar records)."""
    import onnx

    return sorted({n.op_type for n in onnx.load(path, load_external_data=False).graph.node})


def check_onnx_model(path: str, batch: int, crop: Tuple[int, int], meta: Optional[Dict] = None) -> None:
    """The graph is read and checked before ONNX Runtime sees it: one float32 NCHW input with 3 channels (of the
    evaluation's size where it is fixed), a float or integer rank-4 output, only this project's operators (and
    those its sidecar recorded), no sub-graphs. One :class:`BackendError` naming the model and what was found."""
    import onnx

    if os.path.getsize(path) > MAX_MODEL_BYTES:
        raise BackendError(f"{path}: {os.path.getsize(path)} bytes is more than a PSPNet export")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own
        raise BackendError(f"cannot read ONNX model {path}: {type(exc).__name__}: {str(exc)[:200]}") from None
    g = model.graph
    weights = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in weights]
    if len(inputs) != 1:
        raise BackendError(f"{path}: the model has {len(inputs)} inputs; a PSPNet export has one (N, 3, H, W) image")
    t = inputs[0].type.tensor_type
    if t.elem_type != ONNX_FLOAT:
        name = onnx.TensorProto.DataType.Name(t.elem_type) if t.elem_type in onnx.TensorProto.DataType.values() \
            else str(t.elem_type)
        raise BackendError(f"{path}: its input is {name.lower()}, not float32 (export it with export.py)")
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in t.shape.dim]
    if len(dims) != 4:
        raise BackendError(f"{path}: its input has {len(dims)} dimensions {shown(dims, 200)}; expected (N, 3, H, W)")
    if dims[1] != 3:
        layout = " (channels last? this project feeds NCHW)" if dims[3] == 3 else ""
        raise BackendError(f"{path}: its input is {shown(dims, 200)}, not (N, 3, H, W){layout}")
    want = [batch, 3, crop[0], crop[1]]
    if any(isinstance(d, int) and d != w for d, w in zip(dims, want)):
        raise BackendError(f"{path} takes input {shown(dims, 200)} but evaluation feeds {want}; use the export's "
                           f"batch and eval.test_h / test_w")
    nested = [n.op_type for n in g.node if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                                                for a in n.attribute)]
    ops = {n.op_type for n in g.node}
    recorded = set(meta.get("onnx_ops", ONNX_OPS)) if meta else ONNX_OPS
    foreign = sorted((ops - ONNX_OPS) | (ops - recorded) | set(nested))
    if foreign or model.functions:
        what = shown_names(foreign, 8, 60) or "local functions"
        raise BackendError(f"{path}: operators this project's exports never use: {what}; refusing to run it "
                           f"(export the model with export.py)")
    out = g.output[0].type.tensor_type if len(g.output) else None
    if out is None or (out.HasField("shape") and len(out.shape.dim) not in (3, 4)):
        raise BackendError(f"{path}: its first output is not a (N, C, H, W) map")  # sizes: checked_outputs


def onnx_predict(path: str, batch: int, crop: Tuple[int, int], classes: int, threads: int = 0) -> Predict:
    """An ONNX model in ONNX Runtime (CPU), after its graph is checked (:func:`check_onnx_model`)."""
    import onnxruntime as ort

    if not os.path.isfile(path):
        raise BackendError(f"ONNX model not found: {path}")
    meta = read_sidecar(path)
    _check_shape(meta, path, batch, crop, classes)
    check_onnx_model(path, batch, crop, meta)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise BackendError(f"cannot load ONNX model {path}: {exc}") from exc
    name = sess.get_inputs()[0].name
    shape = sess.get_inputs()[0].shape
    if all(isinstance(s, int) for s in shape) and list(shape) != [batch, 3, crop[0], crop[1]]:
        raise BackendError(f"{path} takes input {shape} but evaluation feeds {[batch, 3, crop[0], crop[1]]}")

    def predict(x: np.ndarray) -> np.ndarray:
        try:
            return sess.run(None, {name: x.astype(np.float32)})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise BackendError(f"{path}: ONNX Runtime failed on an input {list(x.shape)}: "
                               f"{' '.join(str(exc).split())[:300]}") from None

    return predict


def lite_predict(path: str, batch: int, crop: Tuple[int, int], classes: int, target: str = "cpu",
                 device_id: int = 0) -> Predict:
    """A MINDIR run by MindSpore Lite's Python runtime (``mindspore_lite``), on ``cpu`` or ``ascend``.

    The same runtime as the 310 C++ app; the wheel comes with the MindSpore Lite package for the host
    (it is not on PyPI), so it is imported only when this backend is chosen.
    """
    try:
        import mindspore_lite as mslite
    except ImportError:
        raise BackendError("the lite backend needs the mindspore_lite Python package (the wheel shipped with "
                           "MindSpore Lite for this host; it is not on PyPI); use --backend mindir or onnx "
                           "otherwise") from None
    if not os.path.isfile(path):
        raise BackendError(f"MINDIR not found: {path}")
    if target not in ("cpu", "ascend"):
        raise BackendError(f"lite target must be cpu or ascend, got {target!r}")
    _check_shape(read_sidecar(path), path, batch, crop, classes)
    check_mindir_input(path, batch, crop)
    context = mslite.Context()
    context.target = [target]
    if target == "ascend":
        context.ascend.device_id = device_id
    model = mslite.Model()
    try:
        model.build_from_file(path, mslite.ModelType.MINDIR, context)
    except Exception as exc:  # noqa: BLE001 - Lite raises RuntimeError with C++ text
        raise BackendError(f"MindSpore Lite cannot build {path} on {target}: {str(exc).splitlines()[0][:200]}") \
            from None
    inputs = model.get_inputs()
    if len(inputs) != 1:
        raise BackendError(f"{path}: expected a model with one input, found {len(inputs)}")

    def predict(x: np.ndarray) -> np.ndarray:
        inputs[0].set_data_from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        return model.predict(inputs)[0].get_data_to_numpy()

    return predict


BACKEND_OF_EXTENSION = {".ckpt": "ms", ".mindir": "mindir", ".onnx": "onnx"}


def backend_from_extension(model_path: str | os.PathLike) -> str:
    """``ms`` for a .ckpt, ``mindir`` for a .mindir, ``onnx`` for a .onnx; anything else is an error."""
    suffix = Path(model_path).suffix.lower()
    if suffix not in BACKEND_OF_EXTENSION:
        raise BackendError(f"{model_path}: cannot tell the model format from the extension '{suffix}' "
                           f"(expected {', '.join(BACKEND_OF_EXTENSION)}); pass --backend")
    return BACKEND_OF_EXTENSION[suffix]


def checked_outputs(predict: Predict, classes: int, source: str) -> Predict:
    """``predict`` whose every output must be float logits (N, classes, H, W) for an (N, 3, H, W) input.

    A model of another class count or output size would otherwise be broadcast
    into the sliding windows and give a wrong mIoU without a word.
    """
    def run(batch: np.ndarray) -> np.ndarray:
        out = np.asarray(predict(batch))
        want = (batch.shape[0], classes) + tuple(batch.shape[2:])
        if out.shape != want or out.dtype.kind != "f":
            raise BackendError(f"{source} returned {out.dtype} {tuple(out.shape)} for input {tuple(batch.shape)}; "
                               f"expected float logits {want} ({classes} classes at the input's size)")
        return out

    return run


def make_predict(backend: str, model_path: str, model_cfg: Optional[ModelConfig], classes: int, batch: int,
                 crop: Tuple[int, int], lite_target: str = "cpu", device_id: int = 0) -> Predict:
    """``ms`` (checkpoint; needs ``model_cfg``), ``mindir``, ``onnx`` or ``lite`` (MINDIR in MindSpore Lite on
    ``lite_target``) -> predict function, its outputs checked by :func:`checked_outputs`."""
    if backend == "ms":
        predict = ms_predict(load_eval_network(model_cfg, classes, model_path, window=crop))
    elif backend == "mindir":
        predict = mindir_predict(model_path, batch, crop, classes)
    elif backend == "onnx":
        predict = onnx_predict(model_path, batch, crop, classes)
    elif backend == "lite":
        predict = lite_predict(model_path, batch, crop, classes, lite_target, device_id)
    else:
        raise BackendError(f"unknown backend '{backend}'; choose ms, mindir or onnx")
    return checked_outputs(predict, classes, model_path)
