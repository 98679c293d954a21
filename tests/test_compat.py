"""Configs in hszhao/semseg's and the MindSpore model zoo's format (written here from the facts of their loaders
and YAMLs: DATA / TRAIN / TEST sections of flat keys, trailing KEY VALUE overrides), read as they are."""
import collections
import logging
import os

import numpy as np
import pytest

from src.compat import load_any_config, translate
from src.config import ConfigError

SEMSEG = """DATA:
  data_root: dataset/voc2012/data
  train_list: dataset/voc2012/train_aug.txt
  val_list: dataset/voc2012/val.txt
  classes: 21

TRAIN:
  arch: psp
  layers: 50
  sync_bn: True  # adopt sync_bn or not
  train_h: 473
  train_w: 473
  scale_min: 0.5
  scale_max: 2.0
  rotate_min: -10
  rotate_max: 10
  zoom_factor: 8
  ignore_label: 255
  aux_weight: 0.4
  train_gpu: [0, 1, 2, 3]
  workers: 16
  batch_size: 16
  batch_size_val: 8
  base_lr: 0.01
  epochs: 50
  start_epoch: 0
  power: 0.9
  momentum: 0.9
  weight_decay: 0.0001
  manual_seed:
  print_freq: 10
  save_freq: 1
  save_path: exp/voc2012/pspnet50/model
  weight:
  resume:
  evaluate: False
Distributed:
  dist_url: tcp://127.0.0.1:6789
  dist_backend: 'nccl'
  multiprocessing_distributed: True
  world_size: 1
  rank: 0

TEST:
  test_list: dataset/voc2012/val.txt
  split: val
  base_size: 512
  test_h: 473
  test_w: 473
  scales: [1.0]
  has_prediction: False
  index_start: 0
  index_step: 0
  test_gpu: [0]
  model_path: exp/voc2012/pspnet50/model/train_epoch_50.pth
  save_folder: exp/voc2012/pspnet50/result/epoch_50/val/ss
  colors_path: data/voc2012/voc2012_colors.txt
  names_path: data/voc2012/voc2012_names.txt
"""

