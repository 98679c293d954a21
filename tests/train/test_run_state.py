"""Training state in checkpoints (src/train/run_state.py): the optimizer's state as saved and restored (nn.SGD's
older entries converted to nn.Momentum's), the loop counters and schedule a resume checks, the one-line refusals
of state no run wrote, and the small pieces a run keeps: epoch checkpoint listing, schedule differences, bests."""
import numpy as np
import pytest
import mindspore as ms

from helpers import TINY, TINY_DEPTH, tiny_config
from src.checkpoint.format import read_checkpoint
from src.errors import TrainingError
from src.model.pspnet import PSPNet
from src.train.lr import build_optimizer, poly_lr, split_params
from src.train.run_state import TrainState, epoch_checkpoints, schedule_changes


def _sgd_as_before(net, base_lr: float, steps: int, weight_decay: float):
    """The optimizer before nn.Momentum: nn.SGD over the same two groups (its checkpoints hold accum./stat.)."""
    from mindspore import nn

    backbone, head = split_params(net)
    lr = poly_lr(base_lr, steps)
    groups = [{"params": backbone, "lr": ms.Tensor(lr)}, {"params": head, "lr": ms.Tensor(lr * np.float32(2))}]
    return nn.SGD(groups, float(lr[0]), momentum=0.9, weight_decay=weight_decay)


