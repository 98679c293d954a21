"""src.cli, the skeleton every command runs in: the parsers (one per command and ``python -m src`` with them all,
the model zoo's and semseg's argument spellings), the device flags as config overrides, which model a command uses,
a semseg .pth converted only when given one, and main's exit statuses (0, the command's own, 2 with one error line
for a PSPNetError) with its log files closed whatever happened. The commands' bodies are tested with the modules
they wire together; GLOG_v and MindSpore's import order are tests/test_cli_native_logs.py."""
import argparse
import contextlib
import os
import tempfile
from types import SimpleNamespace

import pytest

from src.cli import COMMANDS, Command, _model_path, _pth_as_checkpoint, bind_to_launcher, build_parser, \
    device_overrides, main
from src.config import ConfigError
from src.errors import PSPNetError


def test_python_m_src_offers_every_command_and_each_has_its_own_parser():
    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(COMMANDS)
    a = build_parser("rank-table", prog="rank_table.py").parse_args(["rt.json", "1"])
    assert (a.command, a.table, a.server) == ("rank-table", "rt.json", "1")
    assert top.parse_args(["rank-table", "rt.json"]).server is None
    with pytest.raises(SystemExit):
        top.parse_args(["no-such-command"])


def test_the_zoos_and_semsegs_spellings_reach_the_same_arguments():
    a = build_parser("eval").parse_args(["--yaml_path", "c.yaml", "--ckpt_file", "m.ckpt", "--device-target", "CPU",
                                         "--multi-scale", "TEST.model_path", "x.pth"])
    assert (a.config, a.ckpt, a.device_target, a.multi_scale) == ("c.yaml", "m.ckpt", "CPU", True)
    assert a.overrides == ["TEST.model_path", "x.pth"] and a.opts == []
    b = build_parser("eval").parse_args(["--config", "c.yaml", "--opts", "eval.batch_size=2", "data.workers", "1"])
    assert b.opts == ["eval.batch_size=2", "data.workers", "1"] and b.ckpt is None
    with pytest.raises(SystemExit):  # --config is required where a command has no default config
        build_parser("eval").parse_args([])
    assert build_parser("op-inventory").parse_args([]).config == "config/voc2012_pspnet50.yaml"


def test_device_flags_become_device_overrides():
    assert device_overrides(argparse.Namespace(device_target="GPU", device_id=3)) == \
        ["device.target", "GPU", "device.device_id", "3"]
    assert device_overrides(argparse.Namespace(device_target=None, device_id=0)) == ["device.device_id", "0"]
    assert device_overrides(argparse.Namespace(device_target=None, device_id=None)) == []
    assert device_overrides(argparse.Namespace()) == []  # a command without the device flags


def test_the_model_is_the_flag_else_the_configs_else_one_clear_error():
    cfg = SimpleNamespace(eval=SimpleNamespace(model_path="from_config.ckpt"))
    assert _model_path(argparse.Namespace(ckpt="flag.ckpt"), cfg) == "flag.ckpt"
    assert _model_path(argparse.Namespace(ckpt=None), cfg) == "from_config.ckpt"
    with pytest.raises(ConfigError, match="no model to use: pass --ckpt PATH"):
        _model_path(argparse.Namespace(ckpt=None), SimpleNamespace(eval=SimpleNamespace(model_path="")))


def test_only_a_pth_is_converted_and_its_temporary_folder_goes_with_the_stack(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    with contextlib.ExitStack() as stack:
        for name in ("m.ckpt", "m.mindir", "m.onnx", "pth_in_the_name.ckpt"):
            assert _pth_as_checkpoint(name, stack) == name
        assert os.listdir(tmp_path / "tmp") == []  # nothing was made for them
    with pytest.raises(PSPNetError, match="none.PTH"):
        with contextlib.ExitStack() as stack:
            _pth_as_checkpoint(str(tmp_path / "none.PTH"), stack)  # a .pth (any case) is converted: here, missing
    assert os.listdir(tmp_path / "tmp") == []


def test_no_launcher_variables_means_no_launcher_to_bind_to():
    assert bind_to_launcher({}, watch=False) is None
    assert bind_to_launcher({"UNRELATED": "1"}, watch=False) is None


def _fake(monkeypatch, run):
    def add_args(p):
        p.add_argument("--value", default="none")

    monkeypatch.setitem(COMMANDS, "fake", Command("a command of the test", add_args, run))


def test_main_returns_the_commands_status_and_0_for_none(monkeypatch, root_logging):
    seen = []
    _fake(monkeypatch, lambda a: seen.append(a.value))
    assert main(["fake", "--value", "x"]) == 0
    _fake(monkeypatch, lambda a: 1)
    assert main(["--value", "y"], command="fake", prog="fake.py") == 1
    assert seen == ["x"]


def test_a_pspnet_error_is_status_2_and_one_error_line(monkeypatch, root_logging, capsys):
    def fails(a):
        raise ConfigError("c.yaml: key 'data.classes' must be int")

    _fake(monkeypatch, fails)
    assert main(["fake"]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error:" in line] == [line for line in err.splitlines() if line]
    assert err.count("\n") == 1 and err.rstrip().endswith("error: c.yaml: key 'data.classes' must be int")


def test_other_exceptions_are_not_swallowed_and_log_files_are_closed_anyway(monkeypatch, root_logging, tmp_path):
    from src.system.logging_setup import add_log_stream

    streams = []

    def breaks(a):
        streams.append(open(tmp_path / "cmd.log", "a", encoding="utf-8"))
        add_log_stream(streams[0])
        raise KeyError("a bug, not a user error")

    _fake(monkeypatch, breaks)
    with pytest.raises(KeyError):
        main(["fake"])
    assert streams[0].closed
    assert not [h for h in root_logging.handlers if getattr(h, "_pspnet_log_file", False)]


def test_main_notes_a_users_glog_v_and_defaults_to_quiet(monkeypatch, root_logging):
    seen = {}
    _fake(monkeypatch, lambda a: seen.update(user=a.user_glog_v, glog=os.environ.get("GLOG_v")))
    monkeypatch.delenv("GLOG_v", raising=False)
    main(["fake"])
    assert seen == {"user": False, "glog": "3"}
    monkeypatch.setenv("GLOG_v", "1")
    main(["fake"])
    assert seen == {"user": True, "glog": "1"}


def test_a_commands_log_line_names_its_log_file(tmp_path, caplog):
    """The command's "log file:" line gives the file's path (it once gave the descriptor's number, "3")."""
    import logging

    from src.cli import _command_folder
    from src.system.logging_setup import close_log_files

    try:
        with caplog.at_level(logging.INFO, logger="src.cli"):
            with _command_folder(tmp_path / "out", "--out", "test", False, log="eval.log") as folder:
                assert folder is not None
    finally:
        close_log_files()
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("log file:")]
    assert len(line) == 1 and str(tmp_path / "out") in line[0] and "eval" in line[0]
