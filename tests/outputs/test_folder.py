"""Tests of src/outputs/folder.py: OutputFolder and its views. A folder writes, records, replaces and removes only
its own outputs: a file it did not make is refused and left alone (with overwrite too), an earlier run's output is
replaced only with overwrite and never one of another command's kind, an output changed since it was written is
neither replaced nor removed, a unique output is written once per run; a child's file is adopted, a link recorded,
a log continued; only this program's own temporaries are cleaned up; SubFolder, make_folder, put_file and
as_folder work under the same checks."""
import os

import pytest

from src.outputs.errors import OutputExistsError, OutputPathError
from src.outputs.folder import OutputFolder, SubFolder, as_folder, make_folder, put_file
from src.outputs.lock import LOCK_NAME
from src.outputs.manifest import MANIFEST, read_manifest


def test_the_folder_refuses_a_file_it_did_not_make(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with OutputFolder(tmp_path, "--out", "predict", overwrite=overwrite) as folder:
            with pytest.raises(OutputExistsError, match="notes.txt exists and was not written by this program"):
                folder.put_text("notes.txt", "x")
            assert folder.remove("notes.txt") is False
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert os.listdir(tmp_path) == ["notes.txt"]  # no temporary, no record, the lock gone


def test_an_earlier_output_is_replaced_only_with_overwrite_and_never_another_kinds(tmp_path):
    with OutputFolder(tmp_path, "--out", "eval") as folder:
        folder.put_text("r.json", "1")
    with OutputFolder(tmp_path, "--out", "eval") as folder:
        with pytest.raises(OutputExistsError, match=r"holds an earlier result \(r.json\); pass --overwrite$"):
            folder.refuse_earlier(["r.json"], "pass --overwrite")
    with OutputFolder(tmp_path, "--out", "eval", overwrite=True) as folder:
        folder.refuse_earlier(["r.json"], "pass --overwrite")
        folder.put_text("r.json", "2")
    with OutputFolder(tmp_path, "--out", "predict", overwrite=True) as folder:
        with pytest.raises(OutputExistsError, match="holds the outputs of `eval`"):
            folder.refuse_earlier(["r.json"], "pass --overwrite")
        with pytest.raises(OutputExistsError, match="was written by `eval`, not by `predict`"):
            folder.put_text("r.json", "3")
    assert (tmp_path / "r.json").read_text() == "2"
    with OutputFolder(tmp_path, "--out", "report", overwrite=True) as folder:  # eval's kind
        folder.put_text("r.json", "4")
    assert (tmp_path / "r.json").read_text() == "4" and read_manifest(tmp_path)["r.json"]["command"] == "report"


def test_an_output_changed_since_it_was_written_is_neither_replaced_nor_removed(tmp_path):
    with OutputFolder(tmp_path, "--out", "eval", overwrite=True) as folder:
        changed = folder.put_text("a.txt", "ours")
        folder.put_text("b.txt", "ours")
        assert folder.unchanged("a.txt")
        changed.write_text("edited")
        assert not folder.unchanged("a.txt")
        with pytest.raises(OutputExistsError, match="a.txt was changed after this program wrote it"):
            folder.put_text("a.txt", "new")
        assert folder.remove("a.txt") is False and folder.remove("b.txt") is True
    assert changed.read_text() == "edited" and not (tmp_path / "b.txt").exists()
    assert sorted(read_manifest(tmp_path)) == ["a.txt"]


def test_a_unique_output_is_written_once_per_run_and_an_own_file_rewritten(tmp_path):
    with OutputFolder(tmp_path, "--out", "predict") as folder:
        folder.put_bytes("p.png", b"1", unique=True)
        with pytest.raises(OutputExistsError, match="two outputs named .*p.png in one run"):
            folder.put_bytes("p.png", b"2", unique=True)
        assert (tmp_path / "p.png").read_bytes() == b"1"
        folder.put_bytes("p.png", b"3")  # the same run rewriting its own file (best.ckpt, curves.png)
    assert (tmp_path / "p.png").read_bytes() == b"3"


def test_a_childs_file_is_adopted_a_link_recorded_and_a_log_continued(tmp_path):
    (tmp_path / "data").mkdir()
    with OutputFolder(tmp_path, "--out", "flow310") as folder:
        (tmp_path / "child.bin").write_bytes(b"from the 310 app")
        folder.adopt("child.bin")
        folder.link("images", tmp_path / "data")
        folder.append("run.log", "first")
        assert folder.unchanged("child.bin") and folder.unchanged("images")
    assert os.readlink(tmp_path / "images") == str(tmp_path / "data")
    with OutputFolder(tmp_path, "--out", "infer") as folder:  # the same kind: the 310 flow's steps
        folder.append("run.log", "second")
        assert folder.remove("child.bin") and folder.remove("images")
    assert (tmp_path / "run.log").read_text() == "first\nsecond\n"
    assert not (tmp_path / "child.bin").exists() and (tmp_path / "data").is_dir()
    assert read_manifest(tmp_path)["run.log"]["kind"] == "log"



def test_a_users_hard_link_to_a_log_stops_the_log_from_being_continued(tmp_path):
    """A run's log that the user linked elsewhere (ln train.log mine.txt) is not appended to on the next run: the
    user's name would grow with it."""
    with OutputFolder(tmp_path / "run", "--out", "eval") as folder:
        log = folder.open_log("eval.log")
        log.write("first run\n")
        log.close()
    os.link(tmp_path / "run" / "eval.log", tmp_path / "mine.txt")
    with OutputFolder(tmp_path / "run", "--out", "eval", overwrite=True) as folder:
        with pytest.raises(OutputPathError, match="eval.log has another name linked to it"):
            folder.open_log("eval.log")
    assert (tmp_path / "mine.txt").read_text() == "first run\n"

def test_only_this_programs_own_temporaries_are_cleaned_up(tmp_path):
    with OutputFolder(tmp_path, "--out", "eval") as folder:
        folder.put_text("a.txt", "A")
        for name in (".a.txt.0123abcd.part", ".b.txt.0123abcd.part", ".a.txt.xyz.part"):
            (tmp_path / name).write_text("partial")
        assert folder.remove_partials() == [tmp_path / ".a.txt.0123abcd.part"]  # b.txt is not ours; xyz not our shape
    assert sorted(os.listdir(tmp_path)) == [".a.txt.xyz.part", ".b.txt.0123abcd.part", MANIFEST, "a.txt"]


def test_a_sub_folder_and_make_folder_work_under_the_folders_handle(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    with OutputFolder(tmp_path, "--out", "flow310") as folder:
        sub = folder.sub("work/")
        assert isinstance(sub, SubFolder)
        assert sub.put_text("x.txt", "X") == tmp_path / "work" / "x.txt" and "work/x.txt" in folder.entries
        made = make_folder(sub, "output/bin/")
        assert made == tmp_path / "work" / "output" / "bin" and made.is_dir()
        assert make_folder(sub, "output/bin") == made  # an existing folder is kept
        (tmp_path / "work" / "link").symlink_to(tmp_path / "elsewhere")
        with pytest.raises(OutputPathError, match="work/link is a symbolic link"):
            make_folder(folder, "work/link/inner")
        with pytest.raises(OutputPathError, match="work/link is a symbolic link"):
            sub.put_text("link/y.txt", "Y")
    assert os.listdir(tmp_path / "elsewhere") == []


def test_put_file_and_as_folder_give_unlocked_folders_with_the_same_checks(tmp_path):
    assert put_file(tmp_path / "m.bin", b"1", "--out", "export") == tmp_path / "m.bin"
    put_file(tmp_path / "m.bin", b"2", "--out", "export")  # its own earlier file
    assert (tmp_path / "m.bin").read_bytes() == b"2"
    (tmp_path / "u.bin").write_bytes(b"user's")
    with pytest.raises(OutputExistsError, match="u.bin exists and was not written by this program"):
        put_file(tmp_path / "u.bin", b"3", "--out", "export")
    with pytest.raises(OutputPathError, match="give a file name"):
        put_file(tmp_path / "sub" / "..", b"4", "--out", "export")
    assert (tmp_path / "u.bin").read_bytes() == b"user's"
    with OutputFolder(tmp_path / "locked", "--out", "eval") as locked:
        assert as_folder(locked, "--out", "eval") is locked
    plain = as_folder(tmp_path / "plain", "--out", "eval")
    try:
        assert isinstance(plain, OutputFolder) and not (tmp_path / "plain" / LOCK_NAME).exists()
        plain.put_text("a.txt", "A")
    finally:
        plain.close()
    assert read_manifest(tmp_path / "plain")["a.txt"]["command"] == "eval"
