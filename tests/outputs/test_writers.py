"""Tests of src/outputs/writers.py: a third-party writer that wants a file name (an exporter, a video encoder) is
given one inside a private folder beside the target, and its file is placed atomically: what it wrote arrives with
ordinary permissions and its leftovers go; a writer that fails, writes nothing, an empty file or a link changes
nothing."""
import hashlib
import os
from pathlib import Path

import pytest

from src.outputs.errors import WriteFailedError
from src.outputs.writers import written_file


def test_the_writers_file_is_placed_and_its_private_folder_removed(tmp_path):
    given = []

    def exporter(name):  # as MindSpore's: its own temporary beside the file, the file 0400, the folder 0700
        given.append(Path(name))
        Path(name).write_bytes(b"model")
        (Path(name).parent / "model.tmp").write_text("leftover")
        os.chmod(name, 0o400)
        os.chmod(Path(name).parent, 0o700)

    digest = written_file(exporter, tmp_path / "m.mindir")
    assert (tmp_path / "m.mindir").read_bytes() == b"model" and digest == hashlib.sha256(b"model").hexdigest()
    assert given[0].name == "m.mindir" and given[0].parent.parent == tmp_path and given[0].parent != tmp_path
    assert os.listdir(tmp_path) == ["m.mindir"]
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.mindir").stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_writer_that_fails_or_leaves_no_file_changes_nothing(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"earlier")

    def crashes(name):
        Path(name).write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        written_file(crashes, target)
    for writer in (lambda name: None, lambda name: Path(name).write_bytes(b""),
                   lambda name: os.symlink(target, name)):
        with pytest.raises(WriteFailedError, match="the writer reported no error but left no file .*nothing was "
                                                   "replaced"):
            written_file(writer, target)
    assert target.read_bytes() == b"earlier" and os.listdir(tmp_path) == ["m.onnx"]