def test_momentum_steps_as_sgd_did_and_an_sgd_checkpoint_resumes_exactly(tmp_path):
    """build_optimizer's nn.Momentum updates every weight (BatchNorm's gamma/beta decayed too) as nn.SGD did, and
    a training checkpoint nn.SGD wrote continues under nn.Momentum exactly where nn.SGD would have gone."""
    from src.checkpoint.files import save_checkpoint_atomic
    from src.train.run_state import load_train_state
    from src.train.step import NetWithLoss, TrainStep

    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((2, 3, 33, 33)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 3, (2, 33, 33)).astype(np.int32))

    def make(sgd: bool, init=None):
        net = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY, dropout=0.0)
        for p in net.get_parameters() if init else ():
            p.set_data(ms.Tensor(init[p.name]))
        opt = (_sgd_as_before(net, 0.05, 10, 0.01) if sgd
               else build_optimizer(net, 0.05, 10, head_lr_mult=2.0, weight_decay=0.01))
        step = TrainStep(NetWithLoss(net), opt)
        step.set_train(True)
        return net, opt, step

    def weights(net):
        return {p.name: p.asnumpy().copy() for p in net.get_parameters()}  # asnumpy may share the memory

    old_net, old_opt, old_step = make(sgd=True)
    start = weights(old_net)
    new_net, new_opt, new_step = make(sgd=False, init=start)
    for _ in range(2):
        old_step(x, y), new_step(x, y)
    after = weights(new_net)
    gamma = next(n for n in after if n.endswith("gamma"))
    assert not np.allclose(after[gamma], start[gamma])  # moved (its gradient plus the decay)
    for name, value in weights(old_net).items():
        np.testing.assert_allclose(after[name], value, rtol=1e-5, atol=1e-6, err_msg=name)

    legacy = [p for p in old_opt.get_parameters() if p.name.startswith(("accum.", "stat.", "global_step"))]
    assert {p.name.split(".")[0] for p in legacy} == {"accum", "stat", "global_step"}
    entries = [{"name": p.name, "data": p.data} for p in old_net.get_parameters()]
    entries += [{"name": p.name, "data": p.data} for p in legacy]
    entries += [{"name": n, "data": ms.Tensor(np.array([v], t))}
                for n, v, t in (("epoch_num", 1, np.int32), ("step_num", 2, np.int32), ("best_miou", 0.5, np.float32))]
    path = save_checkpoint_atomic(entries, tmp_path / "sgd.ckpt")
    resumed_net, resumed_opt, resumed_step = make(sgd=False)
    state = load_train_state(read_checkpoint(path), path, resumed_net, resumed_opt)
    assert state.step == 2 and int(resumed_opt.global_step.asnumpy().reshape(-1)[0]) == 2
    old_step(x, y), resumed_step(x, y)
    for name, value in weights(old_net).items():
        np.testing.assert_allclose(weights(resumed_net)[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("change, needle", [
    ("mixed", "both nn.Momentum's moments.* and nn.SGD's accum.*/stat.*"),
    ("no flag", r"accum\.cls\.4\.bias has no stat\.cls\.4\.bias"),
    ("no buffer", r"stat\.cls\.4\.bias has no accum\.cls\.4\.bias"),
    ("flag shape", r"stat\.cls\.4\.bias has shape \(1,\)"),
])
def test_an_sgd_checkpoint_whose_entries_do_not_pair_up_is_refused(change, needle):
    from src.checkpoint.format import CheckpointError
    from src.train.run_state import saved_optimizer_state

    params = {"global_step": np.array([3], np.int32), "accum.cls.4.bias": np.ones(3, np.float32),
              "stat.cls.4.bias": np.zeros(3, np.float32), "accum.cls.4.weight": np.ones((3, 2, 1, 1), np.float32),
              "stat.cls.4.weight": np.zeros((3, 2, 1, 1), np.float32)}
    ok = saved_optimizer_state(params, "run.ckpt")
    assert sorted(ok) == ["global_step", "moments.cls.4.bias", "moments.cls.4.weight"]
    flagged = saved_optimizer_state({**params, "stat.cls.4.bias": np.array([0, 1, 0], np.float32)}, "run.ckpt")
    np.testing.assert_array_equal(flagged["moments.cls.4.bias"], [1, 0, 1])  # not yet updated: a zero buffer
    if change == "mixed":
        params["moments.cls.4.weight"] = params["accum.cls.4.weight"]
    elif change == "no flag":
        del params["stat.cls.4.bias"]
    elif change == "no buffer":
        del params["accum.cls.4.bias"]
    else:
        params["stat.cls.4.bias"] = np.zeros(1, np.float32)
    with pytest.raises(CheckpointError, match=rf"run\.ckpt.*{needle}"):
        saved_optimizer_state(params, "run.ckpt")


@pytest.fixture(scope="module")
def resumable():
    """A tiny network, its optimizer and the entries of a training checkpoint at step 2."""
    net = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY)
    opt = build_optimizer(net, 0.01, 10, head_lr_mult=1.0)
    params = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    params.update({p.name: np.zeros(p.shape, np.float32) for p in opt.get_parameters() if p.name.startswith("moments.")})
    params.update({"global_step": np.array([2], np.int32), "epoch_num": np.array([1], np.int32),
                   "step_num": np.array([2], np.int32), "best_miou": np.array([0.5], np.float32)})
    return net, opt, params


@pytest.mark.parametrize("change, needle", [
    ("nan buffer", "1 optimizer entries are not finite floats: moments.cls.4.bias"),
    ("bool buffer", "not finite floats: moments.cls.4.bias"),
    ("nan flag", r"not finite floats: stat\.cls\.4\.bias"),
    ("global ahead", r"global_step \(5\) is ahead of its step_num \(2\)"),
    ("negative global", r"global_step is \[-7\] \(int32\), not a count"),
    ("float counter", r"epoch_num is \[1\.0\] \(float64\), not a count"),
    ("empty best", r"best_miou is \[\] \(float32\), not one finite float"),
    ("best above one", r"best_miou is \[5\.0\] \(float32\), not one finite float in \[-1, 1\]"),
    ("whole best", r"best_miou is \[1\] \(int64\), not one finite float"),
    ("nan device best", "local_best_miou holds \\[nan"),
    ("device best 7", r"local_best_miou holds \[0\.5, 7\.0\] \(float32\), not mIoUs in \[-1, 1\]"),
    ("hostile name", r"unexpected: moments\.\\x1b\[2J\\nFAKE"),
])
def test_training_state_that_no_run_wrote_is_refused_in_one_line(resumable, change, needle):
    from src.checkpoint.format import CheckpointError
    from src.train.run_state import load_train_state

    net, opt, good = resumable
    params = dict(good)
    bias = np.zeros(params["moments.cls.4.bias"].shape, np.float32)
    if change == "nan buffer":
        params["moments.cls.4.bias"] = bias + np.nan
    elif change == "bool buffer":
        params["moments.cls.4.bias"] = bias.astype(bool)
    elif change == "nan flag":
        params = {("accum." + n[8:] if n.startswith("moments.") else n): v for n, v in params.items()}
        params.update({"stat." + n[6:]: np.zeros_like(v) for n, v in params.items() if n.startswith("accum.")})
        params["stat.cls.4.bias"] = bias + np.nan
    elif change == "global ahead":
        params["global_step"] = np.array([5], np.int32)
    elif change == "negative global":
        params["global_step"] = np.array([-7], np.int32)
    elif change == "float counter":
        params["epoch_num"] = np.array([1.0])
    elif change == "empty best":
        params["best_miou"] = np.zeros(0, np.float32)
    elif change == "best above one":
        params["best_miou"] = np.array([5.0], np.float32)
    elif change == "whole best":
        params["best_miou"] = np.array([1], np.int64)
    elif change == "device best 7":
        params["local_best_miou"] = np.array([0.5, 7.0], np.float32)
    elif change == "nan device best":
        params["local_best_miou"] = np.array([np.nan], np.float32)
    else:
        params["moments.\x1b[2J\nFAKE LINE" + "x" * 5000] = bias
    before = {p.name: p.asnumpy().copy() for p in opt.get_parameters() if p.name.startswith("moments.")}
    with pytest.raises(CheckpointError, match=needle) as info:
        load_train_state(params, "run.ckpt", net, opt)
    message = str(info.value)
    assert message.startswith("run.ckpt") and "\n" not in message and len(message) < 1500
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in opt.get_parameters() if p.name in before)
    assert load_train_state(good, "run.ckpt", net, opt).step == 2  # the unchanged file resumes


