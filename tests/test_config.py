from pathlib import Path

import pytest

from src.config import ConfigError, apply_overrides, config_from_dict, config_yaml, load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "config").glob("*.yaml"))


def test_every_shipped_config_loads():
    names = {p.name for p in CONFIGS}
    for required in ("voc2012_pspnet50.yaml", "voc2012_pspnet101.yaml", "ade20k_pspnet50.yaml",
                     "cityscapes_pspnet50.yaml", "demo_synthetic.yaml"):
        assert required in names
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.source == str(path)
    assert load_config(CONFIGS[0].parent / "voc2012_pspnet101.yaml").model.layers == 101


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_key_and_file(tmp_path):
    p = _write(tmp_path, "train:\n  base_lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*train\.base_lrr"):
        load_config(p)


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown section 'trian'"):
        load_config(_write(tmp_path, "trian:\n  epochs: 1\n"))


def test_wrong_type_names_key_and_file(tmp_path):
    p = _write(tmp_path, "train:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'train\.epochs' must be int"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"model\.bins\[1\]"):
        load_config(_write(tmp_path, "model:\n  bins: [1, two]\n"))
    with pytest.raises(ConfigError, match=r"model\.use_ppm"):
        load_config(_write(tmp_path, "model:\n  use_ppm: 1\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_choices_and_relations(tmp_path):
    with pytest.raises(ConfigError, match="device.target"):
        load_config(_write(tmp_path, "device:\n  target: TPU\n"))
    with pytest.raises(ConfigError, match="class_names"):
        load_config(_write(tmp_path, "data:\n  classes: 3\n  class_names: [a, b]\n"))
    with pytest.raises(ConfigError, match=r"train\.warmup_steps must be >= 0"):
        load_config(_write(tmp_path, "train:\n  warmup_steps: -5\n"))


def test_overrides_are_type_checked(tmp_path):
    p = _write(tmp_path, "train:\n  base_lr: 0.01\n")
    cfg = load_config(p, ["train.base_lr", "0.02", "epochs=3", "model.bins=[1,3]", "data.data_root", "123"])
    assert cfg.train.base_lr == 0.02 and cfg.train.epochs == 3 and cfg.model.bins == [1, 3]
    assert cfg.data.data_root == "123"  # a string key keeps numeric-looking text
    assert isinstance(cfg.train.base_lr, float)
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        apply_overrides(cfg, ["train.epochs", "1.5"])
    with pytest.raises(ConfigError, match="unknown key 'nosuch'"):
        apply_overrides(cfg, ["nosuch=1"])
    with pytest.raises(ConfigError, match="ambiguous"):
        apply_overrides(cfg, ["batch_size=2"])  # in train and eval
    with pytest.raises(ConfigError, match="no value"):
        apply_overrides(cfg, ["train.epochs"])


def test_resolved_config_round_trips(tmp_path):
    cfg = config_from_dict({"train": {"epochs": 7}, "model": {"bins": [1, 2]}}, "x")
    out = tmp_path / "config.yaml"
    out.write_text(config_yaml(cfg))
    again = load_config(out)
    assert again.train.epochs == 7 and again.model.bins == [1, 2]
    assert again.data == cfg.data and again.eval == cfg.eval and again.device == cfg.device


@pytest.mark.parametrize("key,text,want", [("train.save_dir", "0100", "0100"), ("train.save_dir", "12:30", "12:30"),
                                           ("train.save_dir", "0x1F", "0x1F"), ("train.save_dir", "run #2", "run #2"),
                                           ("train.epochs", "7", 7), ("train.base_lr", "1e-3", 1e-3),
                                           ("train.distributed", "true", True), ("eval.scales", "[0.5, 1]", [0.5, 1.0])])
def test_override_values_are_read_by_their_keys_type(key, text, want):
    cfg = apply_overrides(config_from_dict({}, "x"), [key, text])
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == want


@pytest.mark.parametrize("key,text", [("train.epochs", "0x10"), ("train.epochs", "1_0"), ("train.distributed", "yes"),
                                      ("train.base_lr", "1_000.0"), ("train.epochs", "７")])
def test_yaml_1_1_forms_are_not_numbers_or_booleans(key, text):
    with pytest.raises(ConfigError, match=f"key '{key}' must be"):
        apply_overrides(config_from_dict({}, "x"), [key, text])


def test_a_config_file_reads_its_values_with_the_same_parser(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  save_dir: 0100\n  epochs: 3\n  distributed: false\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert (cfg.train.save_dir, cfg.train.epochs, cfg.train.distributed) == ("0100", 3, False)
    (tmp_path / "d.yaml").write_text("train:\n  epochs: 0x10\n")
    with pytest.raises(ConfigError, match="d.yaml: key 'train.epochs' must be int"):
        load_config(tmp_path / "d.yaml")
