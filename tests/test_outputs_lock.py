"""One run per train.save_dir: a second run is refused naming the holder; a lock of a killed run is taken over."""
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

from src.outputs import LOCK_NAME, OutputFolder, RunLockedError, acquire, release

ROOT = Path(__file__).resolve().parents[1]


def _write_lock(folder: Path, pid: int, host: str = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": 1764400000.0}))
    return path


def test_a_live_run_holds_the_folder(tmp_path):
    other = subprocess.Popen(["sleep", "60"])
    try:
        lock = _write_lock(tmp_path / "run", other.pid)
        before = lock.read_text()
        with pytest.raises(RunLockedError, match=rf"in use by another run \(pid {other.pid} on .*started 2025-"):
            acquire(tmp_path / "run")
        assert lock.read_text() == before  # the holder's lock is untouched
    finally:
        other.kill()
        other.wait()


def test_a_lock_from_another_host_or_unreadable_is_refused(tmp_path):
    _write_lock(tmp_path / "a", os.getpid(), host="node-7")
    with pytest.raises(RunLockedError, match="on node-7"):
        acquire(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / LOCK_NAME).write_bytes(b"\xff" * 100000)
    with pytest.raises(RunLockedError, match=r"an unreadable lock.*remove .*\.run\.lock"):
        acquire(tmp_path / "b")


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    code = ("import sys, time; from src.outputs import acquire; acquire(sys.argv[1]); print('locked', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], cwd=str(ROOT), stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(RunLockedError, match=f"pid {proc.pid}"):
        acquire(tmp_path / "run")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.WARNING, logger="src.outputs"):
        path = acquire(tmp_path / "run")
    assert "stale lock" in caplog.text and json.loads(path.read_text())["pid"] == os.getpid()
    release(path)
    assert not path.exists()


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

    other = subprocess.Popen(["sleep", "60"])
    try:
        _write_lock(tmp_path / "run", other.pid)
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


def test_a_commands_log_line_names_its_log_file(tmp_path, caplog):
    """The command's "log file:" line gives the file's path (it once gave the descriptor's number, "3")."""
    import logging

    from src.cli import _command_folder
    from src.logging_setup import close_log_files

    try:
        with caplog.at_level(logging.INFO, logger="src.cli"):
            with _command_folder(tmp_path / "out", "--out", "test", False, log="eval.log") as folder:
                assert folder is not None
    finally:
        close_log_files()
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("log file:")]
    assert len(line) == 1 and str(tmp_path / "out") in line[0] and "eval" in line[0]
