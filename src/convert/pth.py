"""Read PyTorch ``.pth`` files without PyTorch, refusing anything but tensors and containers.

A ``.pth`` is a pickle, and unpickling can call any importable function.
:class:`RestrictedUnpickler` resolves only the handful of globals a saved
state dict needs (tensor rebuild helpers, storage types, ``OrderedDict``) and
refuses every other global with :class:`PthError`.  Tensors come back as
numpy arrays.

Both on-disk formats are supported: the zip format (PyTorch >= 1.6) and the
legacy sequential-pickle format (older releases of pretrained weights).
"""
from __future__ import annotations

import collections
import io
import logging
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

logger = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


class PthError(ValueError):
    """A ``.pth`` file that cannot be read safely; the message names the file."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` and friends: just a numpy dtype."""

    def __init__(self, name: str, dtype: Any) -> None:
        self.name = name
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"torch.{self.name}"


def _bf16() -> Any:
    return np.dtype("<u2")  # decoded to float32 in _as_array


STORAGE_TYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": _bf16(), "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _Storage:
    """A storage found in the pickle; its bytes are attached once read."""

    def __init__(self, key: str, stype: _StorageType, numel: int) -> None:
        self.key = key
        self.stype = stype
        self.numel = numel
        self.data: Optional[np.ndarray] = None


class _PendingTensor:
    """A tensor whose storage may not have been read yet (legacy files store data after the pickle)."""

    def __init__(self, storage: Any, offset: int, size: Tuple[int, ...], stride: Tuple[int, ...]) -> None:
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self, source: str) -> np.ndarray:
        storage = self.storage
        base_offset = 0
        if isinstance(storage, tuple):  # legacy storage view: (root storage, offset)
            storage, base_offset = storage
        flat = storage.data
        if flat is None:
            raise PthError(f"{source}: tensor refers to storage '{storage.key}' whose data is missing")
        offset = base_offset + self.offset
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride) or offset < 0:
            raise PthError(f"{source}: tensor with negative size/stride/offset in storage '{storage.key}'")
        numel = int(np.prod(self.size)) if self.size else 1
        if numel:
            last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
            if last >= flat.size:
                raise PthError(f"{source}: tensor of size {self.size} reads past the end of storage "
                               f"'{storage.key}' ({flat.size} elements)")
        else:
            return np.zeros(self.size, dtype=_out_dtype(storage.stype))
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=self.size,
                                               strides=tuple(s * item for s in self.stride))
        return _decode(np.array(view), storage.stype)


def _out_dtype(stype: _StorageType) -> Any:
    return np.float32 if stype.name == "BFloat16Storage" else stype.dtype


