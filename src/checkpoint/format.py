"""The ``.ckpt`` file format: MindSpore's protobuf read with every declared size checked before use, and the
names the MindSpore model zoo's PSPNet gives its weights.

A checkpoint can come from anywhere: its dimensions, content sizes, names and dtypes are checked entry by
entry here, so that nothing it declares is believed before the bytes back it. Loading into a network and
saving are :mod:`src.checkpoint.files`'.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from src.errors import PSPNetError, read_user_file, shown, shown_names

logger = logging.getLogger(__name__)


class CheckpointError(PSPNetError, RuntimeError):
    """A checkpoint that does not match the network, or cannot be read."""


# MindSpore's tensor_type names -> numpy dtypes (the types a network's parameters and our counters use)
CKPT_DTYPES = {"Float32": np.float32, "Float16": np.float16, "Float64": np.float64, "Int8": np.int8,
               "Int16": np.int16, "Int32": np.int32, "Int64": np.int64, "UInt8": np.uint8, "Bool": np.bool_}
MAX_CKPT_BYTES = 8 << 30


def read_checkpoint(path: str | os.PathLike, names: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """Read a MindSpore ``.ckpt`` into ``name -> numpy array``, every entry checked before use.

    The file's protobuf is read here, not by ``ms.load_checkpoint``, so that what it declares is checked:
    dimensions non-negative, the content exactly dims x the dtype's size (MindSpore fills a short one with
    zeros), each name once (MindSpore keeps the last copy), a dtype this program knows. A slice of one large
    tensor follows its first part under the same name, as MindSpore writes it. With ``names``, only entries
    whose name starts with one of them are kept.
    """
    path = Path(path)
    # Opened without blocking and checked from its descriptor: a FIFO, folder or device is refused before a read.
    data = read_user_file(path, "checkpoint", CheckpointError, MAX_CKPT_BYTES,
                          too_big="{path}: {size} bytes is more than a PSPNet checkpoint holds")
    try:
        values = _checkpoint_values(path, data)
    except CheckpointError:
        raise
    except Exception as exc:  # protobuf's DecodeError, an interrupted read, MindSpore's own errors
        raise CheckpointError(f"cannot read checkpoint {path}: it is corrupt, truncated or not a "
                              f"MindSpore checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    out: Dict[str, np.ndarray] = {}
    for name, dims, dtype, parts in values:
        if names and not name.startswith(tuple(names)):
            continue
        out[name] = _entry_array(path, name, dims, dtype, parts)
    return out


def _checkpoint_values(path: Path, data: bytes) -> List[Tuple[str, List[int], str, List[bytes]]]:
    """``(name, dims, tensor_type, content parts)`` per entry of the file's ``data``, consecutive slices joined,
    names checked once."""
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    proto.ParseFromString(data)
    values: List[Tuple[str, List[int], str, List[bytes]]] = []
    seen = set()
    for value in proto.value:
        if not value.HasField("tensor"):
            raise CheckpointError(f"{path}: entry {value.tag[:100]!r} is not a plain tensor (a map parameter?); "
                                  f"this program reads only tensors")
        t = value.tensor
        if values and values[-1][0] == value.tag and list(t.dims) == values[-1][1] and t.tensor_type == values[-1][2]:
            values[-1][3].append(t.tensor_content)  # the next slice of a large tensor
            continue
        if value.tag in seen:
            raise CheckpointError(f"{path}: the parameter {value.tag[:100]!r} appears twice; MindSpore would keep "
                                  f"the last copy without a word - the file was not written by a save")
        seen.add(value.tag)
        values.append((value.tag, list(t.dims), t.tensor_type, [t.tensor_content]))
    return values


def _entry_array(path: Path, name: str, dims: List[int], dtype: str, parts: List[bytes]) -> np.ndarray:
    """One entry as an array, after its declared sizes are checked against its content."""
    if dtype not in CKPT_DTYPES:
        raise CheckpointError(f"{path}: {shown(name)}: unsupported dtype '{shown(dtype, 40)}' (this program reads "
                              f"{', '.join(CKPT_DTYPES)})")
    if any(d < 0 for d in dims) or len(dims) > 8:
        raise CheckpointError(f"{path}: {shown(name)} declares dimensions {dims[:9]}: not a tensor's shape")
    shape = () if dims == [0] else tuple(dims)  # MindSpore writes a scalar as dims [0]
    np_dtype = np.dtype(CKPT_DTYPES[dtype])
    need = int(np.prod(shape, dtype=object)) * np_dtype.itemsize
    have = sum(len(p) for p in parts)
    if have != need:
        raise CheckpointError(f"{path}: {shown(name)} declares {dtype} {list(shape)} ({need} bytes) but holds {have} "
                              f"bytes; the file is damaged or was not written by a save")
    return np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), np_dtype).reshape(shape)


# The MindSpore model zoo's PSPNet (research/cv/PSPNet): its ResNet cell (resnet_deepbase.ckpt) and its PSPNet
# cell (a checkpoint its training wrote). BatchNorm leaves are gamma/beta/moving_* there as here.
ZOO_STEM = {"conv1": "layer0.0", "bn1": "layer0.1", "conv2": "layer0.3", "bn2": "layer0.4", "conv3": "layer0.6",
            "bn3": "layer0.7"}
ZOO_PYRAMID = {"stage1.1": "features.0.1", "stage1.2": "features.0.2", "stage2.0": "features.1.1",
               "stage2.1": "features.1.2", "stage3.1": "features.2.1", "stage3.2": "features.2.2",
               "stage4.1": "features.3.1", "stage4.2": "features.3.2"}  # bins 1, 2, 3, 6; stage2 has no pool cell
LEAF = r"(weight|bias|gamma|beta|moving_mean|moving_variance)"
ZOO_PSPNET_PREFIXES = ("backbone.layer1.", "ppm.stage", "auxiliary_branch.")  # names only its PSPNet cell has


def zoo_kind(names: Iterable[str]) -> str:
    """``"pspnet"`` / ``"backbone"`` for the model zoo's names, ``""`` for anything else."""
    names = set(names)
    if any(n.startswith(ZOO_PSPNET_PREFIXES) for n in names):
        return "pspnet"
    if any(n.partition(".")[0] in ZOO_STEM for n in names) and any(".down_sample_layer." in n for n in names):
        return "backbone"
    return ""


