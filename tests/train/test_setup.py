"""The builders a training run is made of (src/train/setup.py): the step plan, the refusals a config meets before
anything trains (mixed precision on CPU, a fixed-size network asked to evaluate other windows), the norm layer,
the loss scale, and the network validation runs when training runs at another output stride."""
from dataclasses import replace

import numpy as np
import pytest
import mindspore as ms

from helpers import tiny_config
from src.config import ConfigError
from src.model.resnet import batch_norm
from src.train.loop import Trainer
from src.train.records import MetricsLog
from src.train.run_state import epoch_checkpoints
from src.train.setup import (StepPlan, build_network, check_eval_fits, loss_scale_for, norm_factory,
                             sink_steps, training_model, validation_network)


def test_cpu_refuses_amp(shapes, tmp_path):
    with pytest.raises(ConfigError, match="CPU"):
        Trainer(tiny_config(shapes, tmp_path / "amp", train={"amp_level": "O2", "loss_scale": "dynamic"}),
                device_target="CPU")


def test_batch_must_split_over_devices(shapes, tmp_path):
    from src.data.pipeline import build_train_pipeline

    cfg = tiny_config(shapes, tmp_path / "x", train={"batch_size": 3})
    with pytest.raises(ValueError, match="not divisible by 2 devices"):
        build_train_pipeline(cfg.data, cfg.train, 0, 2)


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


def test_sink_size_is_refused_on_cpu_and_fits_the_epoch():
    with pytest.raises(ConfigError, match="train.sink_size 4: data sinking runs on Ascend"):
        sink_steps(4, "CPU", 100, 1000)
    assert sink_steps(0, "CPU", 100, 1000) == 0
    assert sink_steps(8, "Ascend", 100, 1000) == 5  # largest divisor of 100 that is <= 8
    assert sink_steps(64, "Ascend", 100, 250) == 50  # max_steps 250: chunks also end at the last step
    assert sink_steps(1, "Ascend", 7, 7) == 1



def test_step_plan_counts_each_ranks_share_of_the_batch_and_max_steps_cuts_the_schedule(tmp_path):
    t = replace(tiny_config(tmp_path, tmp_path / "run").train, batch_size=4, epochs=3)
    assert StepPlan.of(t, 10, 2) == StepPlan(steps_per_epoch=5, total_steps=15)  # 2 images per rank and step
    assert StepPlan.of(t, 10, 1) == StepPlan(steps_per_epoch=2, total_steps=6)  # the last 2 samples make no batch
    assert StepPlan.of(replace(t, max_steps=7), 10, 2).total_steps == 7
    assert StepPlan.of(replace(t, max_steps=70), 10, 2).total_steps == 15


def test_a_fixed_size_network_refuses_full_validation_windows_of_another_size(tmp_path):
    cfg = tiny_config(tmp_path, tmp_path / "run", train={"eval_interval": 1, "eval_mode": "full"})  # crop 33x41
    with pytest.raises(ConfigError, match=r"builds the network for 33x41 inputs, but .* runs 33x33 windows"):
        check_eval_fits(cfg, (33, 41))
    check_eval_fits(cfg, None)  # the dynamic form evaluates any size
    check_eval_fits(replace(cfg, eval=replace(cfg.eval, test_w=41)), (33, 41))  # windows of the crop's size
    check_eval_fits(replace(cfg, train=replace(cfg.train, eval_mode="fast")), (33, 41))  # center crops of it
    check_eval_fits(replace(cfg, train=replace(cfg.train, eval_interval=0)), (33, 41))  # no validation


def test_mixed_precision_and_loss_scaling_are_refused_on_cpu_only():
    t = tiny_config("data", "run").train
    assert loss_scale_for(t, "CPU") == 0.0  # O0, none: no scaling
    with pytest.raises(ConfigError, match="train.amp_level O0 / train.loss_scale fixed: .* not used on CPU"):
        loss_scale_for(replace(t, loss_scale="fixed"), "CPU")
    assert loss_scale_for(replace(t, loss_scale="fixed", loss_scale_value=128.0), "Ascend") == 128.0


def test_batch_norm_is_synced_only_over_several_ascend_devices(caplog):
    assert norm_factory("Ascend", 1, True) is batch_norm
    assert norm_factory("Ascend", 8, False) is batch_norm
    with caplog.at_level("WARNING", logger="src.train.setup"):
        assert norm_factory("GPU", 8, True) is batch_norm
    assert "train.sync_bn needs Ascend" in caplog.text
    assert norm_factory("Ascend", 8, True) is not batch_norm


def test_validation_runs_the_models_stride_with_the_training_networks_current_weights(tmp_path):
    same = tiny_config(tmp_path, tmp_path / "run")
    net = build_network(same, "CPU", 1)
    assert training_model(same) == same.model and validation_network(same, "CPU", net) is net
    cfg = tiny_config(tmp_path, tmp_path / "run", train={"output_stride": 16})
    assert training_model(cfg).output_stride == 16 and cfg.model.output_stride == 8
    held = validation_network(cfg, "CPU", net)
    trained = {p.name: p for p in net.get_parameters()}
    assert held is not net and all(not p.name.startswith("aux.") for p in held.get_parameters())
    for p in held.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), trained[p.name].asnumpy(), err_msg=p.name)
    w = trained["cls.4.weight"]
    w.set_data(ms.Tensor(w.asnumpy() + 1))  # a training step later
    assert validation_network(cfg, "CPU", net, held) is held  # built once, refreshed
    np.testing.assert_array_equal(dict((p.name, p) for p in held.get_parameters())["cls.4.weight"].asnumpy(),
                                  w.asnumpy())
