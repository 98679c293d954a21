from pathlib import Path

import numpy as np
import pytest
import mindspore as ms

from helpers import ANY_CLASS_MAY_BE_ABSENT, TINY, TINY_DEPTH, make_shapes, tiny_config
from src.checkpoint import read_checkpoint
from src.config import ConfigError
from src.evaluation.metrics import ConfusionMatrix
from src.model.pspnet import PSPNet
from src.train.run_state import epoch_checkpoints
from src.train.loop import Trainer, TrainingError
from src.train.lr import build_optimizer, current_lrs, poly_lr, split_params
from src.train.records import MetricsLog
from src.outputs import OutputExistsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_shapes(tmp_path_factory.mktemp("shapes"), num=6, size=48, seed=2)


@pytest.fixture
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


def test_poly_schedule_values():
    lr = poly_lr(0.01, 100, 0.9)
    assert lr[0] == pytest.approx(0.01)
    for it in (1, 37, 99):
        assert lr[it] == pytest.approx(0.01 * (1 - it / 100) ** 0.9, rel=1e-6)
    assert np.all(np.diff(lr) < 0)


def test_poly_schedule_with_warmup_ramps_into_the_same_curve():
    plain = poly_lr(0.02, 100, 0.9)
    lr = poly_lr(0.02, 100, 0.9, warmup_steps=9)
    assert lr[0] == pytest.approx(plain[0] / 10) and lr[4] == pytest.approx(plain[4] * 5 / 10)
    assert np.all(np.diff(lr[:10]) > 0)  # rising through the warm-up
    np.testing.assert_array_equal(lr[9:], plain[9:])  # then exactly the poly curve
    with pytest.raises(ValueError, match="warmup_steps"):
        poly_lr(0.02, 100, 0.9, warmup_steps=-1)


def test_head_lr_is_exactly_ten_times_backbone_at_every_step():
    net = PSPNet(classes=3, layers=TINY_DEPTH, width_divisor=TINY)
    opt = build_optimizer(net, 0.01, 50, 0.9, head_lr_mult=10.0)
    backbone, head = split_params(net)
    assert {p.name.split(".")[0] for p in head} == {"ppm", "cls", "aux"}
    assert all(p.name.startswith("layer") for p in backbone)
    assert len(backbone) + len(head) == len(net.trainable_params())
    for step in (0, 1, 17, 49):
        opt.global_step.set_data(ms.Tensor(np.array([step], np.int32)))
        lrs = {p.name: float(opt.get_lr_parameter(p).asnumpy().reshape(-1)[step]) for p in (backbone[0], head[0], head[-1])}
        b = lrs[backbone[0].name]
        assert b == pytest.approx(0.01 * (1 - step / 50) ** 0.9, rel=1e-6)
        assert lrs[head[0].name] == pytest.approx(10 * b, rel=1e-6) and lrs[head[-1].name] == pytest.approx(10 * b, rel=1e-6)
        assert current_lrs(opt) == pytest.approx([b, 10 * b], rel=1e-6)


@pytest.mark.slow
def test_loss_goes_down_and_records_are_written(shapes, tmp_path, graph_mode):
    cfg = tiny_config(shapes, tmp_path / "run", train={"epochs": 4, "base_lr": 0.02})
    summary = Trainer(cfg).run()
    records = MetricsLog(tmp_path / "run" / "metrics.jsonl").read()
    losses = [r["loss"] for r in records if r["kind"] == "step"]
    assert len(losses) == summary["step"] == 4 * 2
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2])
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert [e for e, _ in epoch_checkpoints(tmp_path / "run" / "checkpoints")] == [2, 3, 4]  # keep_last 3


@pytest.mark.slow
def test_overfit_reaches_high_training_miou(shapes, tmp_path, graph_mode):
    # A handful of images, fixed crops: the whole loop must be able to fit them. A quarter of the real width: the
    # 1/16-width one does not fit them in this budget; 1/4 reaches 0.92 here in a third of the full width's time.
    root = make_shapes(tmp_path / "few", num=4, size=64, seed=1)
    # From scratch the recipe's 10x head lr is too aggressive; the check is that the loop can fit the data.
    cfg = tiny_config(root, tmp_path / "ovf", train={"epochs": 40, "batch_size": 3, "crop_h": 49, "crop_w": 65,
                                                     "base_lr": 0.05, "head_lr_mult": 1.0, "save_every": 1000,
                                                     "log_every": 20}, model={"width_divisor": 4},
                      data=ANY_CLASS_MAY_BE_ABSENT)  # it scores the classes present (miou_present)
    trainer = Trainer(cfg)
    trainer.run()
    images, labels = next(trainer.train_ds.create_tuple_iterator(num_epochs=1, output_numpy=True))
    cm = ConfusionMatrix(6)
    cm.update(trainer.net(ms.Tensor(images))[0].asnumpy().argmax(1), labels)  # training-mode output, as semseg's train mIoU
    scores = cm.scores()
    assert scores.miou_present > 0.85, scores.iou


