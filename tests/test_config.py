import os
import re
import threading
from pathlib import Path

import pytest
import yaml

from src.config import (Config, ConfigError, apply_overrides, config_from_dict, config_to_dict, config_yaml,
                        load_config)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


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


# Inheritance: ``base: FILE`` (relative to the file naming it)


def _files(tmp_path, **texts):
    for name, text in texts.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def test_base_merges_sections_key_by_key_and_replaces_lists_whole(tmp_path):
    (tmp_path / "sub").mkdir()
    _files(tmp_path, top="train:\n  epochs: 9\n  base_lr: 0.5\nmodel:\n  bins: [1, 2, 3, 6]\n  dropout: 0.3\n")
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../top.yaml\ntrain:\n  epochs: 4\nmodel:\n  bins: [2]\n")
    (tmp_path / "sub" / "leaf.yaml").write_text("base: mid.yaml\neval:\n  scales: [0.5]\n")  # relative to sub/
    cfg = load_config(tmp_path / "sub" / "leaf.yaml", ["train.seed", "5"])
    assert (cfg.train.epochs, cfg.train.base_lr, cfg.train.seed) == (4, 0.5, 5)  # the nearer file wins, key by key
    assert cfg.model.bins == [2] and cfg.model.dropout == 0.3  # a list replaced whole, not merged or appended
    assert cfg.eval.scales == [0.5] and cfg.source == str(tmp_path / "sub" / "leaf.yaml")


def test_the_written_run_config_is_the_merged_one_without_base(tmp_path):
    _files(tmp_path, a="train:\n  epochs: 9\n  save_dir: out_a\n", b="base: a.yaml\ntrain:\n  save_dir: out_b\n")
    cfg = load_config(tmp_path / "b.yaml")
    text = config_yaml(cfg)  # what a run writes as its config.yaml (Trainer._write_config, prepare)
    assert "base" not in yaml.safe_load(text) and "\nbase:" not in text
    (tmp_path / "written.yaml").write_text(text)
    again = load_config(tmp_path / "written.yaml")
    assert config_to_dict(again) == config_to_dict(cfg) and again.train.epochs == 9


@pytest.mark.parametrize("texts,match", [
    ({"a": "base: a.yaml\n"}, r"a\.yaml: its bases form a cycle \(.*a\.yaml -> .*a\.yaml\)"),
    ({"a": "base: b.yaml\n", "b": "base: ./a.yaml\n"}, r"a\.yaml: its bases form a cycle \(.*a\.yaml -> .*b\.yaml -> "),
    ({"a": "base: gone.yaml\n"}, r"a\.yaml: base: config file not found: .*gone\.yaml"),
    ({"a": "base: [b.yaml, c.yaml]\n"}, r"a\.yaml: base must name one config file .*got \['b\.yaml', 'c\.yaml'\]"),
    ({"a": "base: {x: 1}\n"}, r"a\.yaml: base must name one config file"),
    ({"a": "base: !!int 3\n"}, r"a\.yaml: base must name one config file .*got 3"),
    ({"a": "base:\n"}, r"a\.yaml: base must name one config file"),
    ({"a": 'base: "b\\0.yaml"\n'}, r"a\.yaml: base must name one config file"),
    ({"a": "base: .\n"}, r"a\.yaml: base: config file .* is a folder"),
    ({"a": "base: b.yaml\n", "b": "DATA:\n  classes: 21\n"}, r"b\.yaml: unknown section 'DATA'"),
])
def test_bad_bases_are_one_line_naming_the_files(tmp_path, texts, match):
    _files(tmp_path, **texts)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(tmp_path / "a.yaml")
    assert "\n" not in str(err.value)


