"""Read PyTorch ``.pth`` files without PyTorch, treating every byte as hostile.

A ``.pth`` is one or more pickles, and unpickling can call any importable
function.  Three rules keep a hostile file from doing anything but fail:

1. Every pickle in the file - the legacy magic number, protocol, sys_info and
   key list as much as the state dict itself - is first walked opcode by
   opcode (:func:`_scan_pickle`) without building anything: lengths that
   point past the data, extension-registry and buffer opcodes, and (in the
   header pickles) any global at all are refused.  Only then does
   :class:`RestrictedUnpickler` build it, resolving just the few globals a
   tensor state dict needs; the stand-ins it hands out refuse ``BUILD``.
2. Every declared size is checked against the bytes the file holds before
   anything is read or allocated: zip member sizes from the central
   directory, each storage's element count against its bytes, each tensor's
   logical size against its storage, and the total of all tensors.
3. Whatever still goes wrong (``MemoryError`` and ``RecursionError``
   included) becomes one :class:`PthError` naming the file.

Both on-disk formats are supported: the zip format (PyTorch >= 1.6) and the
legacy sequential-pickle format (older releases of pretrained weights).
Tensors come back as numpy arrays.
"""
from __future__ import annotations

import collections
import io
import logging
import math
import os
import pickle
import pickletools
import bz2
import lzma
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from src.errors import PSPNetError, shown, shown_names

logger = logging.getLogger(__name__)

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_DIMS = 16
MAX_NESTING = 64
# A zip member may inflate to at most this factor of the whole file's size (PyTorch stores members
# uncompressed; this only leaves room for archives re-packed with deflate).
MAX_INFLATE_RATIO = 16
SLACK_BYTES = 1 << 20
# Opcodes a tensor state dict never needs: the copyreg extension registry (resolved outside
# find_class in some Python versions), protocol-0/1 class instantiation, out-of-band buffers.
# Sets are refused too: building one hashes every element, and a hostile element can take forever to hash.
FORBIDDEN_OPS = {"EXT1", "EXT2", "EXT4", "INST", "OBJ", "NEXT_BUFFER", "READONLY_BUFFER",
                 "EMPTY_SET", "ADDITEMS", "FROZENSET"}
# A state dict pickle has about ten opcodes per tensor; this bounds the time a hostile one can take.
MAX_PICKLE_OPS = 5_000_000
# Dict keys must be plain scalars: hashing a tuple key that shares itself at every level is exponential.
KEY_TYPES = (str, int, float, bool, bytes, type(None))
ZIP_CHUNK = 1 << 16
MAX_LZMA_DICT = 1 << 26


class PthError(PSPNetError, ValueError):
    """A ``.pth`` file that cannot be read safely; the message names the file."""


def brief(obj: Any, limit: int = 60) -> str:
    """A short description of an untrusted value, built without walking or hashing it."""
    if isinstance(obj, (str, bytes)):
        text = repr(obj[:limit]) + ("..." if len(obj) > limit else "")
    elif isinstance(obj, bool) or obj is None or isinstance(obj, float):
        text = repr(obj)
    elif isinstance(obj, int):
        text = repr(obj) if obj.bit_length() <= 64 else f"<int of {obj.bit_length()} bits>"
    elif isinstance(obj, (tuple, list, dict)):
        text = f"<{type(obj).__name__} of {len(obj)} items>"
    elif isinstance(obj, (_StorageType, _SafeCallable, _TensorType)):
        text = repr(obj)
    else:
        text = f"<{type(obj).__name__}>"
    return text


