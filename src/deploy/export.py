"""Export the eval network to MINDIR / AIR / ONNX and verify the exported file against MindSpore."""
from __future__ import annotations

import errno
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from src.config import ModelConfig
from src.checkpoint.files import load_params_strict
from src.errors import PSPNetError
from src.runtime.backends import load_eval_network, onnx_ops, write_sidecar
from src.model.pspnet import build_pspnet
from src.outputs.atomic import ensure_output_file, refuse_link
from src.outputs.folder import OutputFolder, SubFolder
from src.outputs.writers import written_file

logger = logging.getLogger(__name__)

EXTENSIONS = {"MINDIR": ".mindir", "AIR": ".air", "ONNX": ".onnx"}


class ExportError(PSPNetError, RuntimeError):
    """An export that cannot be done here, or whose result does not match the network."""


class OutputHead(nn.Cell):
    """Wraps the network so it returns logits (default), softmax probabilities or argmax class ids."""

    def __init__(self, net: nn.Cell, output: str = "logits") -> None:
        super().__init__(auto_prefix=False)
        if output not in ("logits", "softmax", "argmax"):
            raise ExportError(f"unknown output '{output}'; choose logits, softmax or argmax")
        self.net = net
        self.output = output

    def construct(self, x):
        y = self.net(x)
        if self.output == "softmax":
            return ops.softmax(y, axis=1)
        if self.output == "argmax":
            return ops.argmax(y, dim=1).astype(ms.int32)
        return y


def export_model(model_cfg: ModelConfig, classes: int, ckpt: str, file_format: str, batch_size: int, height: int, width: int,
                 file_name: str, device_target: str = "CPU", output: str = "logits", verify: bool = True,
                 mean=None, std=None, overwrite: bool = False) -> Dict:
    """Export and (by default) verify, then write the sidecar; returns a dict with the file, shapes and max
    differences.

    MINDIR is reloaded with ``ms.load`` + ``nn.GraphCell`` and compared with
    the network.  ONNX is built from the fixed-size form of the network
    (constant pooling/resize matrices), checked with ``onnx.checker`` and run
    in ONNX Runtime.  AIR needs the Ascend backend. The network's pyramid form (``model.pyramid``, resolved for
    the checkpoint's weights: the model zoo's for its PSPNet checkpoints) is the export's, and its sidecar says which.
    """
    fmt, path = _target(file_format, device_target, batch_size, height, width, file_name)
    name = os.path.basename(path)
    with OutputFolder(os.path.dirname(path) or ".", "--file_name folder", "export", overwrite) as folder:
        folder.refuse_earlier([name, name + ".json"], "pass --overwrite to replace that export, or choose another "
                              "--file_name")
        folder.refuse_foreign([name, name + ".json"])
        reference = load_eval_network(model_cfg, classes, ckpt, window=(height, width), window_keys="the export size "
                                      "(--height/--width, default eval.test_h/test_w)")
        model_cfg = replace(model_cfg, pyramid=reference.pyramid)
        head = _fixed_size_head(reference, model_cfg, classes, ckpt, (height, width), output)
        shape = (batch_size, 3, height, width)
        logger.info("exporting %s for input %s, output %s, %s pyramid", fmt, shape, output, reference.pyramid)
        result: Dict = {"file": path, "format": fmt, "input_shape": list(shape), "output": output, "classes": classes,
                        "layers": model_cfg.layers, "pyramid": reference.pyramid, "mean": list(mean) if mean else None,
                        "std": list(std) if std else None}

        def check(made: str) -> None:  # in the private folder, before anything is placed
            if fmt == "ONNX":
                result["onnx_ops"] = onnx_ops(made)  # what a later load accepts from this file
            if verify and fmt != "AIR":
                result.update(_verify(reference, made, fmt, shape, output, ckpt))

        put_export(folder, name, lambda base: ms.export(head, ms.Tensor(np.zeros(shape, np.float32)), file_name=base,
                                                       file_format=fmt), check)
        write_sidecar(path, result, folder)
    return result


def _exporting(writer: Callable[[str], None], path: str | os.PathLike,
               check: Optional[Callable[[str], None]]) -> Callable[[str], None]:
    """A writer for the output owner: ``writer(base)`` writes ``base + <path's extension>`` (what MindSpore's
    exporter does with ``file_name``) at the path the owner gives, then ``check(file)`` may raise to refuse it."""
    def write(made: str) -> None:
        writer(made[: -len(Path(path).suffix)] if Path(path).suffix else made)
        if not os.path.isfile(made) or os.path.islink(made):
            raise OSError(errno.ENOENT, "the exporter reported no error but wrote no file", str(path))
        if check is not None:
            check(made)
    return write


def put_export(folder: "OutputFolder | SubFolder", name: str, writer: Callable[[str], None],
               check: Optional[Callable[[str], None]] = None) -> Path:
    """An exported model placed as output ``name`` of ``folder`` and recorded (see :func:`_exporting`); the
    exporter runs in the owner's private folder, so what it does to its folder and file stays there."""
    return folder.put_written(name, _exporting(writer, folder.path(name), check))