def test_a_base_chain_deeper_than_the_limit_is_refused(tmp_path):
    from src.config import MAX_BASE_DEPTH

    for i in range(MAX_BASE_DEPTH + 1):
        (tmp_path / f"c{i}.yaml").write_text(f"base: c{i + 1}.yaml\n")
    (tmp_path / f"c{MAX_BASE_DEPTH}.yaml").write_text("train:\n  epochs: 3\n")  # c0 has exactly MAX_BASE_DEPTH bases
    assert load_config(tmp_path / "c0.yaml").train.epochs == 3
    (tmp_path / f"c{MAX_BASE_DEPTH}.yaml").write_text(f"base: c{MAX_BASE_DEPTH + 1}.yaml\n")
    (tmp_path / f"c{MAX_BASE_DEPTH + 1}.yaml").write_text("train:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=rf"c0\.yaml: more than {MAX_BASE_DEPTH} bases in a chain \(.*c0\.yaml -> "):
        load_config(tmp_path / "c0.yaml")


def test_a_base_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    _files(tmp_path, a="base: pipe.yaml\n")
    raised = []

    def load() -> None:
        try:
            load_config(tmp_path / "a.yaml")
        except ConfigError as exc:
            raised.append(str(exc))

    reader = threading.Thread(target=load, daemon=True)  # a blocking open would leave it waiting for a writer
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading the FIFO base blocked"
    assert len(raised) == 1 and re.search(r"a\.yaml: base: config file .*pipe\.yaml is not a regular file", raised[0])


def test_a_bad_key_in_a_base_is_named_with_the_bases_path(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "b.yaml").write_text("train:\n  epochs: 2\n  base_lrr: 0.1\n")
    _files(tmp_path, a="base: bases/b.yaml\ntrain:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"bases[/\\]b\.yaml: unknown key 'train\.base_lrr'"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "bases" / "b.yaml").write_text("train:\n  epochs: ten\n")  # replaced by a.yaml, but still checked
    with pytest.raises(ConfigError, match=r"bases[/\\]b\.yaml: key 'train\.epochs' must be int"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "bases" / "b.yaml").write_text("data:\n  classes: 3\n")
    _files(tmp_path, a="base: bases/b.yaml\ndata:\n  class_names: [x, y]\n")  # a relation: named on the result
    with pytest.raises(ConfigError, match=r"a\.yaml: data\.class_names has 2 names but data\.classes is 3"):
        load_config(tmp_path / "a.yaml")


def test_voc2012_pspnet101_is_pspnet50_with_only_the_keys_it_states():
    folder = CONFIGS[0].parent
    raw = yaml.safe_load((folder / "voc2012_pspnet101.yaml").read_text())
    assert raw.pop("base") == "voc2012_pspnet50.yaml"
    deep, base = config_to_dict(load_config(folder / "voc2012_pspnet101.yaml")), \
        config_to_dict(load_config(folder / "voc2012_pspnet50.yaml"))
    differing = {(s, k) for s in base for k in base[s] if base[s][k] != deep[s][k]}
    assert differing == {(s, k) for s in raw for k in raw[s]}
    assert deep["model"]["layers"] == 101 and base["model"]["layers"] == 50
    assert deep["train"]["save_dir"] != base["train"]["save_dir"]


@pytest.mark.parametrize("name, data, train, evaluation", [
    ("ade20k_pspnet50", ("ade20k", 150, "training.txt", "validation.txt"), (100, 473, "outputs/ade20k_pspnet50"),
     (512, 473)),
    ("cityscapes_pspnet50", ("cityscapes", 19, "fine_train.txt", "fine_val.txt"),
     (200, 713, "outputs/cityscapes_pspnet50"), (2048, 713)),
    ("voc2012_pspnet101", ("voc2012", 21, "train_aug.txt", "val.txt"), (50, 473, "outputs/voc2012_pspnet101"),
     (512, 473)),
])
def test_shipped_variants_are_vocs_recipe_plus_what_semseg_changes(name, data, train, evaluation):
    """ADE20K, Cityscapes and PSPNet101 inherit VOC's PSPNet50 recipe: their own keys as semseg sets them, every
    other key (augmentation, optimiser, head, eval protocol) equal to the base's."""
    cfg = load_config(CONFIG_DIR / f"{name}.yaml")
    base = load_config(CONFIG_DIR / "voc2012_pspnet50.yaml")
    assert yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())["base"] == "voc2012_pspnet50.yaml"
    assert (cfg.data.dataset, cfg.data.classes, cfg.data.train_list, cfg.data.val_list) == data
    assert (cfg.train.epochs, cfg.train.crop_h, cfg.train.save_dir) == train and cfg.train.crop_w == cfg.train.crop_h
    assert (cfg.eval.base_size, cfg.eval.test_h) == evaluation and cfg.eval.test_w == cfg.eval.test_h
    for section, keys in {"train": ("scale_min", "scale_max", "rotate_min", "rotate_max", "base_lr", "power",
                                    "momentum", "weight_decay", "head_lr_mult", "aux_weight", "batch_size"),
                          "model": ("deep_stem", "output_stride", "bins", "use_ppm", "use_aux", "dropout"),
                          "eval": ("scales", "flip", "stride_rate"), "data": ("ignore_label",)}.items():
        for key in keys:
            assert getattr(getattr(cfg, section), key) == getattr(getattr(base, section), key), f"{section}.{key}"


@pytest.mark.parametrize("key,value", [("log_every", 0), ("save_every", 0), ("sink_size", -1)])
def test_loop_counts_must_be_positive(key, value):
    with pytest.raises(ConfigError, match=f"train.{key} must be"):
        config_from_dict({"train": {key: value}}, "test.yaml")


@pytest.mark.parametrize("raw,needle", [({"amp_level": "O2"}, "needs a loss scale"),
                                        ({"amp_level": "O3", "loss_scale": "dynamic"}, "train.amp_level")])
def test_amp_levels_that_would_break_norms_or_underflow_are_refused(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        config_from_dict({"train": raw}, "x.yaml")


def test_label_settings_that_contradict_are_refused_naming_the_fix():
    with pytest.raises(ConfigError, match="data.ignore_label 0 is one of the 3 classes.*reduce_zero_label true"):
        apply_overrides(Config(), ["data.dataset", "custom", "data.classes", "3", "data.ignore_label", "0"])
    with pytest.raises(ConfigError, match="ade20k.*already reads 0 as unlabeled.*twice"):
        apply_overrides(Config(), ["data.dataset", "ade20k", "data.classes", "150", "data.reduce_zero_label", "true"])
    for value, needle in (("[1, 2]", "2 weights for 21 classes"), ("auto2", "none, auto or a list"),
                          ("[" + ", ".join(["1"] * 20) + ", -1]", r"class_weights\[20\]")):
        with pytest.raises(ConfigError, match=needle):
            apply_overrides(Config(), ["train.class_weights", value])
    cfg = apply_overrides(Config(), ["data.classes", "2", "data.dataset", "custom", "train.class_weights", "[1, 3.5]"])
    assert cfg.train.class_weights == [1.0, 3.5]
    assert apply_overrides(Config(), ["train.class_weights", "auto"]).train.class_weights == "auto"
