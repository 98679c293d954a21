"""src.errors: the error classes every entry point catches, how a message shows text read from a file (control
characters escaped, length capped: shown, shown_names, has_control_chars), and read_user_file, which turns whatever
the operating system answers for a file the user named (missing, a folder, a FIFO, too big) into one error naming
it."""
import os

import pytest

from src.errors import (EXIT_USER_ERROR, PSPNetError, TrainingError, has_control_chars, read_user_file, shown,
                        shown_names)


class _Refused(PSPNetError):
    """The error class a caller passes to read_user_file."""


def test_every_deliberate_error_is_a_pspnet_error_with_exit_status_2():
    assert issubclass(TrainingError, PSPNetError) and issubclass(TrainingError, RuntimeError)
    assert EXIT_USER_ERROR == 2


@pytest.mark.parametrize("text", ["\x1b[31m", "a\nb", "tab\there", "\x7f", "\x85", "\x9b2J"])
def test_control_characters_are_found(text):
    assert has_control_chars(text)


@pytest.mark.parametrize("text", ["", "images/2007_000032.jpg", "caf\u00e9 r\u00e9sum\u00e9", "\u00a0nbsp",
                                  "\u65e5\u672c"])
def test_printable_text_has_no_control_characters(text):
    assert not has_control_chars(text)


def test_shown_escapes_what_a_terminal_would_act_on_and_keeps_the_rest():
    assert shown("backbone.layer1.0.conv1.weight") == "backbone.layer1.0.conv1.weight"
    assert shown(3) == "3"
    escaped = shown("evil\x1b[2J\nforged line")
    assert not has_control_chars(escaped) and "\\x1b" in escaped and "\\n" in escaped
    assert "\n" not in escaped


@pytest.mark.parametrize("text", ["x" * 1000, "\x1b" * 1000, "ab\n" * 500])
def test_shown_caps_the_length_and_marks_the_cut(text):
    out = shown(text, limit=40)
    assert len(out) == 40 and out.endswith("...") and not has_control_chars(out)
    assert len(shown(text, limit=10_000)) > 40  # the cap is the caller's limit, not a fixed one


def test_shown_names_lists_the_first_few_and_counts_the_rest():
    assert shown_names(["a", "b"]) == "a, b"
    out = shown_names([f"k{i}" for i in range(10)], n=3)
    assert out.startswith("k0, k1, k2") and out.endswith("(7 more)") and "k3" not in out
    assert "\n" not in shown_names(["one\nline", "two"]) and "\\n" in shown_names(["one\nline"])
    assert all(len(part) <= 20 for part in shown_names(["y" * 100] * 3, limit=20).split(", "))


def test_read_user_file_returns_the_bytes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"data:\n  classes: 5\n")
    assert read_user_file(path, "config file", _Refused, limit=100) == b"data:\n  classes: 5\n"
    assert read_user_file(str(path), "config file", _Refused, limit=19) == b"data:\n  classes: 5\n"  # limit inclusive


def test_a_missing_file_is_one_error_of_the_callers_class_with_the_hint(tmp_path):
    path = tmp_path / "none.txt"
    with pytest.raises(_Refused) as info:
        read_user_file(path, "list file", _Refused, limit=100, missing_hint="; run prepare first")
    assert str(info.value) == f"list file not found: {path}; run prepare first"


def test_a_folder_and_a_fifo_are_refused_without_reading(tmp_path):
    with pytest.raises(_Refused, match="config file .* is a folder, not a file"):
        read_user_file(tmp_path, "config file", _Refused, limit=100)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # a reader of a FIFO without a writer would block forever
    with pytest.raises(_Refused, match="not a regular file"):
        read_user_file(fifo, "config file", _Refused, limit=100)


def test_a_file_over_the_limit_is_refused_from_its_size(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # sparse: refused before a byte is read
    with pytest.raises(_Refused, match=f"{path}: {1 << 30} bytes is more than a list file holds \\(at most 10\\)"):
        read_user_file(path, "list file", _Refused, limit=10)
    with pytest.raises(_Refused) as info:
        read_user_file(path, "list file", _Refused, limit=10, too_big="{path} has {size} > {limit}")
    assert str(info.value) == f"{path} has {1 << 30} > 10"


def test_a_file_that_declares_no_size_is_read_up_to_the_limit():
    """/proc files declare 0 bytes: they are read in parts, and the limit still holds."""
    status = read_user_file("/proc/self/status", "status file", _Refused, limit=1 << 20)
    assert b"VmHWM" in status
    with pytest.raises(_Refused, match="bytes is more than a status file holds"):
        read_user_file("/proc/self/status", "status file", _Refused, limit=16)


def test_a_name_the_system_cannot_take_is_one_error(tmp_path):
    with pytest.raises(_Refused, match="cannot read config file"):
        read_user_file(str(tmp_path / "a\0b"), "config file", _Refused, limit=100)
    with pytest.raises(_Refused, match="cannot read config file"):
        read_user_file(str(tmp_path / ("n" * 5000)), "config file", _Refused, limit=100)
    with pytest.raises(_Refused, match="cannot read config file .*escape") as info:
        read_user_file(str(tmp_path / "escape\x1b\0"), "config file", _Refused, limit=100)
    assert not has_control_chars(str(info.value))
