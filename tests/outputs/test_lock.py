"""Tests of src/outputs/lock.py: one command at a time per output folder. A second holder (another process or
this one) is refused naming the holder; a lock file nobody holds is stale whatever it says, and a killed run's
lock is taken over; a user's file, a FIFO or a link in place of the lock is refused and left alone; the lock goes
with the command that took it. Two cases drive it through the commands (src.cli): the train command on a held
folder, and the log line of a command's folder."""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from src.outputs.errors import RunLockedError
from src.outputs.folder import OutputFolder
from src.outputs.lock import LOCK_NAME, MAX_LOCK_BYTES, acquire, read_lock, release

ROOT = Path(__file__).resolve().parents[2]


HOLD = ("import sys, time; from src.outputs.lock import acquire; lock = acquire(sys.argv[1], command=sys.argv[2]); "
        "print('locked', flush=True); time.sleep(120)")


def _holder(folder: Path, command: str = "train") -> subprocess.Popen:
    """A real second process holding ``folder``'s lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), command], cwd=str(ROOT), stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_live_run_holds_the_folder(tmp_path):
    other = _holder(tmp_path / "run", "eval")
    try:
        before = (tmp_path / "run" / LOCK_NAME).read_text()
        with pytest.raises(RunLockedError, match=rf"in use by another run \(eval, pid {other.pid} on .*started 20"):
            acquire(tmp_path / "run")
        assert (tmp_path / "run" / LOCK_NAME).read_text() == before  # the holder's lock is untouched
    finally:
        other.kill()
        other.wait()


def test_a_lock_file_nobody_holds_is_stale_whatever_it_says(tmp_path, caplog):
    """No pid is judged: a lock file naming a live pid, another host, pid 2**70 or garbage is stale when no process
    holds its flock (each of these once blocked the folder or raised OverflowError)."""
    for i, text in enumerate([json.dumps({"pid": 1, "host": socket.gethostname(), "started": 1.0}),
                              json.dumps({"pid": 2 ** 70, "host": "node-7", "started": 1e300}), ""]):
        (tmp_path / str(i)).mkdir()
        (tmp_path / str(i) / LOCK_NAME).write_text(text)
        with caplog.at_level(logging.WARNING, logger="src.outputs"):
            lock = acquire(tmp_path / str(i))
        assert json.loads((tmp_path / str(i) / LOCK_NAME).read_text())["pid"] == os.getpid()
        release(lock)
        assert not (tmp_path / str(i) / LOCK_NAME).exists()
    assert "did not release" in caplog.text


def test_a_users_file_in_place_of_the_lock_is_never_truncated_or_removed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / LOCK_NAME).write_text("my notes")
    (tmp_path / "precious.txt").write_text("precious")
    (tmp_path / "b").mkdir()
    os.link(tmp_path / "precious.txt", tmp_path / "b" / LOCK_NAME)
    for folder, needle in (("a", "it holds something else"), ("b", "another name links to it")):
        with pytest.raises(RunLockedError, match=needle):
            OutputFolder(tmp_path / folder, "--out", "predict").__enter__()
    assert (tmp_path / "a" / LOCK_NAME).read_text() == "my notes"
    assert (tmp_path / "precious.txt").read_text() == "precious" and (tmp_path / "b" / LOCK_NAME).exists()


def test_a_fifo_or_link_in_place_of_the_lock_is_refused_without_waiting(tmp_path):
    (tmp_path / "f").mkdir()
    os.mkfifo(tmp_path / "f" / LOCK_NAME)
    start = time.monotonic()
    with pytest.raises(RunLockedError, match="not a regular file"):
        OutputFolder(tmp_path / "f", "--out", "predict").__enter__()
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunLockedError, match="a symbolic link"):
        acquire(tmp_path / "l")
    assert time.monotonic() - start < 10 and not (tmp_path / "elsewhere").exists()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    proc = _holder(tmp_path / "run")
    with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
        acquire(tmp_path / "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.WARNING, logger="src.outputs"):
        lock = acquire(tmp_path / "run")
    assert "did not release" in caplog.text and json.loads(lock.path.read_text())["pid"] == os.getpid()
    release(lock)
    assert not lock.path.exists()


def test_four_processes_taking_one_stale_lock_at_once_give_one_holder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps({"pid": 99999999, "host": socket.gethostname()}))
    code = ("import sys, time; from src.outputs.lock import acquire\nfrom src.outputs.errors import RunLockedError\n"
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
            "try:\n    lock = acquire(sys.argv[1]); print('held', flush=True); time.sleep(3)\n"
            "except RunLockedError:\n    print('refused', flush=True)\n")
    start = str(time.time() + 2.0)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run"), start], cwd=str(ROOT),
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
             for _ in range(4)]
    said = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert said == ["held", "refused", "refused", "refused"], said


def test_the_lock_is_released_when_the_run_ends_or_fails(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with OutputFolder(tmp_path / "run", "train.save_dir", "train"):
            assert (tmp_path / "run" / LOCK_NAME).is_file()
            1 / 0
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    with OutputFolder(tmp_path / "run", "train.save_dir", "train", lock=False):  # ranks other than 0
        assert not (tmp_path / "run" / LOCK_NAME).exists()


def test_train_command_on_a_held_folder_exits_2_and_writes_nothing(tmp_path, capsys):
    from src import cli

    other = _holder(tmp_path / "run")
    try:
        start = time.monotonic()
        code = cli.main(["--config", str(ROOT / "config" / "demo_synthetic.yaml"), "--opts", "train.save_dir",
                         str(tmp_path / "run"), "data.data_root", str(tmp_path / "nodata")], command="train")
        assert code == 2 and time.monotonic() - start < 60
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [LOCK_NAME]  # no train.log, no config.yaml
        assert f"pid {other.pid}" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
        import mindspore as ms

        ms.set_context(mode=ms.PYNATIVE_MODE)  # the command set up GRAPH mode for this process


def test_a_second_holder_in_this_process_is_refused_until_the_first_releases(tmp_path):
    """The flock belongs to the open lock file, not to the process: a second acquire here is refused as well."""
    first = acquire(tmp_path / "run", "--out", command="eval")
    with pytest.raises(RunLockedError, match=rf"--out {tmp_path / 'run'} is in use by another run \(eval, pid "
                                             rf"{os.getpid()} on "):
        acquire(tmp_path / "run", "--out", command="predict")
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["command"] == "eval"
    release(first)
    release(first)  # a second release changes nothing
    assert not (tmp_path / "run" / LOCK_NAME).exists()
    second = acquire(tmp_path / "run", "--out", command="predict")
    assert json.loads(second.path.read_text())["command"] == "predict"
    release(second)


def test_read_lock_gives_the_holder_only_for_a_record_this_program_writes(tmp_path):
    lock = tmp_path / LOCK_NAME
    assert read_lock(lock) is None  # no file
    lock.write_text(json.dumps({"pid": 12, "host": "node-1", "command": "train"}))
    assert read_lock(lock) == {"pid": 12, "host": "node-1", "command": "train"}
    for text in ("not json", "[1, 2]", json.dumps({"pid": "12", "host": "node-1"}), json.dumps({"pid": 12}),
                 json.dumps({"pid": 12, "host": "h" * MAX_LOCK_BYTES})):
        lock.write_text(text)
        assert read_lock(lock) is None, text