ZOO = """DATA:
  data_root: /data/voc/
  art_data_root: /cache/data
  train_list: /data/voc/train_list.txt
  art_train_list: /cache/data/train_list.txt
  val_list: /data/voc/val_list.txt
  art_val_list: /cache/data/val_list.txt
  classes: 21
  prefix: voc
  save_dir: /ckpt/
  backbone: resnet50
  pretrain_path: /data/resnet_deepbase.ckpt
  art_pretrain_path: /cache/data/resnet_deepbase.ckpt
  ckpt: /ckpt/8P/voc-50_133.ckpt
  obs_save: obs://bucket/PSPnet/save_checkpoint/voc/

TRAIN:
  arch: psp
  feature_size: 60
  train_h: 473
  train_w: 473
  scale_min: 0.5
  scale_max: 2.0
  rotate_min: -10
  rotate_max: 10
  zoom_factor: 8
  ignore_label: 255
  aux_weight: 0.4
  data_name:
  batch_size: 8
  art_batch_size: 4
  batch_size_val: 8
  base_lr: 0.005
  art_base_lr: 0.02
  epochs: 50
  start_epoch: 0
  power: 0.9
  momentum: 0.9
  weight_decay: 0.0001

TEST:
  test_list: /data/voc/val_list.txt
  split: val
  base_size: 512
  test_h: 473
  test_w: 473
  scales: [1.0]
  index_start: 0
  index_step: 0
  result_path: /result/voc/
  color_txt: /config/voc2012/voc2012_colors.txt
  name_txt: /config/voc2012/voc2012_names.txt
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "semseg.yaml").write_text(SEMSEG)
    (tmp_path / "zoo.yaml").write_text(ZOO)
    return tmp_path


def test_a_semseg_config_is_read_as_it_is(files, caplog, monkeypatch):
    monkeypatch.chdir(files)
    with caplog.at_level(logging.INFO):
        cfg = load_any_config(files / "semseg.yaml")
    assert (cfg.data.dataset, cfg.data.classes, cfg.model.layers) == ("voc2012", 21, 50)
    assert (cfg.train.crop_h, cfg.train.batch_size, cfg.train.base_lr, cfg.train.epochs) == (473, 16, 0.01, 50)
    assert cfg.train.sync_bn is True and cfg.train.eval_interval == 0 and cfg.eval.batch_size == 8
    # semseg's list paths are taken from the folder it runs in, not from data_root
    assert cfg.data.val_list == str(files / "dataset" / "voc2012" / "val.txt")
    assert cfg.eval.model_path.endswith("train_epoch_50.pth") and cfg.train.save_dir == "exp/voc2012/pspnet50/model"
    ignored = [r.message for r in caplog.records if "ignored" in r.message]
    assert len(ignored) == 1 and all(k in ignored[0] for k in ("train_gpu", "dist_url", "workers", "colors_path"))


def test_a_zoo_config_is_read_as_it_is(files):
    cfg = load_any_config(files / "zoo.yaml")
    assert cfg.model.layers == 50 and cfg.model.pretrained == "/data/resnet_deepbase.ckpt"
    assert cfg.eval.model_path == "/ckpt/8P/voc-50_133.ckpt" and cfg.eval.save_dir == "/result/voc/"
    assert (cfg.train.base_lr, cfg.train.batch_size, cfg.train.save_dir) == (0.005, 8, "/ckpt/")
    _, ignored = translate(__import__("yaml").safe_load(ZOO), "zoo.yaml")
    assert {"art_data_root", "art_base_lr", "obs_save", "feature_size", "prefix", "color_txt"} <= set(ignored)


@pytest.mark.parametrize("overrides", [["model_path", "m.pth"], ["TEST.model_path", "m.pth"],
                                       ["eval.model_path", "m.pth"], ["model_path=m.pth"]])
def test_trailing_overrides_in_either_spelling(files, overrides):
    cfg = load_any_config(files / "semseg.yaml", [*overrides, "epochs", "3", "train.log_every", "7"])
    assert cfg.eval.model_path == "m.pth" and cfg.train.epochs == 3 and cfg.train.log_every == 7


@pytest.mark.parametrize("key,value,match", [
    ("zoom_factor", "4", "zoom_factor '4' has no equivalent"),
    ("arch", "psa", "arch 'psa' has no equivalent"),
    ("index_step", "10", "evaluate a shorter list file"),
    ("resume", "exp/model/train_epoch_10.pth", "--resume PATH"),
    ("colour_path", "x", "key 'colour_path' has no equivalent"),
])
def test_keys_that_would_change_results_are_refused_in_one_line(files, key, value, match):
    text = SEMSEG.replace("TEST:\n", f"TEST:\n  {key}: {value}\n", 1)
    (files / "bad.yaml").write_text(text.replace(f"  {key}: 8\n", "").replace(f"  {key}: psp\n", "")
                                    .replace(f"  {key}: 0\n", "").replace(f"  {key}:\n", ""))
    with pytest.raises(ConfigError, match=match) as info:
        load_any_config(files / "bad.yaml")
    assert "\n" not in str(info.value) and "bad.yaml" in str(info.value)


def test_our_own_configs_still_load_through_the_same_door(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = load_any_config(os.path.join(root, "config", "demo_synthetic.yaml"), ["train.save_dir", "0100"])
    assert cfg.train.save_dir == "0100"  # a string key keeps its text (YAML 1.1 would read 64)
    based = load_any_config(os.path.join(root, "config", "voc2012_pspnet101.yaml"))  # base: through the same door
    assert (based.model.layers, based.train.crop_h, based.data.classes) == (101, 473, 21)


@pytest.mark.parametrize("name", ["semseg.yaml", "zoo.yaml"])
def test_a_semseg_or_zoo_config_takes_no_base(files, name):
    (files / "ours.yaml").write_text("train:\n  epochs: 3\n")
    (files / "based.yaml").write_text("base: ours.yaml\n" + (files / name).read_text())
    with pytest.raises(ConfigError, match=r"based\.yaml: base: is for this project's configs; a semseg / model-zoo "
                                          r"config .* takes none") as info:
        load_any_config(files / "based.yaml")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_a_semseg_pth_as_model_path_gives_the_converted_checkpoints_scores(tmp_path, reference_keys, monkeypatch):
    """semseg's trained PSPNet .pth named by TEST.model_path is converted in memory and evaluated: the same
    scores as the checkpoint the converter writes from it (PyNative: the same network, no graph to compile)."""
    import mindspore as ms

    from helpers import make_shapes
    from pth_writer import write_pth
    from src import cli
    from src.convert.weights import convert_file

    rng = np.random.default_rng(0)
    sd = collections.OrderedDict(
        (k, np.array(3, np.int64) if k.endswith("num_batches_tracked") else
         (rng.standard_normal(s) * 0.05).astype(np.float32)) for k, s in reference_keys["semseg_pspnet50_voc21"])
    pth = tmp_path / "train_epoch_50.pth"
    write_pth({"epoch": 50, "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())},
              str(pth))
    root = make_shapes(tmp_path / "data", num=3)
    (root / "val21.txt").write_text((root / "val.txt").read_text())
    text = SEMSEG.replace("dataset/voc2012/data", str(root)).replace("dataset/voc2012/val.txt", str(root / "val.txt"))
    text = text.replace("base_size: 512", "base_size: 48").replace("test_h: 473", "test_h: 33")
    text = text.replace("test_w: 473", "test_w: 33").replace("batch_size_val: 8", "batch_size_val: 2")
    (tmp_path / "semseg.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    try:
        assert cli.main(["--config", "semseg.yaml", "--results-dir", "a", "--device_target", "CPU",
                         "model_path", str(pth), "device.mode", "PYNATIVE"], command="eval") == 0
        convert_file(str(pth), str(tmp_path / "converted.ckpt"))
        assert cli.main(["--config", "semseg.yaml", "--results-dir", "b", "--ckpt", "converted.ckpt",
                         "--device_target", "CPU", "device.mode", "PYNATIVE"], command="eval") == 0
    finally:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    import json

    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a["confusion_matrix"] == b["confusion_matrix"] and np.array(a["confusion_matrix"]).sum() > 0


def test_the_mapping_table_in_the_docs_lists_every_key():
    from pathlib import Path

    from src.compat import IGNORED, MAP

    text = (Path(__file__).resolve().parents[1] / "docs" / "CONFIGURATION.md").read_text()
    table = text.split("## semseg and model-zoo configs", 1)[1]
    missing = [k for k in [*MAP, *IGNORED] if f"| `{k}` |" not in table]
    assert not missing, f"docs/CONFIGURATION.md does not map: {missing}"


# The model zoo's config as research/cv/PSPNet/config/voc2012_pspnet50.yaml has it today: TEST.device_target, an
# ONNX_INFER section, and a TEST.test_list that is not DATA.val_list (none of the zoo's scripts reads test_list).
ZOO_CURRENT = """DATA:
  data_root: {root}
  art_data_root: /cache/data
  train_list: {root}/train.txt
  art_train_list: /cache/data/train_list.txt
  val_list: {root}/val.txt
  art_val_list: /cache/data/val_list.txt
  classes: 21
  prefix: voc
  save_dir: ./checkpoints/
  backbone: resnet50
  pretrain_path: ./data/resnet_deepbase.ckpt
  art_pretrain_path: /cache/data/resnet_deepbase.ckpt
  ckpt: ./checkpoints/8P/voc-50_133.ckpt
  obs_save: obs://bucket/PSPnet/save_checkpoint/voc/

