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
        else:
            raise TypeError(f"cannot emit {type(obj)}")

    def _items(self, d: Dict) -> None:
        if d:
            self.out.write(b"(")
            for k, v in d.items():
                self.emit(k)
                self.emit(v)
            self.out.write(b"u")

    def _tensor(self, arr: np.ndarray) -> None:
        arr = np.ascontiguousarray(arr)
        key = str(len(self.storages))
        self.storages.append((key, arr))
        stype = Global("torch", NAMES[arr.dtype])
        pid = ("storage", stype, key, "cpu", int(arr.size)) + ((None,) if self.legacy else ())
        self.emit(Global("torch._utils", "_rebuild_tensor_v2"))
        self.out.write(b"(")
        self.emit(pid)
        self.out.write(b"Q")
        stride = tuple(int(s // arr.itemsize) for s in arr.strides) if arr.ndim else ()
        for item in (0, tuple(int(s) for s in arr.shape), stride, False, collections.OrderedDict()):
            self.emit(item)
        self.out.write(b"tR")

    def finish(self) -> bytes:
        return b"\x80\x02" + self.out.getvalue() + b"."


def write_pth(obj: Any, path: str, legacy: bool = False) -> None:
    """Write ``obj`` (dicts/lists of numpy arrays and scalars) as a PyTorch file."""
    em = _Emitter(legacy)
    em.emit(obj)
    body = em.finish()
    if not legacy:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("archive/data.pkl", body)
            zf.writestr("archive/byteorder", "little")
            for key, arr in em.storages:
                zf.writestr(f"archive/data/{key}", arr.tobytes())
            zf.writestr("archive/version", "3\n")
        return
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        f.write(body)
        pickle.dump([k for k, _ in em.storages], f, protocol=2)
        for _, arr in em.storages:
            f.write(struct.pack("<q", arr.size))
            f.write(arr.tobytes())


def write_malicious_pth(path: str, marker_file: str, legacy: bool = False) -> None:
    """A .pth whose pickle would call ``os.system('touch marker_file')`` if trusted."""
    payload = Call(Global("os", "system"), (f"touch {marker_file}",))
    write_pth(collections.OrderedDict([("x", np.zeros(2, np.float32)), ("evil", payload)]), path, legacy)
