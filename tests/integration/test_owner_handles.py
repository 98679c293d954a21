"""The owner acts on exactly what it checked (issue "Nothing lost, second round"): one handle per folder, links
refused anywhere below before anything is removed, placing that cannot replace a file that appeared meanwhile,
outputs of another command kind never replaced, FIFOs never waited on, logs owned by their mark."""
import os
import threading

import pytest

from src.outputs import atomic as owner_atomic, folder as owner_folder, lock as owner_lock
from src.outputs.manifest import MANIFEST
from src.evaluation.evaluate import open_results_dir
from src.outputs.errors import OutputExistsError, OutputPathError
from src.outputs.folder import OutputFolder


def _eval_results(folder_path):
    with OutputFolder(folder_path, "--results-dir", "eval") as folder:
        folder.put_bytes("color/a.png", b"eval's mask")
        folder.put_bytes("results.json", b"{}")


def test_a_symlinked_subfolder_is_refused_before_anything_is_removed(tmp_path):
    _eval_results(tmp_path / "ev")
    (tmp_path / "ev" / "color").rename(tmp_path / "moved")  # the user moved the folder away, left a link
    (tmp_path / "moved" / "mine.png").write_bytes(b"the user's own mask")
    (tmp_path / "ev" / "color").symlink_to(tmp_path / "moved")
    with pytest.raises(OutputPathError, match=r"color is a symbolic link .*refusing to work through it"):
        open_results_dir(tmp_path / "ev", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "moved").iterdir()) == ["a.png", "mine.png"]  # nothing deleted
    assert (tmp_path / "ev" / "results.json").read_bytes() == b"{}"


def test_overwrite_never_takes_another_commands_outputs(tmp_path):
    with OutputFolder(tmp_path / "out", "--out", "predict") as folder:
        folder.put_bytes("color/a.png", b"predict's mask")
    with pytest.raises(OutputExistsError, match=r"holds the outputs of `predict` .*not of `eval`"):
        open_results_dir(tmp_path / "out", overwrite=True)
    with OutputFolder(tmp_path / "out", "--results-dir", "eval", overwrite=True) as folder:
        assert folder.remove_owned(["color/"]) == []
        with pytest.raises(OutputExistsError, match="was written by `predict`, not by `eval`"):
            folder.put_bytes("color/a.png", b"eval's")
    assert (tmp_path / "out" / "color" / "a.png").read_bytes() == b"predict's mask"
    with OutputFolder(tmp_path / "out", "--work", "flow310", overwrite=True) as folder:  # one kind: the 310 flow
        folder.put_bytes("input/x.bin", b"1")
    with OutputFolder(tmp_path / "out", "--work", "preprocess", overwrite=True) as folder:
        assert folder.remove_owned(["input/"]) == ["input/x.bin"]


def test_a_file_that_appears_while_writing_is_never_replaced(tmp_path):
    def slow_writer(tmp):
        (tmp_path / "model.onnx").write_bytes(b"the user's model, saved meanwhile")
        with open(tmp, "wb") as f:
            f.write(b"exported")

    with OutputFolder(tmp_path, "--file_name folder", "export") as folder:
        with pytest.raises(OutputExistsError, match="appeared while it was being written"):
            folder.put_written("model.onnx", slow_writer)
        assert "model.onnx" not in folder.entries
    assert (tmp_path / "model.onnx").read_bytes() == b"the user's model, saved meanwhile"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.onnx.")]  # no temporary left
    with OutputFolder(tmp_path, "x", "export", overwrite=True) as folder:  # and it is not taken for ours later
        with pytest.raises(OutputExistsError, match="not written by this program"):
            folder.put_bytes("model.onnx", b"again")


def test_an_own_file_changed_while_writing_is_not_replaced(tmp_path):
    with OutputFolder(tmp_path, "--out", "predict", overwrite=True) as folder:
        folder.put_bytes("a.png", b"first")

        def writer(tmp):
            (tmp_path / "a.png").write_bytes(b"edited by the user meanwhile")
            open(tmp, "wb").write(b"second")

        with pytest.raises(OutputExistsError, match="changed or replaced while it was being written"):
            folder.put_written("a.png", writer)
    assert (tmp_path / "a.png").read_bytes() == b"edited by the user meanwhile"


def test_a_fifo_in_place_of_the_manifest_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / MANIFEST)
    done = []
    thread = threading.Thread(target=lambda: done.append(_try_open(tmp_path)), daemon=True)
    thread.start()
    thread.join(10)
    assert done and "not a regular file" in done[0]
    assert not (tmp_path / owner_lock.LOCK_NAME).exists()  # the lock was let go


def _try_open(path):
    try:
        OutputFolder(path, "--out", "predict").__enter__()
    except OutputPathError as exc:
        return str(exc)
    return "opened"


def test_a_users_file_on_a_reused_inode_is_not_taken_for_the_log(tmp_path):
    with OutputFolder(tmp_path, "--results-dir", "eval") as folder:
        folder.open_log("eval.log").close()
        rec = folder.entries["eval.log"]
    (tmp_path / "eval.log").unlink()
    (tmp_path / "eval.log").write_text("the user's notes\n")
    st = (tmp_path / "eval.log").stat()
    with OutputFolder(tmp_path, "--results-dir", "eval", overwrite=True) as folder:
        folder.entries["eval.log"] = dict(rec, ino=st.st_ino, dev=st.st_dev)  # as if the kernel reused the inode
        assert not folder.unchanged("eval.log")
        with pytest.raises(OutputExistsError, match="changed after this program wrote it"):
            folder.open_log("eval.log")
    assert (tmp_path / "eval.log").read_text() == "the user's notes\n"


