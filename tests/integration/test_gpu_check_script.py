"""The GPU fallback check (scripts/check_gpu.sh), run here with TARGET=CPU: the script's own logic, end to end,
and scripts/setup_gpu.sh's driver check (the comparison's verdicts are unit tests in tests/tools/test_target_check.py).
No GPU runs in CI; README says what was run where."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from helpers import TINY, TINY_DEPTH

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_check_gpu_script_end_to_end_on_cpu(tmp_path):
    env = {**os.environ, "TARGET": "CPU", "STEPS": "2", "GLOG_v": "3"}
    out = tmp_path / "chk"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_gpu.sh"), str(out), "--", "model.layers",
                           str(TINY_DEPTH), "model.width_divisor", str(TINY), "train.batch_size", "2",
                           "train.crop_h", "33", "train.crop_w", "33"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["agree"] and result["steps"] == 2 and result["logits_max_abs_diff"] == 0
    again = subprocess.run(["bash", str(ROOT / "scripts" / "check_gpu.sh"), str(out)], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr  # never overwrites a previous check


def _host_has_driver() -> bool:
    out = subprocess.run(["bash", "-c", "ldconfig -p 2>/dev/null"], capture_output=True, text=True).stdout
    return "libcuda.so.1" in out


@pytest.mark.skipif(_host_has_driver(), reason="this host has an NVIDIA driver")
def test_setup_gpu_checks_the_driver_before_downloading():
    """Without libcuda.so.1 the ~2 GB of CUDA wheels are not fetched: exit 1 with one error line (it used to
    install them and end with a warning and exit 0)."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "setup_gpu.sh")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "libcuda.so.1" in errors[0] and "nothing was downloaded" in errors[0]
    assert "installing" not in proc.stdout


def test_check_gpu_finds_out_first_that_no_gpu_is_usable(tmp_path):
    env = {**os.environ, "TARGET": "GPU", "GLOG_v": "3"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_gpu.sh"), str(tmp_path / "chk")], env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 0:
        pytest.skip("a GPU is usable here")
    assert proc.returncode == 2 and "finds no usable GPU" in proc.stderr and "nothing was run" in proc.stderr
    assert not (tmp_path / "chk").exists() and "==> train_ref" not in proc.stderr