def _zoo_name(name: str, kind: str) -> Optional[str]:
    """This network's name for the zoo's ``name``; None when it has no place here (whole-name matches only)."""
    block = r"(\d+)\.((conv[1-3]|bn[1-3]|down_sample_layer\.[01])\." + LEAF + ")"
    if kind == "pspnet":
        m = re.fullmatch(r"backbone\.layer1\.(\d+\." + LEAF + ")", name)
        if m:
            return f"layer0.{m.group(1)}"
        m = re.fullmatch(r"backbone\.layer([2-5])\." + block, name)
        if m:
            return f"layer{int(m.group(1)) - 1}.{m.group(2)}.{m.group(3)}".replace(".down_sample_layer.", ".downsample.")
        m = re.fullmatch(r"ppm\.(stage\d\.\d)\." + LEAF, name)
        if m:
            return f"ppm.{ZOO_PYRAMID[m.group(1)]}.{m.group(2)}" if m.group(1) in ZOO_PYRAMID else None
        m = re.fullmatch(r"(cls|auxiliary_branch)\.([014]\." + LEAF + ")", name)
        return f"{'cls' if m.group(1) == 'cls' else 'aux'}.{m.group(2)}" if m else None
    m = re.fullmatch(r"(conv[1-3]|bn[1-3])\." + LEAF, name)
    if m:
        return f"{ZOO_STEM[m.group(1)]}.{m.group(2)}"
    m = re.fullmatch(r"layer([1-4])\." + block, name)
    return f"layer{m.group(1)}.{m.group(2)}.{m.group(3)}".replace(".down_sample_layer.", ".downsample.") if m else None


def zoo_spelling(name: str, kind: str) -> str:
    """The model zoo's name for this network's ``name`` (the inverse of the rename; ``name`` when it has none)."""
    module, _, rest = name.partition(".")
    if kind == "backbone":
        stem = {v: k for k, v in ZOO_STEM.items()}
        index, _, leaf = rest.partition(".")
        return (f"{stem[f'layer0.{index}']}.{leaf}" if module == "layer0" and f"layer0.{index}" in stem else
                name.replace(".downsample.", ".down_sample_layer."))
    if re.fullmatch(r"layer[0-4]", module):
        return f"backbone.layer{int(module[5:]) + 1}.{rest}".replace(".downsample.", ".down_sample_layer.")
    pyramid = {v: k for k, v in ZOO_PYRAMID.items()}
    m = re.fullmatch(r"ppm\.(features\.\d\.\d)\.(\w+)", name)
    if m and m.group(1) in pyramid:
        return f"ppm.{pyramid[m.group(1)]}.{m.group(2)}"
    return f"auxiliary_branch.{rest}" if module == "aux" else name


def from_zoo_names(params: Mapping[str, np.ndarray], source: str) -> Tuple[Dict[str, np.ndarray], str]:
    """``params`` under this network's names when they carry the model zoo's (a rename: every entry is kept or
    the whole file refused in one line naming what has no place), and the kind of the zoo's names (:func:`zoo_kind`,
    "" for any other checkpoint, which is returned as it is)."""
    kind = zoo_kind(params)
    if not kind:
        return dict(params), kind
    out: Dict[str, np.ndarray] = {}
    unknown, sources, classifier = [], {}, []
    for name, value in params.items():
        new = _zoo_name(name, kind)
        if new is None and kind == "backbone" and re.fullmatch(r"(fc|end_point)\.(weight|bias)", name):
            classifier.append(name)  # ImageNet's classifier, as the converter skips a .pth's fc.*
        elif new is None:
            unknown.append(name)
        elif new in out:  # not with today's whole-name patterns; kept so that no pattern can overwrite silently
            raise CheckpointError(f"{source}: {shown(sources[new])} and {shown(name)} are both {new} here; the file "
                                  f"holds one weight twice under two spellings and cannot be loaded by name")
        else:
            out[new], sources[new] = value, name
    if unknown:
        ours = [n for n in unknown if re.match(r"(layer[0-4]|ppm\.features|aux)\.", n)]
        zoo_only = [old for new, old in sources.items() if old != new]
        if ours and zoo_only:
            raise CheckpointError(f"{source}: mixes the model zoo's names ({len(zoo_only)}: {shown_names(zoo_only)}) with "
                                  f"this network's ({len(ours)}: {shown_names(ours)}); a file has one or the other")
        raise CheckpointError(f"{source}: has {len(unknown)} entries that are neither this network's nor the model "
                              f"zoo's {kind} names: {shown_names(unknown)}")
    if classifier:
        logger.warning("%s: skipped the ImageNet classifier, which has no place in PSPNet: %s", source,
                       ", ".join(classifier))
    logger.info("%s: the model zoo's %s names, mapped onto this network's (%d tensors)", source, kind, len(out))
    return out, kind
