"""The one-line boundary, reader by reader: each reader of user input (the YAML loader and the override parser,
list files, images and labels, checkpoints, the paths a user gives) turns what Python and the libraries raise on
its input (digit limits, overflow, OSError, the decoders' own errors) into one PSPNetError naming the file or key;
nothing around the command converts the rest, so a bug elsewhere keeps its traceback."""
import dataclasses
import errno
import io
import os
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bounded import refusal
from src import cli, errors
from src.checkpoint.format import CheckpointError, read_checkpoint
from src.compat import load_any_config
from src.config import ConfigError, DataConfig, load_config
from src.data.dataset import DataError, read_image, read_list, read_raw_label
from src.data.labels import spec_of

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "demo_synthetic.yaml"
DIGITS = "7" * 5000  # past Python's 4,300-digit limit for int(str)


@contextmanager
def fifo_unblocked_after(path: Path, seconds: float = 8.0):
    """A real FIFO at ``path``; should a reader block on it, a writer opens it after ``seconds`` and closes it at
    once, so the reader gets end-of-file and the test fails on its clock instead of hanging the suite."""
    os.mkfifo(path)
    done = threading.Event()

    def unblock():
        if not done.wait(seconds):
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass

    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        yield lambda: time.monotonic() - started
    finally:
        done.set()
        thread.join()


def _one_line_exit_2(capsys, argv, *expected):
    status = cli.main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert status == 2 and len(lines) == 1, lines
    assert all(text in lines[0] for text in expected), lines[0]
    return lines[0]


def _deny(monkeypatch, path: Path) -> None:
    """Opening ``path`` fails with EACCES, as for another user's unreadable file (chmod 000 does not stop root)."""
    real = os.open

    def guarded(name, *args, **kwargs):
        if os.fspath(name) == os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(errors.os, "open", guarded)


# --- the YAML loader and the override parser -----------------------------------------------------------------------

@pytest.mark.parametrize("text,match", [
    (f"data:\n  classes: {DIGITS}\n", "key 'data.classes': a number of 5000 digits"),
    (f"data:\n  classes: !!int {DIGITS}\n", ":2: not valid YAML: a number written with 5000 characters"),
    (f"DATA:\n  classes: {DIGITS}\nTRAIN:\n  arch: psp\n", "key 'data.classes': a number of 5000 digits"),
    (f"DATA:\n  classes: !!int {DIGITS}\nTRAIN:\n  arch: psp\n", ":2: not valid YAML: a number written with"),
    ("train:\n  base_lr: !!int 0x" + "f" * 98 + "\n", "train.base_lr must be"),  # 1e118: named by its range
    ("data:\n  classes: !!int 0x" + "f" * 98 + "\n", "an integer of about 119 digits"),  # repr would refuse it
    ("train:\n  base_lr: !!float 1e99999\n", "train.base_lr must be a finite number"),
    ("data:\n  data_root: !!timestamp 2020-13-45\n", ":2: not valid YAML: cannot read the"),
    ("train:\n  base_lr: !!float abc\n", ":2: not valid YAML: cannot read the"),
])
def test_numbers_and_tags_past_pythons_limits_in_a_config_file(tmp_path, text, match):
    path = tmp_path / "big.yaml"
    path.write_text(text)
    refusal(lambda: load_any_config(path), ConfigError, path, match, peak_mb=16)


@pytest.mark.parametrize("opts,match", [
    (["data.classes", DIGITS], "command line (--opts): key 'data.classes': a number of 5000 digits"),
    ([f"classes={DIGITS}"], "key 'data.classes': a number of 5000 digits"),
    (["train.base_lr", "1" * 5000], "train.base_lr must be a finite number"),
    (["train.class_weights", f"[{DIGITS}, 1]"], "train.class_weights"),
])
def test_numbers_past_pythons_limits_in_overrides_name_the_key(opts, match):
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_config(DEMO, opts)


def test_a_5000_digit_override_on_the_command_line_is_one_line_exit_2(capsys):
    _one_line_exit_2(capsys, ["eval", "--config", str(DEMO), "--opts", "data.classes", DIGITS],
                     "key 'data.classes': a number of 5000 digits")


