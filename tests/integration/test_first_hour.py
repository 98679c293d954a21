"""The messages a newcomer meets in the first hour: one line each, naming the fix."""
import collections

import numpy as np
import pytest

from pth_writer import write_pth
from src.checkpoint.files import arrays_to_entries, load_checkpoint_strict, save_checkpoint_atomic
from src.checkpoint.format import CheckpointError
from src.config import ConfigError
from src.convert.weights import ConversionError, convert_file
from src.data.dataset import DataError, read_list
from src.model.pspnet import PSPNet


def test_torchvision_weights_in_the_deep_stem_network_name_model_deep_stem(tmp_path):
    flat = PSPNet(classes=6, layers=14, width_divisor=16, deep_stem=False)
    save_checkpoint_atomic(arrays_to_entries({p.name: p.asnumpy() for p in flat.get_parameters()}),
                           tmp_path / "tv.ckpt")
    deep = PSPNet(classes=6, layers=14, width_divisor=16, deep_stem=True)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_strict(deep, tmp_path / "tv.ckpt")
    assert "set model.deep_stem false" in str(info.value) and "\n" not in str(info.value)


def test_another_class_count_names_data_classes(tmp_path):
    six = PSPNet(classes=6, layers=14, width_divisor=16)
    save_checkpoint_atomic(arrays_to_entries({p.name: p.asnumpy() for p in six.get_parameters()}), tmp_path / "6.ckpt")
    with pytest.raises(CheckpointError, match="set data.classes to the checkpoint's") as info:
        load_checkpoint_strict(PSPNet(classes=21, layers=14, width_divisor=16), tmp_path / "6.ckpt")
    assert "\n" not in str(info.value)


def test_forcing_the_wrong_kind_on_torchvision_weights_names_the_right_kind(tmp_path, reference_keys):
    rng = np.random.default_rng(0)
    sd = collections.OrderedDict((k, np.array(1, np.int64) if k.endswith("num_batches_tracked") else
                                  rng.standard_normal(s).astype(np.float32))
                                 for k, s in reference_keys["torchvision_resnet50_imagenet"])
    write_pth(sd, str(tmp_path / "tv.pth"))
    with pytest.raises(ConversionError) as info:
        convert_file(str(tmp_path / "tv.pth"), str(tmp_path / "x.ckpt"), kind="semseg_backbone")
    message = str(info.value)
    assert "use --kind torchvision" in message and "model.deep_stem false" in message
    assert "--allow-mismatch" not in message and "\n" not in message and not (tmp_path / "x.ckpt").exists()


def test_a_missing_list_names_the_prepare_command(tmp_path):
    with pytest.raises(DataError, match=r"list file not found: .*python -m src prepare voc") as info:
        read_list(str(tmp_path / "train_aug.txt"), str(tmp_path))
    assert "\n" not in str(info.value)


def test_eval_without_a_model_is_one_line_naming_ckpt(tmp_path, capsys):
    from pathlib import Path

    from src import cli

    root = Path(__file__).resolve().parents[2]
    assert cli.main(["--config", str(root / "config" / "demo_synthetic.yaml"), "--results-dir", str(tmp_path / "r"),
                     "--device_target", "CPU"], command="eval") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "pass --ckpt PATH" in err[0]
    with pytest.raises(ConfigError):
        cli._model_path(cli.build_parser("eval").parse_args(["--config", "x.yaml"]),
                        __import__("src.config", fromlist=["Config"]).Config())


def test_a_list_entry_that_is_a_device_or_a_dangling_link_says_so(tmp_path):
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "l.txt").write_text("zero.jpg gone.png\n")
    with pytest.raises(DataError) as info:
        read_list(str(tmp_path / "l.txt"), str(tmp_path))
    message = str(info.value)
    assert "not a regular file (a device, FIFO or socket)" in message and "zero.jpg" in message
    assert "a symbolic link to a missing file" in message


def test_a_mindspore_checkpoint_given_to_the_converter_is_named_as_one(tmp_path):
    from src.convert.pth import PthError, load_pth

    save_checkpoint_atomic(arrays_to_entries({"w": np.ones(2, np.float32)}), tmp_path / "resnet_deepbase.ckpt")
    with pytest.raises(PthError, match="is a MindSpore checkpoint, not a PyTorch .pth: it needs no conversion"):
        load_pth(str(tmp_path / "resnet_deepbase.ckpt"))
