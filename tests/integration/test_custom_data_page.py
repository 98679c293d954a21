"""docs/CUSTOM_DATA.md's walk-through, run command by command as a user pastes it (in a fresh folder, on the tiny
test network): two folders of photos and 0/255 masks -> prepare folders -> the doctor (which must find the binary
masks) -> --fix binary -> the doctor (clean) -> --plan -> train with class weights -> eval -> predict."""
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import TINY, TINY_DEPTH

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "CUSTOM_DATA.md"
TINY_OPTS = ["model.layers", str(TINY_DEPTH), "model.width_divisor", str(TINY), "data.workers", "1",
             "eval.base_size", "64", "eval.test_h", "65", "eval.test_w", "65", "eval.batch_size", "2"]
EXPECTED_STATUS = {2: 1}  # the first doctor finds the 0/255 masks: exit 1; every other command exit 0


def page_commands():
    """The ``python ...`` lines of the page's first bash block, as argv lists."""
    text = PAGE.read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line) for line in block.splitlines() if line.startswith("python ")]


def _runnable(argv):
    """The page's command with this interpreter, the repository's entry files, and the tiny network."""
    argv = [sys.executable] + [str(ROOT / a) if a.endswith(".py") and (ROOT / a).is_file() else a for a in argv[1:]]
    if "train.py" in argv[1] or "eval.py" in argv[1] or "predict.py" in argv[1]:
        if "--opts" in argv:
            i = argv.index("--opts") + 1
            argv[i:i] = TINY_OPTS
        else:
            argv += ["--opts", *TINY_OPTS]
    return argv


def test_the_page_has_the_whole_walk_through():
    programs = " ".join(" ".join(a) for a in page_commands())
    for step in ("synthetic", "prepare folders", "prepare check", "--fix binary", "train.py", "--plan", "eval.py",
                 "predict.py"):
        assert step in programs, step


@pytest.mark.slow
def test_the_custom_data_page_runs_as_written(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOG_v": "3", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    for i, argv in enumerate(page_commands()):
        proc = subprocess.run(_runnable(argv), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == EXPECTED_STATUS.get(i, 0), \
            f"{' '.join(argv)}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        if i == 2:
            assert "binary_masks" in proc.stdout and "--fix binary" in proc.stdout
        if "--plan" in argv:
            assert "s/step" in proc.stderr + proc.stdout and not (tmp_path / "my_data" / "run").exists()
    run = tmp_path / "my_data" / "run"
    weights = yaml.safe_load((run / "config.yaml").read_text())["train"]["class_weights"]
    assert isinstance(weights, list) and len(weights) == 2 and weights[1] > weights[0]  # the objects are rarer
    results = list(tmp_path.glob("my_data/run/eval_ms/results.json")) + list(tmp_path.rglob("results.json"))
    assert results, "eval wrote no results.json"
    assert len(list((tmp_path / "my_masks" / "color").glob("*.png"))) == 40
    masks = sorted((tmp_path / "my_photos" / "masks").glob("*.png"))
    assert len(masks) == 40 and not (tmp_path / "my_photos" / ".pspnet_outputs.jsonl").read_text().count("fix")