def test_a_folder_a_fifo_or_an_unreadable_file_as_config(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "config.yaml"
    folder.mkdir()
    _one_line_exit_2(capsys, ["eval", "--config", str(folder)], f"config file {folder} is a folder, not a file")
    with fifo_unblocked_after(tmp_path / "fifo.yaml") as elapsed:
        _one_line_exit_2(capsys, ["train", "--config", str(tmp_path / "fifo.yaml")], "fifo.yaml is not a regular "
                         "file (a FIFO, device or socket)")
        assert elapsed() < 5
    locked = tmp_path / "locked.yaml"
    locked.write_text(DEMO.read_text())
    _deny(monkeypatch, locked)
    _one_line_exit_2(capsys, ["eval", "--config", str(locked)], f"cannot read config file {locked}: Permission denied")


def test_a_bug_outside_the_readers_keeps_its_traceback(monkeypatch):
    """No catch-all around a command: only PSPNetError becomes the one line."""
    def broken(args):
        raise ValueError("a bug, not an input")

    monkeypatch.setitem(cli.COMMANDS, "eval", dataclasses.replace(cli.COMMANDS["eval"], run=broken))
    with pytest.raises(ValueError, match="a bug, not an input"):
        cli.main(["eval", "--config", str(DEMO)])


# --- list files ----------------------------------------------------------------------------------------------------

def test_a_list_file_that_is_a_folder_a_fifo_unreadable_or_not_text(tmp_path, monkeypatch):
    (tmp_path / "val.txt").mkdir()
    refusal(lambda: read_list(tmp_path / "val.txt", tmp_path), DataError, tmp_path / "val.txt", "is a folder", 16)
    with fifo_unblocked_after(tmp_path / "train.txt") as elapsed:
        refusal(lambda: read_list(tmp_path / "train.txt", tmp_path), DataError, tmp_path / "train.txt",
                "is not a regular file", 16)
        assert elapsed() < 5
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("a.jpg b.png\nd\xe9j\xe0.jpg d.png\n".encode("latin-1"))
    refusal(lambda: read_list(latin1, tmp_path), DataError, latin1, ":2: not UTF-8", 16)
    locked = tmp_path / "locked.txt"
    locked.write_text("a.jpg a.png\n")
    _deny(monkeypatch, locked)
    refusal(lambda: read_list(locked, tmp_path), DataError, locked, "cannot read list file", 16)


# --- images and labels: what the decoders raise on damaged files ---------------------------------------------------

def _encoded(array: np.ndarray, fmt: str) -> bytearray:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return bytearray(buffer.getvalue())


def test_damaged_images_and_labels_are_one_data_error_naming_the_file(tmp_path):
    gray = (np.arange(24 * 32) % 5).astype(np.uint8).reshape(24, 32)
    # A BMP declaring 1.1 million rows: Pillow's header check passes it (35 Mpixel), OpenCV's decoder refuses it
    # with its own cv2.error (its limit is 2^20 rows).
    bmp = _encoded(np.stack([gray] * 3, -1), "BMP")
    bmp[22:26] = struct.pack("<i", 1_100_000)
    (tmp_path / "tall.bmp").write_bytes(bmp)
    # A PNG whose chunk after the header is garbled: Pillow raises SyntaxError ("broken PNG file") on load.
    png = _encoded(gray, "PNG")
    png[37:41] = b"\x35\xa3\xd9\x61"
    (tmp_path / "broken.png").write_bytes(png)
    # A 16-bit TIFF whose StripOffsets tag is typed as a rational: Pillow raises TypeError while mapping it.
    tiff = _encoded(gray.astype(np.uint16), "TIFF")
    first = struct.unpack("<I", tiff[4:8])[0]
    for i in range(struct.unpack("<H", tiff[first:first + 2])[0]):
        entry = first + 2 + 12 * i
        if struct.unpack("<H", tiff[entry:entry + 2])[0] == 273:
            tiff[entry + 2:entry + 4] = struct.pack("<H", 10)
    (tmp_path / "rational.tif").write_bytes(tiff)
    (tmp_path / "folder.png").mkdir()
    spec = spec_of(DataConfig(dataset="synthetic", classes=6))

    refusal(lambda: read_image(str(tmp_path / "tall.bmp"), "val.txt:3"), DataError, tmp_path / "tall.bmp",
            "val.txt:3: cannot read image", 64)
    for name in ("broken.png", "rational.tif"):
        refusal(lambda: read_raw_label(str(tmp_path / name), spec, "val.txt:4"), DataError, tmp_path / name,
                "val.txt:4: cannot read label", 64)
    refusal(lambda: read_raw_label(str(tmp_path / "folder.png"), spec), DataError, tmp_path / "folder.png",
            "is not a regular file", 16)


# --- checkpoints (--ckpt, model.pretrained, resume) ----------------------------------------------------------------

def test_a_checkpoint_that_is_a_fifo_a_folder_or_unreadable_is_refused_before_reading(tmp_path, monkeypatch):
    with fifo_unblocked_after(tmp_path / "best.ckpt") as elapsed:
        refusal(lambda: read_checkpoint(tmp_path / "best.ckpt"), CheckpointError, tmp_path / "best.ckpt",
                "is not a regular file (a FIFO", 16)
        assert elapsed() < 5
    (tmp_path / "epoch_0001.ckpt").mkdir()
    refusal(lambda: read_checkpoint(tmp_path / "epoch_0001.ckpt"), CheckpointError, tmp_path / "epoch_0001.ckpt",
            "is a folder", 16)
    locked = tmp_path / "locked.ckpt"
    locked.write_bytes(b"\x0a\x00")
    _deny(monkeypatch, locked)
    refusal(lambda: read_checkpoint(locked), CheckpointError, locked, "cannot read checkpoint", 16)


@pytest.mark.slow
def test_eval_with_a_fifo_as_ckpt_exits_2_and_does_not_hang(tmp_path):
    from helpers import make_shapes, save_config, tiny_config

    root = make_shapes(tmp_path / "data", num=2)
    config = save_config(tiny_config(root, tmp_path / "run"), tmp_path / "tiny.yaml")
    os.mkfifo(tmp_path / "model.ckpt")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "GLOG_v": "3"}
    try:
        proc = subprocess.run([sys.executable, "-m", "src", "eval", "--config", str(config), "--ckpt",
                               str(tmp_path / "model.ckpt"), "--results-dir", str(tmp_path / "results")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("eval blocked on a FIFO given as --ckpt")
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "model.ckpt" in lines[0] and "not a regular file" in lines[0], lines[0]