@pytest.mark.slow
def test_resume_continues_schedule_exactly(shapes, tmp_path):
    straight = Trainer(tiny_config(shapes, tmp_path / "a", train={"epochs": 3}))
    full = straight.run()
    first = Trainer(tiny_config(shapes, tmp_path / "b", train={"epochs": 3}))
    part = first.run(stop_after_epoch=1)
    assert part["epoch"] == 1 and part["step"] == 2
    resumed = Trainer(tiny_config(shapes, tmp_path / "b", train={"epochs": 3}), resume="auto")
    assert resumed.state.epoch == 1 and resumed.state.step == 2 and resumed.start_epoch == 1
    assert resumed.sampler.indices(1) == straight.sampler.indices(1)
    rest = resumed.run()
    assert rest["step"] == full["step"] == 6 and rest["epoch"] == 3
    assert rest["lr"] == pytest.approx(full["lr"], rel=1e-6)
    a = {p.name: p.asnumpy() for p in straight.net.trainable_params()}
    for p in resumed.net.trainable_params():
        np.testing.assert_allclose(p.asnumpy(), a[p.name], rtol=1e-4, atol=1e-5, err_msg=p.name)
    again = Trainer(tiny_config(shapes, tmp_path / "b", train={"epochs": 3}), resume="auto")
    before = {p.name: p.asnumpy() for p in again.net.trainable_params()}
    summary = again.run()  # a finished run: said, not trained again
    assert summary["nothing_left"] and summary["step"] == 6 and summary["epoch"] == 3
    assert all(np.array_equal(p.asnumpy(), before[p.name]) for p in again.net.trainable_params())
    assert len(epoch_checkpoints(tmp_path / "b" / "checkpoints")) == len(epoch_checkpoints(tmp_path / "a" / "checkpoints"))
    with pytest.raises(OutputExistsError, match="--overwrite"):  # a fresh run would replace the finished one
        Trainer(tiny_config(shapes, tmp_path / "b", train={"epochs": 3}), resume="none")
    fresh = Trainer(tiny_config(shapes, tmp_path / "b", train={"epochs": 3}), resume="none", overwrite=True)
    assert fresh.state.step == 0 and fresh.start_epoch == 0 and not epoch_checkpoints(tmp_path / "b" / "checkpoints")


@pytest.mark.slow
def test_non_finite_loss_stops_without_saving(shapes, tmp_path):
    cfg = tiny_config(shapes, tmp_path / "nan", train={"epochs": 3, "base_lr": 1e18, "save_every": 1})
    with pytest.raises(TrainingError, match=r"loss is (nan|inf) at step \d+") as info:
        Trainer(cfg).run()
    step = int(str(info.value).split("at step ")[1].split()[0])
    saved = epoch_checkpoints(tmp_path / "nan" / "checkpoints")
    for epoch, path in saved:  # only checkpoints written before the bad step, and they hold finite weights
        assert epoch * 2 < step
        assert all(np.isfinite(v).all() for v in read_checkpoint(path).values())


def test_cpu_refuses_amp(shapes, tmp_path):
    with pytest.raises(ConfigError, match="CPU"):
        Trainer(tiny_config(shapes, tmp_path / "amp", train={"amp_level": "O2", "loss_scale": "dynamic"}),
                device_target="CPU")


def test_batch_must_split_over_devices(shapes, tmp_path):
    from src.data.pipeline import build_train_pipeline

    cfg = tiny_config(shapes, tmp_path / "x", train={"batch_size": 3})
    with pytest.raises(ValueError, match="not divisible by 2 devices"):
        build_train_pipeline(cfg.data, cfg.train, 0, 2)


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
    from src.checkpoint import save_checkpoint_atomic
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
    from src.checkpoint import CheckpointError
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
    from src.checkpoint import CheckpointError
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
    from src.checkpoint import CheckpointError
    from src.train.run_state import check_schedule

    with pytest.raises(CheckpointError, match=r"run\.ckpt: its schedule\.base_lr is \[\]"):
        check_schedule({"schedule.base_lr": np.zeros(0)}, tmp_path / "run.ckpt", {"base_lr": 0.01}, allow=False)


@pytest.mark.parametrize("counter, value, limit", [("epoch_num", 99, "epochs"), ("step_num", 1000, "total_steps")])
def test_counters_past_the_schedule_the_file_records_are_refused(counter, value, limit):
    """A run that 'finished' 99 of 2 epochs would otherwise end at once, exit 0 and train nothing."""
    from src.checkpoint import CheckpointError
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


def test_training_at_stride_16_validates_and_exports_at_the_models_stride(shapes, tmp_path):
    """train.output_stride 16 with model.output_stride 8: the training network runs at 16, while validation
    inside training scores the stride-8 network eval.py loads from the saved checkpoint (strictly)."""
    from src.runtime.backends import load_eval_network

    cfg = tiny_config(shapes, tmp_path / "run", train={"epochs": 1, "output_stride": 16, "eval_interval": 1,
                                                       "eval_mode": "full"})
    trainer = Trainer(cfg)
    trainer.run()
    records = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").read() if r["kind"] == "eval"]
    assert len(records) == 1 and trainer.schedule["output_stride"] == 16  # a resume at another stride is refused
    ckpt = epoch_checkpoints(tmp_path / "run" / "checkpoints")[-1][1]
    loaded = load_eval_network(cfg.model, cfg.data.classes, str(ckpt))
    x = ms.Tensor(np.random.default_rng(0).normal(size=(1, 3, 33, 33)).astype(np.float32))
    trainer.net.set_train(False)
    trainer._val_net.set_train(False)
    at_16 = trainer.net(x).asnumpy()
    validated, exported = trainer._val_net(x).asnumpy(), loaded(x).asnumpy()
    np.testing.assert_allclose(validated, exported, rtol=1e-5, atol=1e-5)
    assert np.abs(at_16 - exported).max() > 1e-3  # the training network itself is another function
    with pytest.raises(ConfigError, match="train.output_stride"):
        tiny_config(shapes, tmp_path / "bad", train={"output_stride": 4})