def export_files(writer: Callable[[str], None], path: str | os.PathLike,
                 check: Optional[Callable[[str], None]] = None) -> str:
    """An exported model placed at ``path`` atomically (a file arriving with ordinary permissions), no output
    folder (benchmarks, the op inventory); returns its SHA-256."""
    refuse_link(path, "--file_name")
    return written_file(_exporting(writer, path, check), path)


def _target(file_format: str, device_target: str, batch_size: int, height: int, width: int,
            file_name: str) -> Tuple[str, str]:
    """(format, the file to write), every argument checked before any work."""
    fmt = file_format.upper()
    if fmt not in EXTENSIONS:
        raise ExportError(f"unknown --file_format {file_format}; choose MINDIR, AIR or ONNX")
    if fmt == "AIR" and device_target != "Ascend":
        raise ExportError(f"AIR export needs the Ascend backend (this run uses {device_target}); "
                          f"export MINDIR here and convert it on an Ascend machine, or run export.py there")
    if min(batch_size, height, width) < 1:
        raise ExportError(f"batch size and input size must be positive, got {batch_size}x3x{height}x{width}")
    base = file_name[: -len(EXTENSIONS[fmt])] if file_name.endswith(EXTENSIONS[fmt]) else file_name
    path = base + EXTENSIONS[fmt]
    ensure_output_file(path, "--file_name")
    return fmt, path


def _fixed_size_head(reference, model_cfg: ModelConfig, classes: int, ckpt: str, hw: Tuple[int, int],
                     output: str) -> "OutputHead":
    """The fixed-size form of the network with the reference network's weights, behind the output head.

    Every format gets this form: constant matrices instead of AdaptiveAvgPool2D
    and bilinear resize, explicit padding + valid max pooling instead of
    MaxPool3DWithArgmax.  ONNX cannot express the dynamic ops, and on Ascend
    they are AI CPU kernels that MindSpore Lite's converter does not list.  The
    checkpoint is read once: the weights come from ``reference``.
    """
    net = build_pspnet(model_cfg, classes, for_training=False, static_hw=hw)
    load_params_strict(net, {p.name: p.asnumpy() for p in reference.get_parameters()}, ckpt,
                       allow_non_finite=model_cfg.allow_non_finite)
    net.set_train(False)
    head = OutputHead(net, output)
    head.set_train(False)
    return head


def _verify(reference, path: str, fmt: str, shape: Tuple[int, ...], output: str, ckpt: str) -> Dict:
    """Run the exported file and the network on one random input; a non-finite output removes the file."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ref_head = OutputHead(reference, output)
    ref_head.set_train(False)
    want = ref_head(ms.Tensor(x)).asnumpy()
    got = _run_exported(path, fmt, x)
    if not (np.isfinite(want).all() and np.isfinite(got).all()):
        which = "network" if not np.isfinite(want).all() else "exported model"
        raise ExportError(f"verification failed: the {which} gives non-finite outputs (NaN/inf) on a normal input; "
                          f"are the weights in {ckpt} finite? Nothing was written")
    diffs = _compare(want, got, output)
    logger.info("verified %s: max |diff| %.3g, argmax agreement %.6f", path, diffs["max_abs_diff"],
                diffs["argmax_agreement"])
    return diffs


def count_primitives(stream: bytes) -> Dict[str, int]:
    """Operator type -> count of the nodes in a serialized MindIR model's graphs (calls of sub-graphs left out)."""
    from mindspore.train import mind_ir_pb2

    model = mind_ir_pb2.ModelProto()
    model.ParseFromString(stream)
    counts: Dict[str, int] = {}
    for graph in [model.graph, *model.functions]:
        for node in graph.node:
            op = node.op_type  # 'REF::Conv2D:4' for a primitive, 'Constant' for a value, '<graph>:CNode_n' a call
            if op.startswith("REF::"):
                op = op[len("REF::"):].rsplit(":", 1)[0]
            if ":" in op:
                continue  # a call of one of the graph's own functions, not a primitive
            counts[op] = counts.get(op, 0) + 1
    return counts


def mindir_primitives(path: str | os.PathLike) -> Dict[str, int]:
    """Operator type -> count of the nodes in a MINDIR file's graphs."""
    with open(path, "rb") as f:
        return count_primitives(f.read())


def _run_exported(path: str, fmt: str, x: np.ndarray) -> np.ndarray:
    if fmt == "MINDIR":
        return nn.GraphCell(ms.load(path))(ms.Tensor(x)).asnumpy()
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(path))
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _compare(want: np.ndarray, got: np.ndarray, output: str) -> Dict:
    if want.shape != got.shape:
        raise ExportError(f"exported model output shape {got.shape} differs from the network's {want.shape}")
    if output == "argmax":
        agree = float((want == got).mean())
        return {"max_abs_diff": float(np.abs(want.astype(np.int64) - got.astype(np.int64)).max()),
                "argmax_agreement": agree}
    return {"max_abs_diff": float(np.abs(want - got).max()),
            "argmax_agreement": float((want.argmax(1) == got.argmax(1)).mean())}
