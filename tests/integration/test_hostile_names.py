"""A name chosen by an attacker, carried by every kind of file the project reads: a .pth key and import, a
checkpoint entry, a list file's path, a YAML key and value, an ONNX operator, a file in predict's input folder.

Each reader refuses the file with one message that names it; the name reaches the message only through
src.errors.shown (escaped, bounded), so no escape sequence reaches the terminal, no forged line reaches the log,
and the message stays short. A reader that formats such a name itself fails here.
"""
import struct
from pathlib import Path

import numpy as np
import pytest

from src.errors import PSPNetError, has_control_chars, shown

ROOT = Path(__file__).resolve().parents[2]
EVIL = "evil\x1b[2J\r\nFAKE LINE: all good\x07"  # clears the screen, then forges a log line and rings the bell
LONG = EVIL + "x" * 5000


def _checked(message: str, source) -> str:
    assert str(source) in message, message
    assert not has_control_chars(message.replace("\n  ", "  ")), repr(message)  # list problems: "\n  " each
    assert not any(line.startswith("FAKE") for line in message.splitlines())
    assert "evil\\x1b[2J" in message, message  # the name is shown, escaped
    assert len(message) < 2000, len(message)
    return message


def _refused(call, source) -> str:
    with pytest.raises(PSPNetError) as info:
        call()
    return _checked(str(info.value), source)


def test_shown_escapes_and_bounds_without_reading_the_whole_text():
    assert shown("layer0.0.weight") == "layer0.0.weight"
    text = shown(LONG)
    assert len(text) == 100 and text.endswith("...") and text.startswith("evil\\x1b[2J\\r\\nFAKE")
    assert shown("a" * 100) == "a" * 100 and shown("a" * 101) == "a" * 97 + "..."
    assert has_control_chars("a\x85b") and has_control_chars("\x7f") and not has_control_chars("caf\u00e9 \u00a0x")


def test_a_pth_key(tmp_path):
    from pth_writer import write_pth
    from src.convert.weights import convert_file

    layer3 = {f"layer3.{i}.conv1.weight": np.ones((1, 1, 1, 1), np.float32) for i in range(6)}  # ResNet-50's
    path = tmp_path / "keys.pth"
    write_pth({**layer3, LONG: np.ones(2, np.float32)}, str(path))
    _refused(lambda: convert_file(str(path), str(tmp_path / "out.ckpt"), kind="semseg_backbone"), path)
    assert not (tmp_path / "out.ckpt").exists()


def test_a_pth_import(tmp_path):
    from pth_writer import Raw, write_pth
    from src.convert.pth import load_pth

    module = LONG.encode()
    raw = Raw(b"X" + struct.pack("<I", len(module)) + module + b"\x94\x8c\x06system\x94\x93")  # STACK_GLOBAL
    path = tmp_path / "import.pth"
    write_pth({"w": np.ones(2, np.float32), "evil": raw}, str(path))
    _refused(lambda: load_pth(str(path)), path)


def test_a_checkpoint_entry(tmp_path):
    from mindspore import nn
    from src.checkpoint.files import arrays_to_entries, load_checkpoint_strict, save_checkpoint_atomic

    net = nn.Dense(2, 2)
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    path = save_checkpoint_atomic(arrays_to_entries({**params, LONG: np.ones(1, np.float32)}), tmp_path / "w.ckpt")
    _refused(lambda: load_checkpoint_strict(net, str(path)), path)


def test_a_list_file_path(tmp_path):
    from src.data.dataset import read_list

    listing = tmp_path / "train.txt"
    listing.write_text(f"{LONG}.jpg {LONG}.png\n", encoding="utf-8")
    _refused(lambda: read_list(listing, tmp_path), listing)


@pytest.mark.parametrize("where", ["key", "value", "section"])
def test_a_yaml_key_or_value(tmp_path, where):
    import yaml
    from src.config import load_config

    text = {"key": {"model": {LONG: 1}}, "value": {"data": {"data_root": LONG}}, "section": {LONG: {}}}[where]
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(text), encoding="utf-8")
    _refused(lambda: load_config(str(path)), path)


def test_an_onnx_operator(tmp_path):
    import onnx
    from onnx import TensorProto as T, helper
    from src.runtime.backends import make_predict

    io = [helper.make_tensor_value_info(n, T.FLOAT, [2, c, 9, 9]) for n, c in (("x", 3), ("y", 6))]
    graph = helper.make_graph([helper.make_node(LONG, ["x"], ["y"])], "g", io[:1], io[1:])
    path = tmp_path / "op.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(path))
    _refused(lambda: make_predict("onnx", str(path), None, 6, 2, (9, 9)), path)


def test_a_file_name_in_predicts_input_folder(tmp_path):
    from src.deploy.predict import collect_images

    (tmp_path / "ok.png").write_bytes(b"")
    (tmp_path / (EVIL.replace("\n", "") + ".png")).write_bytes(b"")  # a file name cannot hold "/"; "\n" it can
    (tmp_path / (EVIL + ".png")).write_bytes(b"")
    _refused(lambda: collect_images([str(tmp_path)]), tmp_path)


def test_only_src_errors_escapes_text_for_messages():
    """The one owner: no other module of src/ escapes or cuts file-derived text on its own way."""
    owners = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")
                    if "isprintable" in p.read_text(encoding="utf-8"))
    assert owners == ["src/errors.py"]


