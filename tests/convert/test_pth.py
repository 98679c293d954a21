"""src.convert.pth: the safe .pth reader - a malicious pickle refused in both formats, corrupt files named, tensor
views read as torch reads them, and the state dict taken out of its wrapper.

The hostile-input suite of this reader is tests/integration/test_hostile_pth.py.
"""
import numpy as np
import pytest

from pth_writer import write_malicious_pth, write_pth
from src.convert.pth import PthError, extract_state_dict, load_pth


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    write_malicious_pth(str(tmp_path / "evil.pth"), str(marker), legacy=legacy)
    with pytest.raises(PthError, match=r"evil\.pth.*refusing to load 'os\.system'"):
        load_pth(tmp_path / "evil.pth")
    assert not marker.exists()


def test_corrupt_files(tmp_path):
    good = tmp_path / "g.pth"
    write_pth({"a": np.arange(6, dtype=np.float32)}, str(good), legacy=True)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(PthError, match="cut.pth"):
        load_pth(cut)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(PthError, match="junk.pth"):
        load_pth(junk)
    with pytest.raises(PthError, match="not a tensor"):
        extract_state_dict({"a": 3}, "x.pth")


def test_strided_and_offset_tensors_read_like_torch(tmp_path):
    torch = pytest.importorskip("torch")
    t = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    sd = {"t": t.t(), "s": t[1:3, 2:5], "h": t.half(), "n": torch.tensor(5)}
    for legacy in (False, True):
        path = tmp_path / f"t{legacy}.pth"
        torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
        got = load_pth(path)
        for k, v in sd.items():
            np.testing.assert_array_equal(got[k], v.numpy())


def test_extract_state_dict_unwraps_the_checkpoint_and_drops_the_dataparallel_prefix():
    a, b = np.zeros(2, np.float32), np.ones(3, np.float32)
    assert list(extract_state_dict({"epoch": 5, "state_dict": {"module.x": a, "module.y": b}})) == ["x", "y"]
    got = extract_state_dict({"model": {"x": a}, "optimizer": {"lr": 0.1}})
    assert list(got) == ["x"] and got["x"] is a
    with pytest.raises(PthError, match="w.pth: holds a list"):
        extract_state_dict([a], "w.pth")


def test_load_pth_names_a_missing_file_and_a_mindspore_checkpoint(tmp_path):
    with pytest.raises(PthError, match="file not found: .*none.pth"):
        load_pth(tmp_path / "none.pth")
    (tmp_path / "w.ckpt").write_bytes(b"\x00" * 16)
    with pytest.raises(PthError, match="w.ckpt is a MindSpore checkpoint.*needs no conversion"):
        load_pth(tmp_path / "w.ckpt")
