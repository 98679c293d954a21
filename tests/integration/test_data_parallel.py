"""Data parallel on CPU through msrun (2 processes on 127.0.0.1), checked against a single process."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms

from helpers import make_shapes, tiny_config
from src.config import config_to_dict
from src.data.pipeline import build_train_pipeline
from src.model.pspnet import build_pspnet
from src.train.lr import build_optimizer
from src.train.step import NetWithLoss

pytestmark = pytest.mark.slow  # real msrun jobs with two ranks

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _msrun(worker, args, logs, drop_env=()):
    """Run ``worker`` with ``args`` in 2 CPU processes under msrun; returns the joined rank logs."""
    msrun = shutil.which("msrun", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if msrun is None:
        pytest.fail("msrun (installed with mindspore) not found next to the test interpreter")
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
               GLOG_v="3", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for name in drop_env:
        env.pop(name, None)
    proc = subprocess.run([msrun, "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
                           f"--master_port={_free_port()}", f"--log_dir={logs}", "--join=True",
                           str(ROOT / "tests" / worker), *map(str, args)],
                          cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=900)
    text = "\n".join(p.read_text()[-3000:] for p in sorted(Path(logs).glob("*.log")))
    assert proc.returncode == 0, f"msrun failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\n{text}"
    return text


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    root = make_shapes(tmp / "data", num=6, size=48, seed=4)
    cfg = tiny_config(root, tmp / "run", train={"epochs": 1, "max_steps": 1, "batch_size": 4, "eval_interval": 1},
                      data={"val_list": "train.txt"})
    cfg_file = tmp / "cfg.json"
    cfg_file.write_text(json.dumps(config_to_dict(cfg)))
    out = tmp / "out"
    out.mkdir()
    logs = _msrun("dist_worker.py", [cfg_file, out], tmp / "logs")
    return cfg, out, logs


@pytest.mark.parametrize("mode", ["shared", "separate"])
def test_multi_node_resume_agrees_or_fails_clearly(tmp_path, mode):
    root = make_shapes(tmp_path / "data", num=6, size=48, seed=4)
    cfg = tiny_config(root, tmp_path / "run", train={"epochs": 2, "batch_size": 4})
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(config_to_dict(cfg)))
    _msrun("dist_resume_worker.py", [cfg_file, tmp_path, mode], tmp_path / "logs")
    info = [json.loads((tmp_path / f"{mode}_rank_{r}.json").read_text()) for r in (0, 1)]
    if mode == "shared":
        assert [i.get("step") for i in info] == [2, 2] and [i.get("epoch") for i in info] == [2, 2]
    else:  # only rank 0's save_dir has the checkpoint: both ranks refuse, naming the disagreement
        for i in info:
            assert "ranks disagree on where to resume" in i["error"]
            assert "rank 0: step 2" in i["error"] and "rank 1: fresh start" in i["error"]


def test_both_ranks_hold_identical_weights(dist_run):
    _, out, _ = dist_run
    r0, r1 = np.load(out / "rank_0.npz"), np.load(out / "rank_1.npz")
    init = np.load(out / "init.npz")
    trainable = [k for k in r0.files if "moving_" not in k]
    changed = 0
    for k in trainable:
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
        changed += not np.array_equal(r0[k], init[k])
    assert changed > len(trainable) // 2  # the step really updated the weights
    info = [json.loads((out / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [i["size"] for i in info] == [2, 2] and [i["step"] for i in info] == [1, 1]
    assert info[0]["best_miou"] == info[1]["best_miou"]  # all-reduced confusion matrices: one global mIoU


def test_each_rank_logs_its_own_and_the_global_miou(dist_run):
    _, _, logs = dist_run
    assert "device 0: best mIoU" in logs and "device 1: best mIoU" in logs and "global mIoU" in logs


def test_data_parallel_step_equals_single_process_average(dist_run):
    """One DP step = one SGD step on the mean of the two shards' gradients, computed here in one process."""
    cfg, out, _ = dist_run
    init = np.load(out / "init.npz")
    net = build_pspnet(cfg.model, cfg.data.classes, for_training=True)
    for p in net.get_parameters():
        p.set_data(ms.Tensor(init[p.name]))
    net.set_train(True)
    loss = NetWithLoss(net, cfg.data.ignore_label, cfg.train.aux_weight)
    opt = build_optimizer(net, cfg.train.base_lr, 1, cfg.train.power, cfg.train.head_lr_mult, cfg.train.momentum,
                          cfg.train.weight_decay)
    grad_fn = ms.value_and_grad(lambda x, y: loss(x, y)[0], None, opt.parameters)
    grads = []
    for rank in (0, 1):
        ds, _, _ = build_train_pipeline(cfg.data, cfg.train, rank, 2)
        image, label = next(ds.create_tuple_iterator(num_epochs=1, output_numpy=True))
        assert len(image) == 2  # per-device batch = 4 / 2
        grads.append(grad_fn(ms.Tensor(image), ms.Tensor(label))[1])
    opt(tuple((a + b) / 2 for a, b in zip(*grads)))
    r0 = np.load(out / "rank_0.npz")
    for p in net.trainable_params():
        np.testing.assert_allclose(p.asnumpy(), r0[p.name], rtol=1e-4, atol=1e-6, err_msg=p.name)


def test_a_rank_may_wait_longer_than_the_collectives_default_timeout(tmp_path):
    """Rank 0 is busy 40 s (MindSpore's CPU all-reduce alone gives up after ~30 s): the other rank still gets the sum."""
    _msrun("dist_wait_worker.py", [tmp_path, 40], tmp_path / "logs", drop_env=("MS_CPU_COMM_OP_TIMEOUT",))
    info = [json.loads((tmp_path / f"wait_rank_{r}.json").read_text()) for r in (0, 1)]
    assert [i["sum"] for i in info] == [3, 3]
    assert info[1]["waited_s"] > 30 and info[1]["timeout"] == "1800"