def test_a_negative_sgd_flag_keeps_its_buffer_as_sgd_does():
    """nn.SGD treats a flag as set only when it is above 0 (its kernel's test), so -1 keeps the buffer."""
    from src.train.run_state import saved_optimizer_state

    params = {"accum.w": np.array([1.0, 2.0, 3.0], np.float32), "stat.w": np.array([-1.0, 1.0, 0.0], np.float32)}
    np.testing.assert_array_equal(saved_optimizer_state(params, "x.ckpt")["moments.w"], [1.0, 0.0, 3.0])


def test_a_schedule_entry_that_is_not_one_number_is_refused(tmp_path):
    from src.checkpoint.format import CheckpointError
    from src.train.run_state import check_schedule

    with pytest.raises(CheckpointError, match=r"run\.ckpt: its schedule\.base_lr is \[\]"):
        check_schedule({"schedule.base_lr": np.zeros(0)}, tmp_path / "run.ckpt", {"base_lr": 0.01}, allow=False)


@pytest.mark.parametrize("counter, value, limit", [("epoch_num", 99, "epochs"), ("step_num", 1000, "total_steps")])
def test_counters_past_the_schedule_the_file_records_are_refused(counter, value, limit):
    """A run that 'finished' 99 of 2 epochs would otherwise end at once, exit 0 and train nothing."""
    from src.checkpoint.format import CheckpointError
    from src.train.run_state import resume_position

    params = {"epoch_num": np.array([1], np.int32), "step_num": np.array([2], np.int32),
              "schedule.epochs": np.array([2.0]), "schedule.total_steps": np.array([10.0])}
    assert resume_position(params, "run.ckpt") == (1, 2)
    params[counter] = np.array([value], np.int32)
    with pytest.raises(CheckpointError, match=rf"run\.ckpt: its {counter} \({value}\) is past the end of the "
                                              rf"schedule it records \({limit} "):
        resume_position(params, "run.ckpt")


def test_resuming_at_another_training_stride_is_a_schedule_change(tmp_path):
    from src.train.run_state import check_schedule, schedule_of

    t = tiny_config(tmp_path, tmp_path / "run").train
    saved = {"schedule." + k: np.array([float(v)]) for k, v in schedule_of(t, 1, 10, 16).items()}
    check_schedule(saved, tmp_path / "run.ckpt", schedule_of(t, 1, 10, 16), allow=False)
    with pytest.raises(TrainingError, match="output_stride: checkpoint 16, now 32"):
        check_schedule(saved, tmp_path / "run.ckpt", schedule_of(t, 1, 10, 32), allow=False)
    check_schedule(saved, tmp_path / "run.ckpt", schedule_of(t, 1, 10, 32), allow=True)


def test_epoch_checkpoints_lists_only_epoch_files_oldest_first_by_number(tmp_path):
    assert epoch_checkpoints(tmp_path / "absent") == []
    for name in ("epoch_0010.ckpt", "epoch_0002.ckpt", "epoch_0009.ckpt", "best.ckpt", "epoch_0003.ckpt.sha256",
                 "epoch_0004.ckpt.part", "my_epoch_0005.ckpt"):
        (tmp_path / name).write_bytes(b"x")
    assert epoch_checkpoints(tmp_path) == [(2, tmp_path / "epoch_0002.ckpt"), (9, tmp_path / "epoch_0009.ckpt"),
                                           (10, tmp_path / "epoch_0010.ckpt")]


def test_schedule_changes_name_each_value_that_differs_and_only_those():
    saved = {"base_lr": 0.01, "epochs": 2.0, "devices": 1.0, "output_stride": 8.0}
    now = {"base_lr": 0.01 * (1 + 1e-12), "epochs": 4, "devices": 1, "crop_h": 33}  # crop_h: not in the file
    assert schedule_changes(saved, now) == ["epochs: checkpoint 2, now 4"]
    assert schedule_changes(saved, {k: v for k, v in saved.items()}) == []


def test_a_validation_updates_the_device_and_global_bests_only_when_higher():
    state = TrainState()
    good = np.diag([5, 5, 5]).astype(np.int64)  # every pixel right: mIoU 1
    half = np.array([[5, 5, 0], [0, 5, 5], [5, 0, 5]], np.int64)  # half of each class right: mIoU 1/3
    local_miou, scores, improved = state.add_validation(half, 0, 1)
    assert improved and local_miou == pytest.approx(1 / 3) and scores.miou == pytest.approx(1 / 3)
    assert state.best_miou == state.local_best == pytest.approx(1 / 3) and state.device_bests == [pytest.approx(1 / 3)]
    assert state.add_validation(good, 0, 1)[2] and state.best_miou == pytest.approx(1.0)
    local_miou, _, improved = state.add_validation(half, 0, 1)
    assert not improved and local_miou == pytest.approx(1 / 3) and state.best_miou == state.local_best == pytest.approx(1.0)
