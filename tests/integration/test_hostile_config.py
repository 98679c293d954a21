"""Hostile and careless config files: each is refused with one line naming the file (and key or line),
in bounded time and memory, before anything is built from it."""
import pytest

from bounded import refusal
from src import cli
from src.config import MAX_CONFIG_BYTES, ConfigError, load_config


def _refused(path, match, peak_mb=64):
    return refusal(lambda: load_config(path), ConfigError, path, match, peak_mb, max_s=20)


def test_nested_alias_bomb_is_refused_before_expansion(tmp_path):
    # Nine levels of nine aliases: 9**9 (387 million) values once expanded, from a file of under 1 KB.
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("data: {classes: *a9}")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1024
    _refused(path, "expands to more than")


def test_alias_bomb_as_a_wrongly_typed_value_gives_a_short_message(tmp_path):
    # Within the expansion cap (3 * 9**4 values) but still far too big to print in a message.
    levels = ["&x0 [1, 2, 3]"] + [f"&x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]" for i in range(1, 5)]
    path = tmp_path / "typed.yaml"
    path.write_text("data:\n  dataset: [" + ", ".join(levels) + "]\n")
    message = _refused(path, "key 'data.dataset' must be str, got list")
    assert len(message) < 400


def test_yaml_syntax_error_is_one_line_with_its_line_number(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("data:\n  classes: 5\n  dataset: [voc\n")
    message = _refused(path, "broken.yaml:4: not valid YAML")
    assert "\n" not in message


def test_oversized_config_is_refused_from_its_size(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(50 * 2**20)  # 50 MB (sparse): must not be read, let alone parsed
    _refused(path, f"at most {MAX_CONFIG_BYTES}", peak_mb=2)


def test_non_utf8_config_names_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("data:\n  dataset: voc2012\n  class_names: [caf\u00e9]\n".encode("latin-1"))
    _refused(path, "latin1.yaml:3: not UTF-8 (byte 0xe9")


def test_repeated_section_or_key_names_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("data:\n  classes: 5\ntrain:\n  epochs: 2\ndata:\n  classes: 7\n")
    _refused(path, "key 'data' appears twice (lines 1 and 5)")
    path.write_text("train:\n  epochs: 2\n  base_lr: 0.1\n  epochs: 3\n")
    _refused(path, "key 'epochs' appears twice (lines 2 and 4)")


def test_deep_nesting_is_refused(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("data: " + "[" * 5000 + "]" * 5000 + "\n")
    _refused(path, "nested too deeply")


@pytest.mark.parametrize("section,key,value", [
    ("data", "classes", 100000000), ("eval", "batch_size", 0), ("eval", "base_size", 0), ("eval", "test_h", -5),
    ("data", "ignore_label", -1), ("data", "ignore_label", 256), ("data", "workers", -1), ("eval", "scales", [1.0, 0.0]),
    ("train", "seed", -1), ("train", "rotate_prob", 1.5), ("data", "std", [1.0, 0.0, 1.0]), ("device", "device_id", -2),
])
def test_numbers_out_of_range_name_the_key(tmp_path, section, key, value):
    path = tmp_path / "range.yaml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    _refused(path, f"{section}.{key} must be")


def test_cli_reports_a_hostile_config_in_one_line_with_exit_2(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text("data:\n  classes: 5\ndata:\n  classes: 7\n")
    status = cli.main(["eval", "--config", str(path), "--ckpt", str(tmp_path / "none.ckpt")])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "appears twice (lines 1 and 3)" in lines[0]
