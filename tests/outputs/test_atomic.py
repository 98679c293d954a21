"""Tests of src/outputs/atomic.py: files placed by path. A write replaces a file whole or not at all, with ordinary
permissions and no temporary left behind; nothing is written, appended or emptied through a symbolic link; an
append adds whole lines (ending first a line an earlier failure cut short); a small read refuses anything but a
small regular file, without blocking on a FIFO; the checks and write failures are one line naming the option, the
path and what is kept."""
import errno
import hashlib
import json
import os
import time

import pytest

from src.outputs.atomic import (RANK_FILE_ATTR, append_line, atomic_path, claim_rank_file, clear_log, ensure_output_dir, ensure_output_file,
                                file_sha256, open_append, output_writes, private_folder, read_small_file, write_json,
                                write_text)
from src.outputs.errors import OutputPathError, WriteFailedError


def _umask_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "r.json"
    digest = write_json(target, {"a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert digest == hashlib.sha256(target.read_bytes()).hexdigest() == file_sha256(target)
    assert write_text(target, "second") == hashlib.sha256(b"second").hexdigest()
    assert target.read_text() == "second" and os.listdir(target.parent) == ["r.json"]
    assert target.stat().st_mode & 0o777 == _umask_mode()  # not the temporary's private 0600


def test_a_failed_write_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "r.txt"
    target.write_text("earlier")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            1 / 0
    with pytest.raises(WriteFailedError) as info:
        with atomic_path(target):
            raise OSError(errno.ENOSPC, "No space left on device")
    message = str(info.value)
    assert message.startswith(f"cannot write {target}: No space left on device (") and "\n" not in message
    assert message.endswith("nothing was replaced: an earlier file of that name is intact")
    assert target.read_text() == "earlier" and os.listdir(tmp_path) == ["r.txt"]


def test_nothing_is_written_appended_or_emptied_through_a_symbolic_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    with pytest.raises(OutputPathError, match="out.txt is a symbolic link"):
        write_text(link, "x")
    with pytest.raises(OutputPathError, match="--out .*out.txt is a symbolic link"):
        ensure_output_file(link, "--out")
    with pytest.raises(OutputPathError, match="log file .*out.txt is a symbolic link"):
        open_append(link)
    for write in (append_line, clear_log):
        with pytest.raises(OutputPathError, match=r"out.txt: cannot (append to|open) it \(a symbolic link\)"):
            write(link, "x") if write is append_line else write(link)
    assert victim.read_text() == "precious" and link.is_symlink()



def test_a_fifo_or_a_hard_link_at_a_log_files_name_is_refused_without_waiting_or_truncating(tmp_path):
    """The log writers check the open file: a FIFO is refused at once (a write-only open would wait for a reader
    forever), a user's file linked under a log's name is never emptied or appended to (O_TRUNC at open would have
    emptied it before any check)."""
    os.mkfifo(tmp_path / "fifo.log")
    precious = tmp_path / "notes.txt"
    precious.write_text("precious")
    os.link(precious, tmp_path / "linked.log")
    start = time.monotonic()
    for write in (open_append, clear_log, lambda p: append_line(p, "x")):
        with pytest.raises(OutputPathError, match="fifo.log .*not a regular file"):
            write(tmp_path / "fifo.log")
        with pytest.raises(OutputPathError, match="linked.log .*(linked under|another name)"):
            write(tmp_path / "linked.log")
    assert time.monotonic() - start < 10 and precious.read_text() == "precious"
    log = open_append(tmp_path / "run.log")
    log.write("a line\n")
    log.close()
    clear_log(tmp_path / "run.log")
    assert (tmp_path / "run.log").read_text() == ""

def test_appends_are_whole_lines_and_a_cut_line_is_ended_first(tmp_path):
    log = tmp_path / "m.jsonl"
    append_line(log, "one")
    append_line(log, "two\n")
    assert log.read_text() == "one\ntwo\n"
    with open(log, "a") as f:
        f.write('{"cut')  # a write an earlier failure left without its newline
    append_line(log, "three")
    assert log.read_text() == 'one\ntwo\n{"cut\nthree\n'
    inode = log.stat().st_ino
    clear_log(log)
    assert log.read_text() == "" and log.stat().st_ino == inode  # emptied in place
    stream = open_append(tmp_path / "logs" / "run.log")
    try:
        stream.write("a\n")
        assert stream.name == str(tmp_path / "logs" / "run.log")  # its path, not the descriptor's number
    finally:
        stream.close()
    assert (tmp_path / "logs" / "run.log").read_text() == "a\n"


def test_read_small_file_reads_only_a_small_regular_file(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"12345")
    assert read_small_file(small, 5) == b"12345"
    assert read_small_file(small, 4) is None  # too large
    (tmp_path / "link").symlink_to(small)
    os.mkfifo(tmp_path / "fifo")
    for other in ("missing", "link", "fifo", "."):
        assert read_small_file(tmp_path / other, 100) is None, other


def test_the_checks_name_the_option_and_the_path(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match=rf"^train.save_dir {tmp_path / 'file' / 'run'}: {tmp_path / 'file'} "
                                              rf"is a file, not a folder$"):
        ensure_output_dir(tmp_path / "file" / "run", "train.save_dir")
    made = ensure_output_dir(tmp_path / "new" / "deeper", "--out")
    assert made.is_dir() and os.listdir(made) == []  # its write probe is gone
    with pytest.raises(OutputPathError, match=rf"^--out {tmp_path / 'new'}: is a folder; give a file name$"):
        ensure_output_file(tmp_path / "new", "--out")
    assert ensure_output_file(tmp_path / "new" / "a.png", "--out") == tmp_path / "new" / "a.png"


def test_output_writes_turns_an_os_error_into_one_line_naming_what_is_kept(tmp_path):
    with pytest.raises(OutputPathError) as info:
        with output_writes(tmp_path, "the checkpoints are intact"):
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.png"))
    message = str(info.value)
    assert message.startswith(f"cannot write {tmp_path / 'x.png'}: No space left on device (")
    assert f"MiB free in {tmp_path}); the checkpoints are intact" in message
    with pytest.raises(WriteFailedError, match="^cannot write y; the checkpoints are intact$"):
        with output_writes(tmp_path, "the checkpoints are intact"):
            raise WriteFailedError("cannot write y")
    with pytest.raises(OutputPathError, match="^as it was$"):
        with output_writes(tmp_path, "the checkpoints are intact"):
            raise OutputPathError("as it was")
    with pytest.raises(ValueError):  # not a write failure: not this function's to explain
        with output_writes(tmp_path, "kept"):
            raise ValueError("x")


def test_a_private_folder_is_removed_with_what_it_holds():
    with private_folder() as folder:
        assert os.stat(folder).st_mode & 0o777 == 0o700
        with open(os.path.join(folder, "model.om"), "w") as f:
            f.write("x")
    assert not os.path.exists(folder)


def _marks_kept(folder) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.pspnet_probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def test_a_ranks_file_is_made_marked_emptied_on_a_fresh_run_and_a_users_file_is_refused(tmp_path):
    """Ranks other than 0 have no manifest: their files carry a mark. Their own is emptied in place on a fresh run
    and kept on a resume; a user's file at the name (no mark), a FIFO or a link is refused and left as it is."""
    mine = tmp_path / "run" / "bad_samples_rank1.tsv"
    claim_rank_file(mine, fresh=True)
    assert mine.read_bytes() == b"" and (not _marks_kept(tmp_path) or os.getxattr(mine, RANK_FILE_ATTR) == b"1")
    append_line(mine, "3\tbad")
    claim_rank_file(mine, fresh=False)  # a resume continues it
    assert mine.read_text() == "3\tbad\n"
    claim_rank_file(mine, fresh=True)  # a fresh run empties it in place
    assert mine.read_bytes() == b""
    users = tmp_path / "run" / "data_error_rank1.txt"
    users.write_text("my notes")
    with pytest.raises(OutputPathError, match="data_error_rank1.txt was not written by this program"):
        claim_rank_file(users, fresh=True)
    if _marks_kept(tmp_path):
        with pytest.raises(OutputPathError, match="not written by this program"):
            claim_rank_file(users, fresh=False)
    assert users.read_text() == "my notes"
    os.mkfifo(tmp_path / "run" / "train.rank1.log")
    with pytest.raises(OutputPathError, match="not a regular file"):
        claim_rank_file(tmp_path / "run" / "train.rank1.log", fresh=False)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputPathError, match="a_file is a file, not a folder"):  # a raw FileExistsError before
        claim_rank_file(tmp_path / "a_file" / "sub" / "train.rank1.log", fresh=False)


def test_where_no_marks_are_kept_only_an_empty_rank_file_is_taken(tmp_path, monkeypatch):
    """On a file system without extended attributes (NFSv3, vfat, ramfs) no file can show it is this program's:
    a non-empty one at a rank file's name is refused on a resume too (a user's log was appended to), an empty
    one is taken."""
    def no_marks(*args):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(os, "getxattr", no_marks)
    monkeypatch.setattr(os, "setxattr", no_marks)
    log = tmp_path / "eval.rank1.log"
    claim_rank_file(log, fresh=False)
    claim_rank_file(log, fresh=True)  # still empty: taken
    log.write_text("my own notes\n")
    for fresh in (False, True):
        with pytest.raises(OutputPathError, match="eval.rank1.log was not written by this program .*no extended"):
            claim_rank_file(log, fresh=fresh)
    assert log.read_text() == "my own notes\n"