def _patch_write_all(monkeypatch, fn) -> None:
    """Replace the owner's ``_write_all`` in every module that calls it (placing, the manifest, the lock)."""
    for module in (owner_atomic, owner_lock, owner_folder):
        monkeypatch.setattr(module, "_write_all", fn)


def test_a_manifest_line_cut_by_a_full_disk_does_not_disown_the_folder(tmp_path, monkeypatch):
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        folder.put_bytes("a.png", b"a")
        real = owner_atomic._write_all
        calls = []

        def short_then_full(fd, data):  # the manifest's record: half written, then the disk is full
            if b'"name": "b.png"' in data and not calls:
                calls.append(1)
                os.write(fd, data[: len(data) // 2])
                raise OSError(28, "No space left on device")
            return real(fd, data)

        _patch_write_all(monkeypatch, short_then_full)
        with pytest.raises(OSError):
            folder.put_bytes("b.png", b"b")
        _patch_write_all(monkeypatch, real)
    assert not (tmp_path / "b.png").exists()  # recorded first, placed after: nothing placed unrecorded
    with OutputFolder(tmp_path, "--out", "predict", overwrite=True) as folder:
        assert folder.unchanged("a.png")
        folder.put_bytes("a.png", b"a2")
        folder.put_bytes("b.png", b"b2")
    assert (tmp_path / "a.png").read_bytes() == b"a2"


def test_a_locked_folders_handle_is_the_folder_it_checked(tmp_path):
    """Renaming the folder away and putting a link in its place while a command works: writes still land in the
    folder that was opened and locked, never through the link."""
    (tmp_path / "elsewhere").mkdir()
    with OutputFolder(tmp_path / "out", "--out", "predict") as folder:
        folder.put_bytes("a.png", b"a")
        (tmp_path / "out").rename(tmp_path / "out_moved")
        (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
        folder.put_bytes("b.png", b"b")
    assert sorted(p.name for p in (tmp_path / "out_moved").iterdir() if not p.name.startswith(".")) == \
        ["a.png", "b.png"]
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_link_swapped_in_for_the_temporary_is_never_written_through(tmp_path, monkeypatch):
    """Another process renames a symbolic link over the temporary file while the owner writes: the bytes go to the
    file the owner created (it writes through its own descriptor), the victim is untouched, and what is placed is
    the owner's file, not the link."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    real = owner_atomic._write_all

    def swap_then_write(fd, data):
        for p in (tmp_path / "out").iterdir():
            if p.name.startswith(".a.txt."):
                (tmp_path / "out" / "lnk").symlink_to(victim)
                os.rename(tmp_path / "out" / "lnk", p)
        return real(fd, data)

    with OutputFolder(tmp_path / "out", "--out", "predict") as folder:
        _patch_write_all(monkeypatch, swap_then_write)
        with pytest.raises(OutputPathError, match="nothing was replaced"):
            folder.put_bytes("a.txt", b"payload")
        _patch_write_all(monkeypatch, real)
        assert "a.txt" not in folder.entries
    assert victim.read_text() == "precious"  # never written through the link
    assert not os.path.lexists(tmp_path / "out" / "a.txt")  # and the link was not placed as the output


def test_a_record_without_a_command_is_nobodys_and_a_killed_replace_keeps_the_file_ours(tmp_path):
    with OutputFolder(tmp_path, "--out", "synthetic") as folder:
        folder.put_bytes("train.txt", b"synthetic's list")
    manifest = tmp_path / MANIFEST
    manifest.write_text(manifest.read_text().replace(', "command": "synthetic"', ""))
    with OutputFolder(tmp_path, "--out", "prepare", overwrite=True) as folder:
        with pytest.raises(OutputExistsError):
            folder.put_bytes("train.txt", b"prepare's list")
    assert (tmp_path / "train.txt").read_bytes() == b"synthetic's list"
    # a replace recorded but killed before its rename: the earlier file is still this program's
    with OutputFolder(tmp_path / "k", "--out", "predict") as folder:
        folder.put_bytes("a.png", b"first")
        rec = dict(folder.entries["a.png"])
    import json
    killed = {**rec, "size": 6, "sha256": "0" * 64, "ino": 1, "mtime_ns": 1,
              "replaces": {k: rec[k] for k in ("size", "mtime_ns", "sha256", "ino", "dev")}}
    with open(tmp_path / "k" / MANIFEST, "a") as f:
        f.write(json.dumps(killed) + "\n")
    with OutputFolder(tmp_path / "k", "--out", "predict", overwrite=True) as folder:
        assert folder.unchanged("a.png")
        folder.put_bytes("a.png", b"second")


def test_hand_edited_records_are_skipped_not_tracebacks(tmp_path):
    import json
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        folder.put_bytes("a.png", b"a")
        folder.open_log("p.log").close()
    with open(tmp_path / MANIFEST, "a") as f:
        for name in ("gray/" + "a" * 300, "gray/a\u0000b.png"):
            f.write(json.dumps({"name": name, "kind": "file", "command": "predict"}) + "\n")
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    log = [json.loads(x) for x in lines if '"p.log"' in x][0]
    with open(tmp_path / MANIFEST, "a") as f:
        f.write(json.dumps({**log, "mark": 5}) + "\n")
    with OutputFolder(tmp_path, "--out", "predict", overwrite=True) as folder:
        assert folder.owned() == ["a.png", "p.log"] and not folder.unchanged("p.log")
