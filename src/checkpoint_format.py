"""The ``.ckpt`` file format: MindSpore's protobuf read with every declared size checked before use.

A checkpoint can come from anywhere: its dimensions, content sizes, names and dtypes are checked entry by
entry here, so that nothing it declares is believed before the bytes back it. Loading into a network and
saving are :mod:`src.checkpoint`'s.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from src.errors import PSPNetError


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
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size > MAX_CKPT_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size} bytes is more than a PSPNet checkpoint holds")
    try:
        values = _checkpoint_values(path)
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


def _checkpoint_values(path: Path) -> List[Tuple[str, List[int], str, List[bytes]]]:
    """``(name, dims, tensor_type, content parts)`` per entry, consecutive slices joined, names checked once."""
    from mindspore.train import checkpoint_pb2

    proto = checkpoint_pb2.Checkpoint()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
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
        raise CheckpointError(f"{path}: {name}: unsupported dtype {dtype[:40]!r} (this program reads "
                              f"{', '.join(CKPT_DTYPES)})")
    if any(d < 0 for d in dims) or len(dims) > 8:
        raise CheckpointError(f"{path}: {name} declares dimensions {dims[:9]}: not a tensor's shape")
    shape = () if dims == [0] else tuple(dims)  # MindSpore writes a scalar as dims [0]
    np_dtype = np.dtype(CKPT_DTYPES[dtype])
    need = int(np.prod(shape, dtype=object)) * np_dtype.itemsize
    have = sum(len(p) for p in parts)
    if have != need:
        raise CheckpointError(f"{path}: {name} declares {dtype} {list(shape)} ({need} bytes) but holds {have} "
                              f"bytes; the file is damaged or was not written by a save")
    return np.frombuffer(parts[0] if len(parts) == 1 else b"".join(parts), np_dtype).reshape(shape)