class _Frozen:
    """Base of every object the unpickler hands out: pickle's BUILD opcode may not modify it."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError(f"BUILD on {self!r} is not allowed in a weights file")

    def __setattr__(self, name: str, value: Any) -> None:
        raise pickle.UnpicklingError(f"setting attribute {brief(name)} of {self!r} is not allowed in a weights file")


class _StorageType(_Frozen):
    """Stand-in for ``torch.FloatStorage`` and friends: just a numpy dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", dtype)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _SafeCallable(_Frozen):
    """An allowed global function, wrapped so the pickle cannot rebind its defaults or attributes."""

    __slots__ = ("_fn", "_label")

    def __init__(self, fn: Callable[..., Any], label: str) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "_label", label)

    def __call__(self, *args: Any) -> Any:
        return self._fn(*args)

    def __repr__(self) -> str:
        return self._label


class _TensorType(_Frozen):
    """Stand-in for ``torch.Tensor`` / ``torch.nn.Parameter`` as a type argument."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "torch.Tensor"


STORAGE_TYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # decoded to float32 in _decode
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class _Storage:
    """A storage found in the pickle; its bytes are attached once read and checked."""

    def __init__(self, key: str, stype: _StorageType, numel: int) -> None:
        self.key = key
        self.stype = stype
        self.numel = numel
        self.data: Optional[np.ndarray] = None


class _PendingTensor(_Frozen):
    """A tensor whose storage may not have been read yet (legacy files store data after the pickle)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any) -> None:
        if not isinstance(size, (tuple, list)) or not isinstance(stride, (tuple, list)):
            raise pickle.UnpicklingError("tensor size/stride is not a tuple")
        if len(size) > MAX_DIMS or len(size) != len(stride):
            raise pickle.UnpicklingError(f"tensor with {len(size)} sizes and {len(stride)} strides")
        if not all(type(v) is int and v.bit_length() < 63 for v in (offset, *size, *stride)):
            raise pickle.UnpicklingError("tensor size/stride/offset is not made of 64-bit integers")
        object.__setattr__(self, "storage", storage)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "size", tuple(size))
        object.__setattr__(self, "stride", tuple(stride))

    def to_numpy(self, source: str, budget: Dict[str, int]) -> np.ndarray:
        """The tensor as a new array, after checking it against its storage and the memory ``budget``."""
        storage = self.storage
        base_offset = 0
        if isinstance(storage, tuple):  # legacy storage view: (root storage, offset)
            storage, base_offset = storage
        flat = storage.data
        if flat is None:
            raise PthError(f"{source}: tensor refers to storage '{shown(storage.key)}' whose data is missing")
        offset = base_offset + self.offset
        if any(s < 0 for s in self.size) or any(s < 0 for s in self.stride) or offset < 0:
            raise PthError(f"{source}: tensor with negative size/stride/offset in storage '{shown(storage.key)}'")
        numel = math.prod(self.size)
        if numel == 0:
            return np.zeros(self.size, dtype=_out_dtype(storage.stype))
        if numel > flat.size:
            raise PthError(f"{source}: tensor of size {self.size} ({numel} elements) is larger than its storage "
                           f"'{shown(storage.key)}' ({flat.size} elements): repeated (stride-0) views are refused")
        last = offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= flat.size:
            raise PthError(f"{source}: tensor of size {self.size} reads past the end of storage "
                           f"'{shown(storage.key)}' ({flat.size} elements)")
        need = numel * np.dtype(_out_dtype(storage.stype)).itemsize
        if need > budget["left"]:
            raise PthError(f"{source}: its tensors would take more memory than the {budget['total']} bytes that "
                           f"the tensor data in the file allow (views that repeat the same data?); refusing")
        budget["left"] -= need
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[offset:], shape=self.size,
                                               strides=tuple(s * item for s in self.stride), writeable=False)
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
    if not isinstance(data, _PendingTensor):
        raise pickle.UnpicklingError("a Parameter that does not wrap a tensor")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if not isinstance(func, _SafeCallable) or not isinstance(args, tuple):
        raise pickle.UnpicklingError("malformed tensor subclass record")
    return func(*args)


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    if args:
        raise pickle.UnpicklingError("OrderedDict built with arguments")
    return collections.OrderedDict()


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    functions = {
        ("collections", "OrderedDict"): _ordered_dict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    }
    allowed: Dict[Tuple[str, str], Any] = {
        key: _SafeCallable(fn, ".".join(key)) for key, fn in functions.items()}
    allowed[("torch", "Tensor")] = _TensorType()
    allowed[("torch.nn.parameter", "Parameter")] = _TensorType()
    for name, dtype in STORAGE_TYPES.items():
        allowed[("torch", name)] = _StorageType(name, dtype)
    return allowed


