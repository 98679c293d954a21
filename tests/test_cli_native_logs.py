"""src.cli, its native logs: device.quiet reaches MindSpore as GLOG_v (native_logs), set before MindSpore's first
import (it reads GLOG_v only then); every command reads its config before that import, and a user's GLOG_v wins."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.cli import native_logs

REPO = Path(__file__).resolve().parents[1]
PLUGIN_LINES = ("is not available", "Load dynamic library")  # what mindspore.hal.is_available prints on CPU


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "GLOG_v"}
    env.update(ONEDNN_MAX_CPU_ISA="AVX2", **extra)
    return env


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(**env), capture_output=True, text=True,
                          timeout=120)


def test_native_logs_follows_quiet_unless_the_user_set_glog_v(monkeypatch):
    monkeypatch.delenv("GLOG_v", raising=False)
    ours = argparse.Namespace(user_glog_v=False)
    native_logs(ours, quiet=True)
    assert os.environ["GLOG_v"] == "3"
    native_logs(ours, quiet=False)  # MindSpore's own default (warnings) again
    assert "GLOG_v" not in os.environ
    monkeypatch.setenv("GLOG_v", "1")
    native_logs(argparse.Namespace(user_glog_v=True), quiet=True)
    assert os.environ["GLOG_v"] == "1"
    native_logs(argparse.Namespace(), quiet=False)  # no note from main (a direct call): nothing changes
    assert os.environ["GLOG_v"] == "1"


def test_the_skeleton_and_the_config_readers_do_not_import_mindspore():
    proc = _python("import sys, src.cli, src.config, src.compat\n"
                   "import src.system.device, src.system.logging_setup, src.system.distributed\n"
                   "src.cli.build_parser()\n"
                   "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mindspore'))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# Each command that reads a config, with its required arguments; the config loader is replaced by one that
# notes whether MindSpore was imported already and stops the command.
COMMAND_LINES = {
    "train": [], "eval": ["--ckpt", "m.ckpt"], "export": [], "preprocess": ["--out", "w"],
    "postprocess": ["--work", "w"], "flow310": ["--model", "m.mindir", "--work", "w"],
    "predict": ["--model", "m.ckpt", "--input", "x.png", "--out", "o"], "op-inventory": [], "context-demo": [],
}
PROBE = """
import json, sys
import src.compat, src.config
from src.cli import COMMANDS, main
from src.errors import PSPNetError
seen = {}
def stop(*args, **kwargs):
    seen[command] = "mindspore" in sys.modules
    raise PSPNetError("stopped by the test")
src.compat.load_any_config = src.config.load_config = stop
for command, extra in json.loads(sys.argv[1]).items():
    main([command, "--config", "c.yaml", *extra])
print(json.dumps(seen))
"""


def test_every_command_reads_its_config_before_mindspore_is_imported():
    import json

    from src.cli import build_parser, COMMANDS

    takes_config = {name for name in COMMANDS if "--config" in build_parser(name)._option_string_actions}
    assert takes_config == set(COMMAND_LINES)  # a new command with --config is listed here too
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(COMMAND_LINES)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(seen) == set(COMMAND_LINES)
    assert [name for name, imported in seen.items() if imported] == []


def _eval(tmp_path, *opts, **env) -> str:
    """``eval`` without data: it imports MindSpore, sets up the device, then stops at the missing list file."""
    proc = subprocess.run([sys.executable, "-m", "src", "eval", "--config", str(REPO / "config/demo_synthetic.yaml"),
                           "--ckpt", str(tmp_path / "none.ckpt"), "--results_dir", str(tmp_path / "r"), "--overwrite",
                           "--opts", "device.target", "CPU", "data.data_root", str(tmp_path / "none"), *opts],
                          cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "list file not found" in proc.stderr, proc.stderr
    assert "device CPU" in proc.stderr  # the device set-up ran, so MindSpore looked for its plugins
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_device_quiet_silences_mindspores_plugin_lines_and_false_shows_them(tmp_path):
    quiet = _eval(tmp_path)
    assert not [line for line in quiet.splitlines() if any(p in line for p in PLUGIN_LINES)], quiet
    loud = _eval(tmp_path, "device.quiet", "false")
    if not any(p in loud for p in PLUGIN_LINES):  # shown on CPU-only builds (measured: 8 lines on stderr)
        probe = _python("import mindspore.hal as hal\nfor t in ('Ascend', 'GPU', 'CPU'): hal.is_available(t)")
        assert not any(p in probe.stderr for p in PLUGIN_LINES), "MindSpore prints them; device.quiet false hid them"
        pytest.skip("this MindSpore finds every plugin: there are no plugin lines to show")
    assert any(p in _eval(tmp_path, GLOG_v="2") for p in PLUGIN_LINES)  # the user's GLOG_v wins over quiet