def _decode(arr: np.ndarray, stype: _StorageType) -> np.ndarray:
    if stype.name == "BFloat16Storage":
        return (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    return func(*args)


class _TensorType:
    """Stand-in for ``torch.Tensor`` / ``torch.nn.Parameter`` as a type argument."""


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    allowed: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): _TensorType,
        ("torch.nn.parameter", "Parameter"): _TensorType,
    }
    for name, dtype in STORAGE_TYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a tensor state dict.

    ``storage_loader(pid) -> _Storage`` handles persistent ids.
    """

    def __init__(self, file, source: str, storage_loader) -> None:
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals()
        self._storage_loader = storage_loader

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise PthError(
                f"{self._source}: refusing to load '{module}.{name}': only tensors and plain containers are "
                f"allowed in a weights file (a .pth is a pickle and could run code). If this file is trusted, "
                f"re-save only its state dict: torch.save(model.state_dict(), 'clean.pth')"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        return self._storage_loader(pid)


def _resolve(obj: Any, source: str) -> Any:
    """Replace every pending tensor in nested containers by a numpy array."""
    if isinstance(obj, _PendingTensor):
        return obj.to_numpy(source)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _resolve(v, source)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _resolve(v, source) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v, source) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v, source) for v in obj)
    return obj


def _check_pid(pid: Any, source: str, length: Tuple[int, ...]) -> None:
    if not isinstance(pid, tuple) or len(pid) not in length or pid[0] != "storage":
        raise PthError(f"{source}: unsupported persistent id {pid!r} (not a tensor storage)")
    if not isinstance(pid[1], _StorageType):
        raise PthError(f"{source}: unsupported storage type {pid[1]!r}")


def _load_zip(path: Path, source: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise PthError(f"{source}: zip archive without exactly one data.pkl (found {len(pkl)})")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in names and zf.read(byteorder).strip() not in (b"little",):
            raise PthError(f"{source}: big-endian tensor data is not supported")
        storages: Dict[str, _Storage] = {}

        def load_storage(pid: Any) -> _Storage:
            _check_pid(pid, source, (5,))
            _, stype, key, _location, numel = pid
            key = str(key)
            if key not in storages:
                entry = f"{prefix}data/{key}"
                if entry not in names:
                    raise PthError(f"{source}: storage '{key}' is missing from the archive ({entry})")
                raw = zf.read(entry)
                st = _Storage(key, stype, int(numel))
                count = len(raw) // stype.dtype.itemsize
                st.data = np.frombuffer(raw, dtype=stype.dtype, count=count)
                storages[key] = st
            return storages[key]

        obj = RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), source, load_storage).load()
        return _resolve(obj, source)


def _load_legacy(path: Path, source: str) -> Any:
    with open(path, "rb") as f:
        try:
            magic = pickle.load(f)
        except Exception as exc:
            raise PthError(f"{source}: not a PyTorch file (neither zip nor legacy pickle format): {exc}") from exc
        if magic != LEGACY_MAGIC:
            raise PthError(f"{source}: not a PyTorch file (bad magic number in legacy format)")
        protocol = _safe_pickle_load(f, source)
        if protocol != LEGACY_PROTOCOL:
            raise PthError(f"{source}: unsupported legacy protocol version {protocol!r}")
        sys_info = _safe_pickle_load(f, source)
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise PthError(f"{source}: big-endian tensor data is not supported")
        storages: Dict[str, _Storage] = {}

        def load_storage(pid: Any) -> Any:
            _check_pid(pid, source, (6,))
            _, stype, root_key, _location, numel, view = pid
            root_key = str(root_key)
            if root_key not in storages:
                storages[root_key] = _Storage(root_key, stype, int(numel))
            root = storages[root_key]
            if view is not None:
                _view_key, offset, _view_size = view
                return (root, int(offset))
            return root

        obj = RestrictedUnpickler(f, source, load_storage).load()
        keys = _safe_pickle_load(f, source)
        if not isinstance(keys, list):
            raise PthError(f"{source}: legacy storage key list is malformed")
        for key in keys:
            key = str(key)
            if key not in storages:
                raise PthError(f"{source}: legacy data for unknown storage '{key}'")
            st = storages[key]
            head = f.read(8)
            if len(head) != 8:
                raise PthError(f"{source}: file ends before the data of storage '{key}' (truncated?)")
            (numel,) = struct.unpack("<q", head)
            nbytes = numel * st.stype.dtype.itemsize
            raw = f.read(nbytes)
            if numel < 0 or len(raw) != nbytes:
                raise PthError(f"{source}: storage '{key}' is truncated ({len(raw)} of {nbytes} bytes)")
            st.data = np.frombuffer(raw, dtype=st.stype.dtype)
        return _resolve(obj, source)


def _safe_pickle_load(f, source: str) -> Any:
    def no_storage(pid: Any) -> Any:
        raise PthError(f"{source}: unexpected tensor storage in a legacy header")

    return RestrictedUnpickler(f, source, no_storage).load()


def load_pth(path: str | os.PathLike) -> Any:
    """Load a PyTorch ``.pth``/``.pt`` file into plain Python containers of numpy arrays."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise PthError(f"file not found: {source}")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, source)
        if tarfile.is_tarfile(path):
            raise PthError(f"{source}: the pre-0.4 tar format of PyTorch is not supported; re-save it with "
                           f"torch.save(torch.load(path), 'new.pth') in a recent PyTorch")
        return _load_legacy(path, source)
    except PthError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, struct.error, ValueError, TypeError,
            AttributeError, KeyError, IndexError) as exc:
        raise PthError(f"{source}: corrupt or unsupported PyTorch file: {type(exc).__name__}: {exc}") from exc


def extract_state_dict(obj: Any, source: str = "<pth>") -> Dict[str, np.ndarray]:
    """The tensor state dict inside a loaded file: the object itself, or its ``state_dict``/``model`` entry.

    A ``module.`` prefix (from DataParallel) is removed from every key.
    """
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise PthError(f"{source}: holds a {type(obj).__name__}, not a state dict")
    out: Dict[str, np.ndarray] = collections.OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str):
            raise PthError(f"{source}: state dict key {key!r} is not a string")
        if not isinstance(value, np.ndarray):
            raise PthError(f"{source}: state dict entry '{key}' is a {type(value).__name__}, not a tensor")
        name = key[len("module."):] if key.startswith("module.") else key
        out[name] = value
    return out
