"""The shell launchers work from any folder: relative paths are resolved before they change directory.

They run with DRY_RUN=1, which prints the final command instead of starting training.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dry(args, cwd):
    proc = subprocess.run(["bash", *args], cwd=str(cwd), capture_output=True, text=True,
                          env={**os.environ, "DRY_RUN": "1"})
    return proc


@pytest.fixture
def elsewhere(tmp_path):
    (tmp_path / "cfgs").mkdir()
    shutil.copy(ROOT / "config" / "demo_synthetic.yaml", tmp_path / "cfgs" / "my.yaml")
    (tmp_path / "m.onnx").write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("script,args", [("run_standalone_train.sh", ["cfgs/my.yaml", "0"]),
                                         ("run_eval.sh", ["cfgs/my.yaml", "m.onnx", "onnx"]),
                                         ("run_distribute_train_cpu.sh", ["cfgs/my.yaml", "2"]),
                                         ("run_distribute_train.sh", ["cfgs/my.yaml", "8", "2", "1", "10.0.0.1"])])
def test_relative_paths_resolved_from_the_callers_folder(elsewhere, script, args):
    proc = _dry([str(ROOT / "scripts" / script), *args], elsewhere)
    assert proc.returncode == 0, proc.stderr
    assert f"--config {elsewhere / 'cfgs' / 'my.yaml'}" in proc.stdout
    if script == "run_eval.sh":
        assert f"--ckpt {elsewhere / 'm.onnx'}" in proc.stdout


def test_missing_config_named_as_given(elsewhere):
    proc = _dry([str(ROOT / "scripts" / "run_standalone_train.sh"), "cfgs/nope.yaml"], elsewhere)
    assert proc.returncode == 2 and "config not found: cfgs/nope.yaml" in proc.stderr


def test_rank_table_launch_takes_ranks_from_this_servers_entry(elsewhere):
    table = {"server_list": [{"server_id": "10.0.0.1", "device": [{"device_id": "0", "rank_id": "0"},
                                                                  {"device_id": "1", "rank_id": "1"}]},
                             {"server_id": "10.0.0.2", "device": [{"device_id": "0", "rank_id": "2"},
                                                                  {"device_id": "1", "rank_id": "3"}]}]}
    (elsewhere / "rt.json").write_text(json.dumps(table))
    for server in ("1", "10.0.0.2"):
        proc = _dry([str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", "rt.json", "cfgs/my.yaml",
                     server], elsewhere)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.strip().splitlines()
        assert [line.split()[:3] for line in lines] == [["DEVICE_ID=0", "RANK_ID=2", "RANK_SIZE=4"],
                                                       ["DEVICE_ID=1", "RANK_ID=3", "RANK_SIZE=4"]]
    too_far = _dry([str(ROOT / "scripts" / "run_distribute_train.sh"), "--rank-table", "rt.json", "cfgs/my.yaml",
                    "2"], elsewhere)
    assert too_far.returncode == 2 and "server index 2, but the table has 2 server(s)" in too_far.stderr


def test_the_op_inventory_command_checks_its_arguments():
    """`python -m src.tools.op_inventory` once printed nothing and exited 0 whatever its arguments; the one way in
    is now `python -m src op-inventory` (library modules carry no `__main__` block)."""
    proc = subprocess.run([sys.executable, "-m", "src", "op-inventory", "--help"], cwd=str(ROOT),
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--allowlist" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "src", "op-inventory", "--no-such-flag"], cwd=str(ROOT),
                         capture_output=True, text=True)
    assert bad.returncode == 2


def test_the_documented_module_commands_still_run(tmp_path):
    """The design's `python -m src.data.synthetic --out DIR --task shapes --num N --size S` (and the earlier docs'
    `python -m src.data.prepare ...`) run the commands: entry files beside the library modules, not a silent exit."""
    env = {**os.environ, "GLOG_v": "3", "PYTHONPATH": str(ROOT)}
    made = subprocess.run([sys.executable, "-m", "src.data.synthetic", "--out", str(tmp_path / "d"), "--task", "shapes",
                           "--num", "3", "--size", "48"], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    assert (tmp_path / "d" / "info.json").is_file() and (tmp_path / "d" / "train.txt").is_file()
    helped = subprocess.run([sys.executable, "-m", "src.data.prepare", "--help"], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "folders" in helped.stdout and "check" in helped.stdout