def _refusal(source: str, module: str, name: str) -> PthError:
    if module == "torch" and name.endswith("Storage") and name.isidentifier():
        return PthError(f"{source}: unsupported tensor type torch.{shown(name)} (complex, float8 or quantized "
                        f"weights); this reader converts {', '.join(sorted(STORAGE_TYPES))[:160]} ...: save the "
                        f"weights as float32")
    return PthError(
        f"{source}: refusing to load '{shown(module)}.{shown(name)}': only tensors and plain containers are allowed "
        f"in a weights file (a .pth is a pickle and could run code). If this file is trusted, re-save only its "
        f"state dict: torch.save(model.state_dict(), 'clean.pth')")


def _check_key(key: Any) -> None:
    if not isinstance(key, KEY_TYPES):
        raise pickle.UnpicklingError(f"a dict key of type {type(key).__name__} (only strings and numbers are "
                                     f"allowed as keys in a weights file)")


class RestrictedUnpickler(pickle._Unpickler):  # the Python implementation: its dict building can be checked
    """Unpickler that resolves only the globals of a tensor state dict (none at all when ``allowed`` is empty).

    ``storage_loader(pid) -> _Storage`` handles persistent ids.  Dict keys
    must be scalars (checked before they are hashed).  Call it only on bytes
    that :func:`_scan_pickle` has walked.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BytesIO, source: str, storage_loader: Callable[[Any], Any],
                 allowed: Optional[Dict[Tuple[str, str], Any]] = None) -> None:
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals() if allowed is None else allowed
        self._storage_loader = storage_loader

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise _refusal(self._source, module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        return self._storage_loader(pid)

    def _load_dict(self) -> None:
        items = self.pop_mark()
        for key in items[0::2]:
            _check_key(key)
        self.append(dict(zip(items[0::2], items[1::2])))

    def _load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        _check_key(key)
        self.stack[-1][key] = value

    def _load_setitems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        for key, value in zip(items[0::2], items[1::2]):
            _check_key(key)
            target[key] = value

    dispatch[pickle.DICT[0]] = _load_dict
    dispatch[pickle.SETITEM[0]] = _load_setitem
    dispatch[pickle.SETITEMS[0]] = _load_setitems


def _scan_pickle(data: memoryview, start: int, source: str, what: str, globals_allowed: bool) -> int:
    """Walk one pickle in ``data[start:]`` opcode by opcode; return the offset just past its STOP.

    Builds nothing.  Refuses lengths that run past the data, forbidden
    opcodes, and any global in a pickle that needs none.
    """
    stream = io.BytesIO(data)
    stream.seek(start)
    strings = collections.deque(["?", "?"], maxlen=2)  # the operands STACK_GLOBAL usually takes
    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(stream)):
            if count > MAX_PICKLE_OPS:
                raise PthError(f"{source}: the {what} pickle has more than {MAX_PICKLE_OPS} opcodes, far more than "
                               f"a state dict needs; refusing it")
            if op.name in FORBIDDEN_OPS:
                raise PthError(f"{source}: the {what} pickle uses the {op.name} opcode, which a weights file "
                               f"never needs; refusing it")
            if isinstance(arg, str) and "UNICODE" in op.name:
                strings.append(arg)
            if op.name in ("GLOBAL", "STACK_GLOBAL") and not globals_allowed:
                module, name = arg.split(" ", 1) if op.name == "GLOBAL" else tuple(strings)
                raise PthError(f"{source}: the {what} pickle imports '{shown(module)}.{shown(name)}', but it may "
                               f"hold only plain values; refusing it (a .pth is a pickle and could run code)")
            if op.name == "STOP":
                return stream.tell()
    except PthError:
        raise
    except Exception as exc:  # pickletools raises ValueError for lengths past the end, bad opcodes, ...
        raise PthError(f"{source}: the {what} pickle is corrupt or truncated ({exc})") from None
    raise PthError(f"{source}: the {what} pickle has no end (truncated?)")


def _unpickle(data: memoryview, start: int, source: str, what: str,
              storage_loader: Optional[Callable[[Any], Any]] = None) -> Tuple[Any, int]:
    """Scan, then build, the pickle at ``data[start:]``; return (object, offset after it).

    Without ``storage_loader`` it is a header pickle: no globals and no storages allowed.
    """
    header = storage_loader is None
    end = _scan_pickle(data, start, source, what, globals_allowed=not header)

    def no_storage(pid: Any) -> Any:
        raise PthError(f"{source}: unexpected tensor storage in the {what} pickle")

    unpickler = RestrictedUnpickler(io.BytesIO(data[start:end]), source, storage_loader or no_storage,
                                    allowed={} if header else None)
    return unpickler.load(), end


def _resolve(obj: Any, source: str, budget: Dict[str, int], memo: Dict[int, Any], depth: int = 0) -> Any:
    """Replace every pending tensor in nested containers by a numpy array.

    Shared sub-objects are resolved once (a pickle can reference one list from
    many places), nesting is bounded, and the arrays made in total may not
    exceed ``budget['left']`` bytes.
    """
    if depth > MAX_NESTING:
        raise PthError(f"{source}: containers nested more than {MAX_NESTING} deep")
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _PendingTensor):
        out: Any = obj.to_numpy(source, budget)
    elif isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _resolve(v, source, budget, memo, depth + 1)
    elif isinstance(obj, list):
        out = [_resolve(v, source, budget, memo, depth + 1) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_resolve(v, source, budget, memo, depth + 1) for v in obj)
    elif obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        out = obj
    else:
        raise PthError(f"{source}: holds an object of type {type(obj).__name__}, which a weights file cannot hold")
    memo[key] = out
    return out


def _check_pid(pid: Any, source: str, length: Tuple[int, ...]) -> None:
    if not isinstance(pid, tuple) or len(pid) not in length or pid[0] != "storage":
        raise PthError(f"{source}: unsupported persistent id {brief(pid)} (not a tensor storage)")
    if not isinstance(pid[1], _StorageType):
        raise PthError(f"{source}: unsupported storage type {brief(pid[1])}")
    if not isinstance(pid[2], str) or not pid[2] or len(pid[2]) > 64:
        raise PthError(f"{source}: storage key {brief(pid[2])} is not a short string")
    numel = pid[4]
    if type(numel) is not int or numel < 0:
        raise PthError(f"{source}: storage '{pid[2]}' declares an invalid size {brief(numel)}")


def _budget(storage_bytes: int) -> Dict[str, int]:
    total = 2 * storage_bytes + (1 << 20)  # tied weights may legitimately share one storage
    return {"total": total, "left": total}


class _ZlibRaw:
    """zlib's raw-deflate decompressor with the interface of bz2's and lzma's (keeps its own unread input)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(-15)
        self._tail = b""

    @property
    def needs_input(self) -> bool:
        return not self._tail

    @property
    def eof(self) -> bool:
        return self._d.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._d.decompress(self._tail + data, max_length)
        self._tail = self._d.unconsumed_tail
        return out


