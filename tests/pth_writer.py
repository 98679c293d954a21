"""Write PyTorch ``.pth`` files without PyTorch (test helper).

Emits the pickle opcodes ``torch.save`` would, for both the zip format and
the legacy format, so the converter can be tested where torch is absent.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, Dict, List, Tuple

import numpy as np

NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
         np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage", np.dtype("int32"): "IntStorage",
         np.dtype("uint8"): "ByteStorage", np.dtype("bool"): "BoolStorage"}


class Global:
    """A reference to ``module.name`` in the pickle (GLOBAL opcode)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class Call:
    """``func(*args)`` in the pickle (REDUCE opcode)."""

    def __init__(self, func: Global, args: Tuple) -> None:
        self.func, self.args = func, args


class View:
    """A tensor over ``base``'s storage with the given (possibly lying) size, stride and offset."""

    def __init__(self, base: np.ndarray, size: Tuple[int, ...], stride: Tuple[int, ...], offset: int = 0) -> None:
        self.base, self.size, self.stride, self.offset = base, size, stride, offset


class Raw:
    """Opcodes spliced into the pickle as they are."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Emitter:
    def __init__(self, legacy: bool) -> None:
        self.out = io.BytesIO()
        self.legacy = legacy
        self.storages: List[Tuple[str, np.ndarray]] = []

    def emit(self, obj: Any) -> None:
        w = self.out.write
        if obj is None:
            w(b"N")
        elif obj is True:
            w(b"\x88")
        elif obj is False:
            w(b"\x89")
        elif isinstance(obj, int):
            if -2**31 <= obj < 2**31:
                w(b"J" + struct.pack("<i", obj))
            else:
                raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
                w(b"\x8a" + bytes([len(raw)]) + raw)
        elif isinstance(obj, float):
            w(b"G" + struct.pack(">d", obj))
        elif isinstance(obj, str):
            raw = obj.encode("utf-8")
            w(b"X" + struct.pack("<I", len(raw)) + raw)
        elif isinstance(obj, Global):
            w(b"c" + obj.module.encode() + b"\n" + obj.name.encode() + b"\n")
        elif isinstance(obj, Call):
            self.emit(obj.func)
            self.emit(tuple(obj.args))
            w(b"R")
        elif isinstance(obj, tuple):
            w(b"(")
            for item in obj:
                self.emit(item)
            w(b"t")
        elif isinstance(obj, list):
            w(b"]")
            if obj:
                w(b"(")
                for item in obj:
                    self.emit(item)
                w(b"e")
        elif isinstance(obj, collections.OrderedDict):
            self.emit(Call(Global("collections", "OrderedDict"), ()))
            self._items(obj)
        elif isinstance(obj, dict):
            w(b"}")
            self._items(obj)
        elif isinstance(obj, np.ndarray):
            self._tensor(obj)
        elif isinstance(obj, View):
            self._tensor(obj.base, obj.size, obj.stride, obj.offset)
        elif isinstance(obj, Raw):
            w(obj.data)
        else:
            raise TypeError(f"cannot emit {type(obj)}")

    def _items(self, d: Dict) -> None:
        if d:
            self.out.write(b"(")
            for k, v in d.items():
                self.emit(k)
                self.emit(v)
            self.out.write(b"u")

    def _tensor(self, arr: np.ndarray, size=None, stride=None, offset: int = 0) -> None:
        arr = np.ascontiguousarray(arr)
        known = [k for k, a in self.storages if a is arr]  # one storage per array object, as torch shares them
        key = known[0] if known else str(len(self.storages))
        if not known:
            self.storages.append((key, arr))
        stype = Global("torch", NAMES[arr.dtype])
        pid = ("storage", stype, key, "cpu", int(arr.size)) + ((None,) if self.legacy else ())
        self.emit(Global("torch._utils", "_rebuild_tensor_v2"))
        self.out.write(b"(")
        self.emit(pid)
        self.out.write(b"Q")
        if size is None:
            size = tuple(int(s) for s in arr.shape)
            stride = tuple(int(s // arr.itemsize) for s in arr.strides) if arr.ndim else ()
        for item in (offset, tuple(size), tuple(stride), False, collections.OrderedDict()):
            self.emit(item)
        self.out.write(b"tR")

    def finish(self) -> bytes:
        return b"\x80\x02" + self.out.getvalue() + b"."


def write_pth(obj: Any, path: str, legacy: bool = False, compression: int = zipfile.ZIP_STORED,
              header: Dict[str, bytes] = None, numel_field: Dict[int, int] = None) -> None:
    """Write ``obj`` (dicts/lists of numpy arrays and scalars) as a PyTorch file.

    For hostile-file tests: ``header`` replaces a legacy header pickle ('magic', 'protocol', 'sys_info',
    'keys') by the given bytes, ``numel_field`` replaces the element count written before storage i's
    legacy data, and ``compression`` chooses the zip members' compression.
    """
    header = header or {}
    numel_field = numel_field or {}
    em = _Emitter(legacy)
    em.emit(obj)
    body = em.finish()
    if not legacy:
        with zipfile.ZipFile(path, "w", compression) as zf:
            zf.writestr("archive/data.pkl", body)
            zf.writestr("archive/byteorder", "little")
            for key, arr in em.storages:
                zf.writestr(f"archive/data/{key}", arr.tobytes())
            zf.writestr("archive/version", "3\n")
        return
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        f.write(header.get("magic", pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)))
        f.write(header.get("protocol", pickle.dumps(1001, protocol=2)))
        f.write(header.get("sys_info", pickle.dumps(sys_info, protocol=2)))
        f.write(body)
        f.write(header.get("keys", pickle.dumps([k for k, _ in em.storages], protocol=2)))
        for i, (_, arr) in enumerate(em.storages):
            f.write(struct.pack("<q", numel_field.get(i, arr.size)))
            f.write(arr.tobytes())


def write_malicious_pth(path: str, marker_file: str, legacy: bool = False) -> None:
    """A .pth whose pickle would call ``os.system('touch marker_file')`` if trusted."""
    payload = Call(Global("os", "system"), (f"touch {marker_file}",))
    write_pth(collections.OrderedDict([("x", np.zeros(2, np.float32)), ("evil", payload)]), path, legacy)


def random_state_dict(entries, seed=0):
    """A state dict of ``(key, shape)`` entries with random float32 values (BatchNorm counters as int64)."""
    rng = np.random.default_rng(seed)
    sd = collections.OrderedDict()
    for key, shape in entries:
        if key.endswith("num_batches_tracked"):
            sd[key] = np.array(17, dtype=np.int64)
        else:
            sd[key] = rng.standard_normal(shape).astype(np.float32)
    return sd