TRAIN:
  arch: psp
  feature_size: 60
  train_h: 473
  train_w: 473
  scale_min: 0.5  # random scale, lower end
  scale_max: 2.0
  rotate_min: -10
  rotate_max: 10
  zoom_factor: 8
  ignore_label: 255
  aux_weight: 0.4
  data_name:
  batch_size: 8
  art_batch_size: 4
  batch_size_val: 8
  base_lr: 0.005
  art_base_lr: 0.02
  epochs: 50
  start_epoch: 0
  power: 0.9
  momentum: 0.9
  weight_decay: 0.0001


TEST:
  test_list: ./dataset/voc2012/list/val.txt
  split: val
  base_size: 512
  test_h: 473
  test_w: 473
  scales: [1.0]
  index_start: 0
  index_step: 0
  result_path: ./result/voc/
  color_txt: ./voc2012/voc2012_colors.txt
  name_txt: ./voc2012/voc2012_names.txt
  device_target: {target}


ONNX_INFER:
  onnx_path: /home/user/pspnet/PSPNet.onnx
"""


def test_the_zoos_current_config_is_accepted_as_it_is(tmp_path, caplog, monkeypatch):
    """device_target mapped, ONNX_INFER listed as ignored, and test_list (missing here, as on most machines that
    run the zoo's train.py) read by nothing: training validates on DATA.val_list and eval.py evaluates it too, as
    the zoo's own eval.py does."""
    from src.config import config_yaml, eval_list
    from src.evaluation.evaluate import val_shard
    from helpers import make_shapes

    root = make_shapes(tmp_path / "voc", num=2)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo.yaml").write_text(ZOO_CURRENT.format(root=root, target="Ascend"))
    with caplog.at_level(logging.INFO, logger="src.compat"):
        cfg = load_any_config(tmp_path / "zoo.yaml")
    assert cfg.device.target == "Ascend" and cfg.data.dataset == "voc2012"
    assert cfg.data.val_list == str(root / "val.txt") and cfg.eval.list == ""
    assert "dataset/voc2012/list" not in config_yaml(cfg)  # test_list reaches no key: nothing will open it
    ignored = [r.message for r in caplog.records if "ignored" in r.message]
    assert len(ignored) == 1 and "onnx_path" in ignored[0] and "test_list" in ignored[0]
    assert any("TEST.test_list is read by none of the model zoo's scripts" in r.message for r in caplog.records)
    # the list training validates on and the one eval.py evaluates: DATA.val_list, which exists
    assert eval_list(cfg) == cfg.data.val_list and val_shard(cfg)[0][0].list_file == str(root / "val.txt")
    # device_target in any case, as the zoo's scripts compare it; anything else is one line naming the key
    (tmp_path / "cpu.yaml").write_text(ZOO_CURRENT.format(root=root, target="cpu"))
    assert load_any_config(tmp_path / "cpu.yaml").device.target == "CPU"
    assert load_any_config(tmp_path / "cpu.yaml", ["device.target", "auto"]).device.target == "auto"
    (tmp_path / "tpu.yaml").write_text(ZOO_CURRENT.format(root=root, target="TPU"))
    with pytest.raises(ConfigError, match=r"tpu\.yaml: TEST\.device_target 'TPU': expected Ascend, GPU or CPU"):
        load_any_config(tmp_path / "tpu.yaml")


def test_semseg_keeps_val_list_for_training_and_test_list_for_eval(files, tmp_path, monkeypatch, capsys):
    """semseg's tool/train.py validates on DATA.val_list, its tool/test.py evaluates TEST.test_list: training here
    reads the first (eval.list holds the second), eval.py and the 310 flow the second."""
    from src import cli
    from src.config import config_yaml
    from src.data.dataset import DataError
    from src.evaluation.evaluate import run_eval, val_shard
    from helpers import make_shapes

    make_shapes(tmp_path / "dataset" / "voc2012", num=2)
    monkeypatch.chdir(tmp_path)
    text = SEMSEG.replace("data_root: dataset/voc2012/data", "data_root: dataset/voc2012") \
        .replace("test_list: dataset/voc2012/val.txt", "test_list: dataset/voc2012/test.txt")
    (tmp_path / "semseg.yaml").write_text(text)
    cfg = load_any_config(tmp_path / "semseg.yaml")
    assert cfg.data.val_list == str(tmp_path / "dataset" / "voc2012" / "val.txt")
    assert cfg.eval.list == str(tmp_path / "dataset" / "voc2012" / "test.txt")
    assert val_shard(cfg)[0][0].list_file == cfg.data.val_list  # training's validation: DATA.val_list
    with pytest.raises(DataError, match=r"list file not found: .*test\.txt"):  # eval.py: TEST.test_list
        run_eval(cfg, str(tmp_path / "none.ckpt"), results_dir=str(tmp_path / "results"))
    assert not (tmp_path / "results").exists()
    status = cli.main(["preprocess", "--config", str(tmp_path / "semseg.yaml"), "--out", str(tmp_path / "work")])
    assert status == 2 and "test.txt" in [l for l in capsys.readouterr().err.splitlines() if "error:" in l][0]
    # the resolved config keeps both, so a run's config.yaml evaluates the same list
    assert load_any_config(_write(tmp_path / "resolved.yaml", config_yaml(cfg))).eval.list == cfg.eval.list


def _write(path, text):
    path.write_text(text)
    return path