def _zip_lzma(props_head: bytes, source: str, name: str) -> Any:
    """A raw LZMA1 decompressor for a zip member, from the member's 4-byte header and 5 property bytes."""
    if len(props_head) < 9 or struct.unpack("<H", props_head[2:4])[0] != 5:
        raise PthError(f"{source}: archive member {name} has a malformed LZMA header")
    d = props_head[4]
    if d >= 9 * 5 * 5:
        raise PthError(f"{source}: archive member {name} has invalid LZMA properties")
    pb, rest = divmod(d, 45)
    lp, lc = divmod(rest, 9)
    dict_size = struct.unpack("<I", props_head[5:9])[0]
    if dict_size > MAX_LZMA_DICT:  # the decoder allocates its dictionary up front
        raise PthError(f"{source}: archive member {name} asks for a {dict_size}-byte LZMA dictionary (at most "
                       f"{MAX_LZMA_DICT} allowed)")
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}])


def read_member(fh: Any, info: zipfile.ZipInfo, source: str, file_size: int) -> bytes:
    """One zip member's content, never producing more than its declared size.

    Stored, deflate, bzip2 and LZMA members are decompressed a chunk at a
    time with an output cap of the declared size plus one byte: the first
    byte past the declaration refuses the file.  The CRC is checked too.
    """
    name = shown(info.filename)  # for messages only
    if info.flag_bits & 0x1:
        raise PthError(f"{source}: archive member {name} is encrypted")
    methods = {zipfile.ZIP_STORED: None, zipfile.ZIP_DEFLATED: _ZlibRaw, zipfile.ZIP_BZIP2: bz2.BZ2Decompressor}
    if info.compress_type not in methods and info.compress_type != zipfile.ZIP_LZMA:
        raise PthError(f"{source}: archive member {name} uses compression method {info.compress_type}, "
                       f"which is not supported")
    fh.seek(info.header_offset)
    head = fh.read(30)
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise PthError(f"{source}: archive member {name} has no valid local header")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = info.header_offset + 30 + name_len + extra_len
    packed = info.compress_size
    if start + packed > file_size:
        raise PthError(f"{source}: archive member {name} declares {packed} compressed bytes, past the end of "
                       f"the file")
    fh.seek(start)
    declared = info.file_size
    if info.compress_type == zipfile.ZIP_STORED:
        if packed != declared:
            raise PthError(f"{source}: stored archive member {name} declares {declared} bytes but holds {packed}")
        out = fh.read(declared)
    else:
        out = _inflate(fh, info, source, packed, declared, methods)
    if len(out) != declared:
        raise PthError(f"{source}: archive member {name} holds {len(out)} bytes, not the {declared} it declares "
                       f"(truncated?)")
    if zlib.crc32(out) & 0xFFFFFFFF != info.CRC:
        raise PthError(f"{source}: archive member {name} fails its CRC check (corrupt)")
    return bytes(out)


