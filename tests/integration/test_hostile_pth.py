"""Hostile .pth files: payloads in every pickle of both formats, and sizes that lie.

Each file is built here, small.  A payload would create a marker file if any
byte reached an unrestricted unpickler; each size attack is refused from the
declared size, before the memory is allocated (checked with tracemalloc).
The convert command reports such a refusal as one error line and exit status 2.
"""
import collections
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from bounded import refusal
from pth_writer import Raw, View, write_malicious_pth, write_pth
from src.convert import pth as pth_module
from src.convert.pth import PthError, load_pth
from src.errors import PSPNetError


class _Payload:
    """Pickles to ``os.system('touch marker')`` (and, with ``protocol`` >= 4, a STACK_GLOBAL import)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _refused(path, match, peak_mb=32):
    """load_pth(path) must raise PthError naming the file and ``match``, within ``peak_mb`` MB of Python memory."""
    return refusal(lambda: load_pth(path), PthError, path, match, peak_mb, max_len=10**6)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_bare_pickle_payload_first_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "bare.pth"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=protocol))
    message = _refused(path, "system")
    assert "refusing" in message
    assert not marker.exists()


@pytest.mark.parametrize("slot", ["magic", "protocol", "sys_info", "keys"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_payload_in_every_legacy_header_pickle(tmp_path, slot, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    write_pth({"w": np.ones(3, np.float32)}, str(path), legacy=True,
              header={slot: pickle.dumps(_Payload(marker), protocol=protocol)})
    _refused(path, "system")
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_payload_in_state_pickle_with_stack_global(tmp_path, legacy):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    # Protocol-4 style import: the names are pushed as strings, then STACK_GLOBAL.
    raw = Raw(b"\x8c\x02os\x94\x8c\x06system\x94\x93" + pickle.dumps((f"touch {marker}",), protocol=2)[2:-1] + b"R")
    write_pth(collections.OrderedDict([("w", np.ones(2, np.float32)), ("evil", raw)]), str(path), legacy=legacy)
    _refused(path, "refusing to load 'os.system'")
    assert not marker.exists()


def test_extension_registry_opcode_refused(tmp_path):
    path = tmp_path / "ext.pth"
    write_pth(collections.OrderedDict([("evil", Raw(b"\x82\x01"))]), str(path))  # EXT1 code 1
    _refused(path, "EXT1")


def test_build_cannot_modify_allowed_globals(tmp_path):
    path = tmp_path / "build.pth"
    # BUILD with slot state on the allowed rebuild function and on a storage type.
    rebuild = Raw(b"ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__N\x85s\x86b")
    write_pth(collections.OrderedDict([("x", rebuild)]), str(path))
    _refused(path, "not allowed")
    storage = Raw(b"ctorch\nFloatStorage\nN}X\x05\x00\x00\x00dtypeX\x01\x00\x00\x00Os\x86b")
    write_pth(collections.OrderedDict([("x", storage)]), str(path))
    _refused(path, "not allowed")
    assert pth_module._rebuild_tensor_v2.__defaults__ == (False, None, None)


def test_zip_bomb_refused_from_declared_size(tmp_path):
    zeros = np.zeros(16 * 2**20, np.float32)  # 64 MiB of zeros deflates to ~64 KiB
    path = tmp_path / "bomb.pth"
    write_pth({"w": zeros}, str(path), compression=zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 2**20
    _refused(path, "zip bomb", peak_mb=8)


def test_zip_member_size_that_lies_is_refused(tmp_path):
    path = tmp_path / "lie.pth"
    write_pth({"w": View(np.ones(4, np.float32), (4,), (1,))}, str(path))
    # Rewrite the storage's declared element count (4) in the pickle to 3 GiB worth of floats.
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    pkl = members["archive/data.pkl"]
    members["archive/data.pkl"] = pkl.replace(b"X\x03\x00\x00\x00cpuJ\x04\x00\x00\x00",
                                              b"X\x03\x00\x00\x00cpuJ\x00\x00\x00\x30")
    assert members["archive/data.pkl"] != pkl
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _refused(path, "declares 805306368 elements")


def test_stride_zero_view_refused(tmp_path):
    path = tmp_path / "stride0.pth"
    write_pth({"w": View(np.ones(1, np.float32), (50000, 50000), (0, 0))}, str(path))
    _refused(path, "larger than its storage")


def test_many_views_of_one_storage_refused(tmp_path):
    base = np.ones(2**18, np.float32)  # 1 MiB
    path = tmp_path / "views.pth"
    write_pth(collections.OrderedDict((f"v{i}", View(base, (2**18,), (1,))) for i in range(64)), str(path))
    assert path.stat().st_size < 2 * 2**20
    with pytest.raises(PthError, match="more memory"):
        load_pth(path)


def test_legacy_size_field_that_lies_is_refused(tmp_path):
    path = tmp_path / "legacy.pth"
    write_pth({"w": np.ones(8, np.float32)}, str(path), legacy=True, numel_field={0: 10**12})
    _refused(path, "declares 1000000000000 elements")
    write_pth({"w": np.ones(8, np.float32)}, str(path), legacy=True, numel_field={0: 4})
    _refused(path, "holds 4 elements but the state declares 8")


def test_pickle_length_that_lies_is_refused(tmp_path):
    path = tmp_path / "len.pth"
    # BINBYTES8 declaring 1e12 bytes, as the very first thing in the file.
    path.write_bytes(b"\x80\x04\x8e" + struct.pack("<Q", 10**12) + b"abc.")
    _refused(path, "corrupt or truncated")
    write_pth(collections.OrderedDict([("x", Raw(b"B\xff\xff\xff\x7fabc"))]), str(path))  # BINBYTES 2 GiB
    _refused(path, "corrupt or truncated")


def test_shared_containers_do_not_explode(tmp_path):
    # l0 = [t]; l(i+1) = [l(i), l(i)]: 2**40 leaves if every reference were expanded.
    ops = bytearray(b"]q\x00")  # empty list, memo 0
    for i in range(1, 41):
        ops += b"0](h" + bytes([i - 1]) + b"h" + bytes([i - 1]) + b"eq" + bytes([i])
    path = tmp_path / "laughs.pth"
    write_pth(collections.OrderedDict([("x", Raw(bytes(ops)))]), str(path))
    got = load_pth(path)
    assert got["x"][0] is got["x"][1]


def test_deep_nesting_refused(tmp_path):
    path = tmp_path / "deep.pth"
    write_pth(collections.OrderedDict([("x", Raw(b"]" * 5000 + b"a" * 4999))]), str(path))
    _refused(path, "nested")


def test_errors_share_the_project_base_class(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"\x80\x02K\x01.")
    with pytest.raises(PSPNetError, match="not a PyTorch file"):
        load_pth(path)


def test_valid_files_still_load_after_hardening(tmp_path):
    sd = collections.OrderedDict([("a", np.arange(6, dtype=np.float32).reshape(2, 3)),
                                  ("t", View(np.arange(6, dtype=np.float32), (3, 2), (1, 3))),
                                  ("n", np.array(5, np.int64))])
    for legacy in (False, True):
        path = tmp_path / f"ok{legacy}.pth"
        write_pth(sd, str(path), legacy=legacy)
        got = load_pth(path)
        np.testing.assert_array_equal(got["a"], sd["a"])
        np.testing.assert_array_equal(got["t"], np.arange(6, dtype=np.float32).reshape(2, 3).T)
        assert got["n"].item() == 5


def _lie_about_size(path, member, declared):
    """Patch ``member``'s uncompressed size to ``declared`` in its local header and the central directory."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(member).header_offset
    struct.pack_into("<I", raw, offset + 22, declared)
    name = member.encode()
    pos = raw.find(b"PK\x01\x02")
    while pos != -1:
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46:pos + 46 + name_len] == name:
            struct.pack_into("<I", raw, pos + 24, declared)
        pos = raw.find(b"PK\x01\x02", pos + 46)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_member_that_inflates_past_its_declared_size_is_cut_at_the_first_extra_byte(tmp_path, method):
    path = tmp_path / "liar.pth"
    write_pth({"w": np.ones(4, np.float32)}, str(path))
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    storage = next(n for n in members if n.endswith("data/0"))
    members[storage] = bytes(48 * 2**20)  # 48 MiB of zeros: a few KB once compressed
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=method if name == storage else zipfile.ZIP_STORED)
    _lie_about_size(path, storage, 16)  # the 16 bytes that the pickle's 4 floats need
    assert path.stat().st_size < 2**20
    message = _refused(path, "inflates past the 16 bytes it declares", peak_mb=12)  # LZMA's 8 MiB dictionary
    assert storage in message


