"""Trainer's runs end to end (src/train/loop.py): tiny training runs whose loss falls, that overfit a handful of
images, resume exactly where they stopped and stop on a non-finite loss without saving; and the loop's record of
a window of losses."""
import numpy as np
import pytest
import mindspore as ms

from helpers import ANY_CLASS_MAY_BE_ABSENT, make_shapes, tiny_config
from src.checkpoint.format import read_checkpoint
from src.evaluation.metrics import ConfusionMatrix
from src.train.run_state import epoch_checkpoints
from src.errors import TrainingError
from src.train.loop import Trainer
from src.train.loss_window import Clock, LossWindow
from src.train.lr import poly_lr
from src.train.records import MetricsLog
from src.outputs.errors import OutputExistsError


@pytest.fixture
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=ms.PYNATIVE_MODE)


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


def test_a_window_of_losses_is_recorded_at_its_last_step_with_the_lr_that_step_ran_with(shapes, tmp_path):
    trainer = Trainer(tiny_config(shapes, tmp_path / "run", train={"epochs": 3}))
    t = trainer.cfg.train
    window = LossWindow()
    for step in (1, 2, 3):
        window.add(step, 1, (np.float32(step), np.float32(step / 2), np.float32(step / 4)))
    trainer._check_and_log(window, 1, 3, Clock(0.0, 0, trainer.total_steps))
    assert window.pending == []
    (record,) = MetricsLog(tmp_path / "run" / "metrics.jsonl").read()
    lr = poly_lr(t.base_lr, trainer.total_steps, t.power)[2]  # step 3 ran with the schedule's third value
    assert {k: record[k] for k in ("kind", "epoch", "step", "loss", "main", "aux")} == \
        {"kind": "step", "epoch": 2, "step": 3, "loss": 3.0, "main": 1.5, "aux": 0.75}
    assert record["lr"] == pytest.approx(lr, rel=1e-6)
    assert record["head_lr"] == pytest.approx(t.head_lr_mult * lr, rel=1e-6)
    window.add(4, 1, (np.float32("inf"), np.float32(1), np.float32(1)))
    with pytest.raises(TrainingError, match=r"loss is inf at step 4 \(epoch 2; main 1\.0, aux 1\.0\); stopping "
                                            r"without saving"):
        trainer._check_and_log(window, 1, 4, Clock(0.0, 0, trainer.total_steps))
    assert len(MetricsLog(tmp_path / "run" / "metrics.jsonl").read()) == 1  # the bad window is not recorded