def _inflate(fh: Any, info: zipfile.ZipInfo, source: str, packed: int, declared: int, methods: Dict) -> bytearray:
    """Decompress ``packed`` bytes from ``fh``, refusing at the first byte past ``declared``."""
    name = shown(info.filename)  # for messages only
    if info.compress_type == zipfile.ZIP_LZMA:
        head = fh.read(9)
        dec = _zip_lzma(head, source, name)
        packed -= len(head)
    else:
        dec = methods[info.compress_type]()
    out = bytearray()
    while not dec.eof:
        chunk = fh.read(min(ZIP_CHUNK, packed)) if packed > 0 else b""
        packed -= len(chunk)
        out += dec.decompress(chunk, declared + 1 - len(out))
        while not dec.eof and not dec.needs_input and len(out) <= declared:
            out += dec.decompress(b"", declared + 1 - len(out))
        if len(out) > declared:
            raise PthError(f"{source}: archive member {name} inflates past the {declared} bytes it declares; "
                           f"refusing it as a possible zip bomb")
        if not chunk:
            break
    return out


def _load_zip(path: Path, source: str, file_size: int) -> Any:
    with zipfile.ZipFile(path) as zf, open(path, "rb") as fh:
        names = [info.filename for info in zf.infolist()]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # zipfile reads the last copy of a name; which one torch reads is another matter
            raise PthError(f"{source}: the archive holds {shown_names(twice, 3)} more than once; a file torch.save "
                           f"wrote never does - refusing it")
        infos = {info.filename: info for info in zf.infolist()}
        declared = sum(info.file_size for info in infos.values())
        limit = MAX_INFLATE_RATIO * file_size + SLACK_BYTES
        if declared > limit:
            raise PthError(f"{source}: the archive declares {declared} bytes of content in a {file_size}-byte file "
                           f"(more than {MAX_INFLATE_RATIO}x); refusing it as a possible zip bomb")
        pkl = [n for n in infos if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise PthError(f"{source}: zip archive without exactly one data.pkl (found {len(pkl)})")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in infos:
            order = infos[byteorder]
            if order.file_size > 16 or read_member(fh, order, source, file_size).strip() != b"little":
                raise PthError(f"{source}: big-endian or unknown byte order; only little-endian data is supported")
        storages: Dict[str, _Storage] = {}
        stored = [0]

        def load_storage(pid: Any) -> _Storage:
            _check_pid(pid, source, (5,))
            _, stype, key, _location, numel = pid
            if key not in storages:
                entry = f"{prefix}data/{key}"
                if entry not in infos:
                    raise PthError(f"{source}: storage '{shown(key)}' is missing from the archive ({shown(entry)})")
                want = numel * stype.dtype.itemsize
                if infos[entry].file_size != want:
                    raise PthError(f"{source}: storage '{shown(key)}' declares {numel} elements ({want} bytes) but its "
                                   f"archive member holds {infos[entry].file_size} bytes")
                raw = read_member(fh, infos[entry], source, file_size)
                st = _Storage(key, stype, numel)
                st.data = np.frombuffer(raw, dtype=stype.dtype, count=numel)
                storages[key] = st
                stored[0] += want
            elif storages[key].stype.dtype != stype.dtype or storages[key].numel != numel:
                raise PthError(f"{source}: storage '{shown(key)}' is declared twice with different types or sizes")
            return storages[key]

        data = memoryview(read_member(fh, infos[pkl[0]], source, file_size))
        obj, end = _unpickle(data, 0, source, "data.pkl", load_storage)
        return _resolve(obj, source, _budget(stored[0]), {})


def _load_legacy(path: Path, source: str) -> Any:
    data = memoryview(path.read_bytes())
    magic, pos = _unpickle(data, 0, source, "magic number")
    if type(magic) is not int or magic != LEGACY_MAGIC:
        raise PthError(f"{source}: not a PyTorch file (neither zip format nor the legacy magic number)")
    protocol, pos = _unpickle(data, pos, source, "protocol")
    if protocol != LEGACY_PROTOCOL:
        raise PthError(f"{source}: unsupported legacy protocol version {brief(protocol)}")
    sys_info, pos = _unpickle(data, pos, source, "sys_info")
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
        raise PthError(f"{source}: big-endian or malformed sys_info; only little-endian data is supported")
    storages: Dict[str, _Storage] = {}

    def load_storage(pid: Any) -> Any:
        _check_pid(pid, source, (6,))
        _, stype, root_key, _location, numel, view = pid
        if root_key not in storages:
            storages[root_key] = _Storage(root_key, stype, numel)
        root = storages[root_key]
        if root.stype.dtype != stype.dtype:
            raise PthError(f"{source}: storage '{shown(root_key)}' is declared with two types")
        if view is not None:
            if not isinstance(view, tuple) or len(view) != 3 or type(view[1]) is not int or view[1] < 0:
                raise PthError(f"{source}: malformed storage view {brief(view)}")
            return (root, view[1])
        return root

    obj, pos = _unpickle(data, pos, source, "state", load_storage)
    keys, pos = _unpickle(data, pos, source, "storage key list")
    stored = _read_legacy_storages(data, pos, keys, storages, source)
    return _resolve(obj, source, _budget(stored), {})


def _read_legacy_storages(data: memoryview, pos: int, keys: Any, storages: Dict[str, _Storage], source: str) -> int:
    """Attach the raw data that follows a legacy file's pickles to its storages; returns the bytes read.

    Each storage's data is its element count (8 bytes) then the elements; the
    count must match the state's declaration and the bytes left in the file.
    """
    if not isinstance(keys, list):
        raise PthError(f"{source}: legacy storage key list is malformed")
    stored = 0
    for key in keys:
        if not isinstance(key, str) or key not in storages:
            raise PthError(f"{source}: legacy data for unknown storage {brief(key)}")
        st = storages[key]
        if st.data is not None:
            raise PthError(f"{source}: legacy data for storage '{shown(key)}' appears twice")
        if pos + 8 > len(data):
            raise PthError(f"{source}: file ends before the data of storage '{shown(key)}' (truncated?)")
        (numel,) = struct.unpack_from("<q", data, pos)
        pos += 8
        nbytes = numel * st.stype.dtype.itemsize
        left = len(data) - pos
        if numel < 0 or nbytes > left:
            raise PthError(f"{source}: storage '{shown(key)}' declares {numel} elements ({nbytes} bytes) but only "
                           f"{left} bytes follow in the file (truncated or lying size)")
        if numel != st.numel:
            raise PthError(f"{source}: storage '{shown(key)}' holds {numel} elements but the state declares {st.numel}")
        st.data = np.frombuffer(data, dtype=st.stype.dtype, count=numel, offset=pos)
        pos += nbytes
        stored += nbytes
    return stored


def load_pth(path: str | os.PathLike) -> Any:
    """Load a PyTorch ``.pth``/``.pt`` file into plain Python containers of numpy arrays.

    Never executes code from the file and never allocates more than the file's
    declared, checked sizes; every failure is a :class:`PthError` naming the file.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise PthError(f"file not found: {source}")
    if path.suffix.lower() == ".ckpt":
        raise PthError(f"{source} is a MindSpore checkpoint, not a PyTorch .pth: it needs no conversion - give it "
                       f"as --ckpt or model.pretrained (the model zoo's PSPNet and backbone names are mapped on load)")
    try:
        file_size = path.stat().st_size
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic == b"PK\x03\x04":  # torch decides the format from the first bytes, not from a zip at the end
            return _load_zip(path, source, file_size)
        if tarfile.is_tarfile(path):
            raise PthError(f"{source}: the pre-0.4 tar format of PyTorch is not supported; re-save it with "
                           f"torch.save(torch.load(path), 'new.pth') in a recent PyTorch")
        return _load_legacy(path, source)
    except PthError:
        raise
    except MemoryError:
        raise PthError(f"{source}: not enough memory to load it") from None
    except RecursionError:
        raise PthError(f"{source}: structure nested too deeply") from None
    except OSError as exc:
        raise PthError(f"{source}: cannot read it: {exc.strerror or exc}") from None
    except Exception as exc:  # anything a hostile pickle or archive provokes is reported, never raised raw
        raise PthError(f"{source}: corrupt or unsupported PyTorch file: {type(exc).__name__}: "
                       f"{str(exc)[:200]}") from None


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
            raise PthError(f"{source}: state dict key {brief(key)} is not a string")
        if not isinstance(value, np.ndarray):
            raise PthError(f"{source}: state dict entry {brief(key, 120)} is a {type(value).__name__}, not a tensor")
        name = key[len("module."):] if key.startswith("module.") else key
        if name in out or (name != key and name in obj):
            raise PthError(f"{source}: keys {brief(key, 120)} and {brief(name, 120)} both name the parameter "
                           f"{brief(name, 120)} once the DataParallel prefix 'module.' is removed; which one is meant "
                           f"is not known, so neither is used")
        out[name] = value
    return out