def test_member_shorter_than_declared_or_with_a_bad_crc_is_refused(tmp_path):
    path = tmp_path / "short.pth"
    write_pth({"w": np.ones(4, np.float32)}, str(path), compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    storage = next(n for n in members if n.endswith("data/0"))
    members[storage] = np.full(4, 2, np.float32).tobytes()[:12]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    _lie_about_size(path, storage, 16)
    _refused(path, "holds 12 bytes, not the 16 it declares")
    write_pth({"w": np.ones(4, np.float32)}, str(path))
    raw = bytearray(path.read_bytes())
    at = raw.find(np.ones(4, np.float32).tobytes())
    raw[at] ^= 0xFF  # a flipped bit in a stored member
    path.write_bytes(bytes(raw))
    _refused(path, "CRC")


def _shared_tuple(levels):
    """Opcodes leaving one tuple on the stack: t0 = (), t(i+1) = (t(i), t(i)), memoised at 100000 + i."""
    ops = bytearray(b")r" + struct.pack("<I", 100000))
    for i in range(1, levels + 1):
        get = b"j" + struct.pack("<I", 100000 + i - 1)
        ops += b"0" + get + get + b"\x86r" + struct.pack("<I", 100000 + i)
    return bytes(ops)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("where,match", [
    ("dict key", "dict key of type tuple"),  # {t40: 1}: hashing t40 visits 2**40 nodes
    ("persistent id", "unsupported persistent id <tuple of 2 items>"),  # its repr alone would be terabytes
])
def test_structure_that_shares_itself_is_refused_before_it_is_hashed_or_printed(tmp_path, legacy, where, match):
    ops = b"}" + _shared_tuple(40) + b"K\x01s" if where == "dict key" else _shared_tuple(40) + b"Q"
    path = tmp_path / "bomb.pth"
    write_pth(collections.OrderedDict([("x", Raw(ops))]), str(path), legacy=legacy)
    message = _refused(path, match)
    assert len(message) < 400


def test_huge_values_in_messages_are_described_not_printed(tmp_path):
    path = tmp_path / "bigkey.pth"
    huge_int = b"\x8b" + struct.pack("<I", 2**20) + b"\x7f" * 2**20  # LONG4: an 8-Mbit integer as a key
    write_pth(collections.OrderedDict([("x", Raw(b"}" + huge_int + b"K\x01s"))]), str(path))
    got = load_pth(path)
    with pytest.raises(PthError) as info:
        pth_module.extract_state_dict(got["x"], str(path))
    assert "<int of" in str(info.value) and len(str(info.value)) < 300
    long_key = "k" * 2**20
    with pytest.raises(PthError) as info:
        pth_module.extract_state_dict({long_key: "not a tensor"}, str(path))
    assert len(str(info.value)) < 400


def test_sets_are_refused_by_the_opcode_walk(tmp_path):
    path = tmp_path / "set.pth"
    write_pth(collections.OrderedDict([("x", Raw(b"\x8f(K\x01K\x02\x90"))]), str(path))  # EMPTY_SET, ADDITEMS
    _refused(path, "EMPTY_SET")


def test_casts_that_change_values_are_refused_at_conversion(tmp_path, reference_keys):
    """float64 1e300 would become inf in float32 (past the NaN/inf check); int64 2^53+1 would be rounded."""
    import collections

    from src.convert.weights import ConversionError, convert_file

    entries = reference_keys["semseg_resnet50_v2_imagenet"]
    for value, match in ((np.float64(1e300), "beyond float32's range"), (np.int64(2**53 + 1), "cannot hold exactly")):
        sd = collections.OrderedDict((k, np.zeros(s, np.float32)) for k, s in entries
                                     if not k.endswith("num_batches_tracked"))
        sd["layer1.0.conv1.weight"] = np.full(sd["layer1.0.conv1.weight"].shape, value)
        write_pth(sd, str(tmp_path / "w.pth"))
        with pytest.raises(ConversionError, match=match):
            convert_file(str(tmp_path / "w.pth"), str(tmp_path / "w.ckpt"))
        assert not (tmp_path / "w.ckpt").exists()


def test_a_zip_with_one_member_twice_is_refused(tmp_path):
    import warnings
    import zipfile

    write_pth({"w": np.ones(2, np.float32)}, str(tmp_path / "a.pth"))
    with zipfile.ZipFile(tmp_path / "a.pth") as src, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        with zipfile.ZipFile(tmp_path / "b.pth", "w") as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
            dst.writestr("archive/data/0", np.zeros(2, np.float32).tobytes())
    with pytest.raises(PthError, match="holds archive/data/0 more than once"):
        load_pth(str(tmp_path / "b.pth"))


def test_a_legacy_pickle_with_a_zip_appended_is_read_as_torch_reads_it(tmp_path):
    """torch decides the format from the first bytes: a legacy file is legacy even with a zip at its end."""
    write_pth({"w": np.full(2, 7, np.float32)}, str(tmp_path / "legacy.pth"), legacy=True)
    write_pth({"w": np.zeros(2, np.float32)}, str(tmp_path / "zip.pth"))
    mixed = tmp_path / "mixed.pth"
    mixed.write_bytes((tmp_path / "legacy.pth").read_bytes() + (tmp_path / "zip.pth").read_bytes())
    assert np.array_equal(load_pth(str(mixed))["w"], np.full(2, 7, np.float32))


def test_storage_types_this_reader_does_not_convert_are_named_not_called_code(tmp_path):
    import zipfile

    write_pth({"w": np.ones(2, np.float32)}, str(tmp_path / "a.pth"))
    with zipfile.ZipFile(tmp_path / "a.pth") as src, zipfile.ZipFile(tmp_path / "c.pth", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):  # the GLOBAL opcode names the storage type
                data = data.replace(b"ctorch\nFloatStorage\n", b"ctorch\nComplexFloatStorage\n")
            dst.writestr(info.filename, data)
    with pytest.raises(PthError, match="unsupported tensor type torch.ComplexFloatStorage") as info:
        load_pth(str(tmp_path / "c.pth"))
    assert "could run code" not in str(info.value)


def test_cli_reports_refusal(tmp_path):
    marker = tmp_path / "pwned"
    write_malicious_pth(str(tmp_path / "evil.pth"), str(marker))
    proc = subprocess.run([sys.executable, "convert/convert_weights.py", "--src", str(tmp_path / "evil.pth"),
                           "--dst", str(tmp_path / "x.ckpt")], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert proc.returncode == 2
    assert "refusing to load 'os.system'" in proc.stderr
    assert not marker.exists() and not (tmp_path / "x.ckpt").exists()