def test_a_symbolic_link_target(tmp_path):
    from src.outputs.atomic import ensure_output_file

    link = tmp_path / "out.ckpt"
    link.symlink_to(EVIL + ("/" + "x" * 200) * 15)  # dangling; its target is the attacker's text
    _refused(lambda: ensure_output_file(str(link), "--dst"), link)


@pytest.mark.parametrize("sep", ["\x1c", "\x0b", "\x85", "\u2028"])
def test_a_list_line_is_not_cut_where_python_would_cut_it(tmp_path, sep):
    """str.splitlines() and str.split() cut at these too: the line is refused whole, shown escaped (\\u2028 is no
    control character: its line is refused for its three columns), and the line numbers stay the file's."""
    from src.data.dataset import DataError, read_list

    listing = tmp_path / "val.txt"
    listing.write_text(f"ok.jpg ok.png\r\nimg{sep}x.jpg lab.png\nz.jpg z.png\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_list(listing, tmp_path)
    lines = str(info.value).splitlines()
    assert all(not has_control_chars(line) for line in lines)
    problems = [line.strip() for line in lines[1:]]
    assert all(p.startswith(f"{listing}:") for p in problems)
    assert any(p.startswith(f"{listing}:2: ") and "img\\" in p for p in problems)  # line 2, escaped
    assert not any(p.startswith(f"{listing}:4:") for p in problems)  # no line was split in two


def test_an_allowed_unused_checkpoint_entry_in_the_log(tmp_path, caplog):
    """Evaluation allows unused aux.* entries and lists them in the log: a forged log line must not get in."""
    from mindspore import nn
    from src.checkpoint.files import arrays_to_entries, load_checkpoint_strict, save_checkpoint_atomic

    net = nn.Dense(2, 2)
    params = {p.name: p.asnumpy() for p in net.get_parameters()}
    path = save_checkpoint_atomic(arrays_to_entries({**params, "aux." + LONG: np.ones(1, np.float32)}),
                                  tmp_path / "w.ckpt")
    caplog.set_level("INFO")
    load_checkpoint_strict(net, str(path), allow_unexpected=("aux.",))
    line = next(r.getMessage() for r in caplog.records if "not used by this network" in r.getMessage())
    _checked(line, path)


def test_an_export_sidecar_field(tmp_path):
    import json
    from src.runtime.backends import make_predict

    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    (tmp_path / "m.onnx.json").write_text(json.dumps({"input_shape": [2, 3, 9, 9], "output": LONG, "classes": 6}))
    _refused(lambda: make_predict("onnx", str(model), None, 6, 2, (9, 9)), model)


def test_a_310_flow_meta_file(tmp_path):
    from src.deploy.offline import check_meta

    path = tmp_path / "meta.json"
    meta = {"protocol": {}, "images": [], "input_shape": [LONG]}
    _refused(lambda: check_meta(meta, path), path)
    protocol = {"classes": 6, "crop_h": 9, "crop_w": 9, "base_size": 12, "batch_size": 1, "scales": [1.0],
                "flip": False, "stride_rate": 0.5, "mean": [1, 2, 3], "std": [1, 1, 1], "max_image_gb": 1.0}
    meta = {"protocol": protocol, "images": [{"name": EVIL, "scales": []}], "input_shape": [1, 3, 9, 9]}
    with pytest.raises(PSPNetError, match=r"images\[0\] needs a plain file name"):
        check_meta(meta, path)
    for key, value in [("classes", EVIL), ("scales", [EVIL]), ("flip", EVIL)]:  # a class count sizes the matrix
        _refused(lambda: check_meta({**meta, "protocol": {**protocol, key: value}}, path), path)
    with pytest.raises(PSPNetError, match=r"protocol\.classes must be an integer from 1 to 255, got 6\.5"):
        check_meta({**meta, "protocol": {**protocol, "classes": 6.5}}, path)
    with pytest.raises(PSPNetError, match=r"protocol\.classes must be .*, got nothing"):
        check_meta({**meta, "protocol": {k: v for k, v in protocol.items() if k != "classes"}}, path)
    entry = {"name": "a", "image": "a.png", "label": None, "h": 9, "w": 9, "scales": []}
    check_meta({**meta, "images": [entry]}, path)
    with pytest.raises(PSPNetError, match=r"images\[0\] \(a\): needs the image's path"):
        check_meta({**meta, "images": [{**entry, "h": "9"}]}, path)


def test_a_duplicate_yaml_key_and_an_override_without_value(tmp_path):
    from src.config import load_config, parse_overrides

    path = tmp_path / "twice.yaml"
    key = EVIL.replace("\n", "") + "x" * 100  # one YAML line
    path.write_text(f'model:\n  "{key}": 1\n  "{key}": 2\n'.replace("\x1b", "\\e").replace("\r", "\\r")
                    .replace("\x07", "\\a"), encoding="utf-8")
    message = _refused(lambda: load_config(str(path)), path)
    assert "appears twice" in message
    with pytest.raises(PSPNetError) as info:
        parse_overrides(["data.classes", "3", LONG])
    _checked(str(info.value), "has no value")


def test_an_ignored_key_of_a_zoo_config_in_the_log(tmp_path, caplog):
    from src.compat import load_foreign

    caplog.set_level("INFO")
    load_foreign({"TRAIN": {"art_" + LONG: 1, "art_base_lr": 0.01}}, str(tmp_path / "zoo.yaml"))
    line = next(r.getMessage() for r in caplog.records if "ignored" in r.getMessage())
    _checked(line, tmp_path / "zoo.yaml")
