"""Configs in the format of hszhao/semseg and of the MindSpore model zoo's PSPNet, read as they are.

Both projects write YAML sections (``DATA`` / ``TRAIN`` / ``TEST``; semseg adds ``Distributed``, the zoo
``ONNX_INFER``) of flat keys merged into one namespace, and take overrides as trailing ``KEY VALUE`` pairs
where ``SECTION.key`` and ``key`` name the same key.  :func:`translate` maps each key onto this project's
(``docs/CONFIGURATION.md`` has the table): keys with no effect here are listed once as ignored, keys that
would change results and have no equivalent are refused with one line.

The two lists are used as each project uses them: training validates on ``val_list`` in both; semseg's
tool/test.py evaluates ``TEST.test_list`` (here ``eval.list``, which only eval.py and the 310 flow read), while
the zoo's eval.py evaluates ``DATA.val_list`` and none of its scripts reads ``test_list`` (ignored for a zoo
config, which :func:`is_zoo` tells from the keys only the zoo writes).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from src.errors import shown, shown_names
from src.config import (SECTIONS, Config, ConfigError, apply_overrides, config_from_dict, parse_overrides,
                        parse_scalar, read_yaml)

logger = logging.getLogger(__name__)

FOREIGN_SECTIONS = ("DATA", "TRAIN", "TEST", "Distributed", "ONNX_INFER")
EMPTY = ("", "0", "false", "none", "null", "~")


def _path(value: Any) -> Any:
    """semseg's and the zoo's list paths are taken from the working folder, not from the data root."""
    return os.path.abspath(value) if isinstance(value, str) and value and not os.path.isabs(value) else value


def _backbone(value: Any) -> Any:
    depths = {"resnet50": 50, "resnet101": 101, "resnet152": 152}
    if value not in depths:
        raise ConfigError(f"backbone {shown(repr(value))}: this project builds resnet50, resnet101 or resnet152")
    return depths[value]


def _device_target(value: Any) -> Any:
    """The zoo's ``TEST.device_target`` (``Ascend``, ``GPU``, ``CPU``, any case) as ``device.target``."""
    targets = {"ascend": "Ascend", "gpu": "GPU", "cpu": "CPU", "auto": "auto"}
    if str(value).strip().lower() not in targets:
        raise ConfigError(f"TEST.device_target {shown(repr(value))}: expected Ascend, GPU or CPU")
    return targets[str(value).strip().lower()]


def _must(expected: Any, what: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if str(value).strip() != str(expected):
            raise ConfigError(f"{what} {shown(repr(value))} has no equivalent here (only {expected!r}): it would change "
                              f"the results")
    return check


def _must_be_empty(what: str, instead: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if str(value).strip().lower() not in EMPTY:
            raise ConfigError(f"{what} {shown(repr(value))} has no equivalent here; {instead}")
    return check


# key -> our key (value mapped by the function, if any); None: no effect here (listed as ignored);
# a check function alone: refused unless it holds the value that matches this project's behaviour.
MAP: Dict[str, Tuple[Optional[str], Optional[Callable[[Any], Any]]]] = {
    "data_root": ("data.data_root", None),
    "train_list": ("data.train_list", _path),
    "val_list": ("data.val_list", _path),
    "test_list": ("eval.list", _path),  # what semseg's tool/test.py evaluates (a zoo config's is ignored)
    "device_target": ("device.target", _device_target),
    "classes": ("data.classes", None),
    "ignore_label": ("data.ignore_label", None),
    "layers": ("model.layers", None),
    "backbone": ("model.layers", _backbone),
    "pretrain_path": ("model.pretrained", None),
    "weight": ("model.pretrained", None),
    "sync_bn": ("train.sync_bn", None),
    "train_h": ("train.crop_h", None),
    "train_w": ("train.crop_w", None),
    "scale_min": ("train.scale_min", None),
    "scale_max": ("train.scale_max", None),
    "rotate_min": ("train.rotate_min", None),
    "rotate_max": ("train.rotate_max", None),
    "aux_weight": ("train.aux_weight", None),
    "batch_size": ("train.batch_size", None),
    "batch_size_val": ("eval.batch_size", None),
    "base_lr": ("train.base_lr", None),
    "epochs": ("train.epochs", None),
    "power": ("train.power", None),
    "momentum": ("train.momentum", None),
    "weight_decay": ("train.weight_decay", None),
    "manual_seed": ("train.seed", None),
    "print_freq": ("train.log_every", None),
    "save_freq": ("train.save_every", None),
    "save_path": ("train.save_dir", None),
    "save_dir": ("train.save_dir", None),
    "evaluate": ("train.eval_interval", lambda v: 1 if parse_scalar(str(v), bool) is True else 0),
    "base_size": ("eval.base_size", None),
    "test_h": ("eval.test_h", None),
    "test_w": ("eval.test_w", None),
    "scales": ("eval.scales", None),
    "model_path": ("eval.model_path", None),
    "ckpt": ("eval.model_path", None),
    "save_folder": ("eval.save_dir", None),
    "result_path": ("eval.save_dir", None),
    "arch": (None, _must("psp", "TRAIN.arch")),
    "zoom_factor": (None, _must(8, "TRAIN.zoom_factor")),
    "split": (None, _must("val", "TEST.split")),
    "start_epoch": (None, _must_be_empty("TRAIN.start_epoch", "continue a run with --resume auto")),
    "resume": (None, _must_be_empty("TRAIN.resume", "continue a run with --resume PATH")),
    "index_start": (None, _must_be_empty("TEST.index_start", "evaluate a shorter list file instead")),
    "index_step": (None, _must_be_empty("TEST.index_step", "evaluate a shorter list file instead")),
    "has_prediction": (None, _must_be_empty("TEST.has_prediction", "eval.py always predicts")),
}
IGNORED = {  # no effect here: where this project takes the setting from instead
    "train_gpu": "the launcher's device count", "test_gpu": "--device_id", "workers": "data.workers",
    "dist_url": "msrun", "dist_backend": "msrun", "multiprocessing_distributed": "msrun", "world_size": "msrun",
    "rank": "msrun", "colors_path": "the data set's palette", "names_path": "the data set's class names",
    "color_txt": "the data set's palette", "name_txt": "the data set's class names", "prefix": "epoch_NNNN.ckpt",
    "obs_save": "(ModelArts)", "feature_size": "the crop (473 -> 60)", "data_name": "data.dataset",
    "onnx_path": "eval.py --ckpt MODEL.onnx",
}
# Keys (and the section) only the model zoo's configs write: a config holding one is the zoo's.
ZOO_KEYS = ("prefix", "backbone", "pretrain_path", "ckpt", "obs_save", "feature_size", "data_name", "result_path",
            "color_txt", "name_txt", "device_target", "onnx_path")
DATASET_OF_CLASSES = {21: "voc2012", 150: "ade20k", 19: "cityscapes"}
DATASET_OF_PREFIX = {"voc": "voc2012", "ade": "ade20k", "ade20k": "ade20k", "cityscapes": "cityscapes"}


def _int(value: Any) -> Optional[int]:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def is_foreign(raw: Any) -> bool:
    """True for a config in semseg's / the zoo's format (upper-case sections of flat keys)."""
    return isinstance(raw, dict) and bool(raw) and any(k in FOREIGN_SECTIONS for k in raw) and \
        not any(k in ("data", "model", "train", "eval", "device") for k in raw)


def is_zoo(raw: Mapping[str, Any]) -> bool:
    """True for the model zoo's config (its ONNX_INFER section, a key only it writes, a ModelArts ``art_`` key),
    False for semseg's."""
    keys = [k for values in raw.values() if isinstance(values, dict) for k in values]
    return "ONNX_INFER" in raw or any(k in ZOO_KEYS or str(k).startswith("art_") for k in keys)


def _flat(raw: Mapping[str, Any], source: str) -> Dict[str, Any]:
    """The sections merged into one namespace, as both projects' loaders do (a key in two sections refused)."""
    flat: Dict[str, Any] = {}
    where: Dict[str, str] = {}
    for section, values in raw.items():
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {shown(section)} must hold keys, got {type(values).__name__}")
        for key, value in values.items():
            if key in flat and flat[key] != value:
                raise ConfigError(f"{source}: {shown(key)} is set in {shown(where[key])} and in {shown(section)} with "
                                  f"different values")
            flat[key], where[key] = value, section
    return flat


def translate(raw: Mapping[str, Any], source: str, overrides: Sequence[Tuple[str, str]] = ()
              ) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """``({section: {key: value}}, ignored keys)`` in this project's terms for a foreign config and its
    ``KEY VALUE`` overrides (``SECTION.key`` or ``key``)."""
    flat = _flat(raw, source)
    for key, value in overrides:
        flat[key.split(".")[-1]] = value
    ours: Dict[str, Dict[str, Any]] = {}
    ignored: List[str] = []
    art = [k for k in flat if k.startswith("art_")]
    zoo = is_zoo(raw)
    for key, value in flat.items():
        if key in IGNORED or key in art or (key == "manual_seed" and str(value).strip().lower() in EMPTY) \
                or (zoo and key == "test_list"):
            ignored.append(key)
            continue
        if key not in MAP:
            raise ConfigError(f"{source}: key '{shown(key)}' has no equivalent in this project and is not known to be "
                              f"without effect; remove it (docs/CONFIGURATION.md maps every semseg / zoo key)")
        target, fn = MAP[key]
        try:
            mapped = fn(value) if fn else value
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        if target is None or (str(value).strip().lower() in ("", "none", "null", "~")
                              and target in ("model.pretrained", "eval.model_path")):
            continue
        section, name = target.split(".")
        ours.setdefault(section, {})[name] = mapped
    if zoo and "test_list" in flat and flat.get("test_list") != flat.get("val_list"):
        logger.info("%s: TEST.test_list is read by none of the model zoo's scripts (its eval.py evaluates "
                    "DATA.val_list, and so does eval.py here); to evaluate that list, set eval.list", source)
    classes = ours.get("data", {}).get("classes", 21)
    prefix = flat.get("prefix")
    dataset = DATASET_OF_PREFIX.get(str(prefix).lower()) if prefix else DATASET_OF_CLASSES.get(_int(classes))
    ours.setdefault("data", {})["dataset"] = dataset or "custom"
    ours["data"].setdefault("train_list", ours["data"].get("val_list", "train.txt"))
    return ours, sorted(set(ignored))


def load_foreign(raw: Mapping[str, Any], source: str, overrides: Sequence[Tuple[str, str]] = ()) -> Config:
    """A :class:`Config` from a semseg / zoo config, with the ignored keys listed once in the log."""
    ours, ignored = translate(raw, source, overrides)
    if ignored:
        logger.info("%s: a semseg / model-zoo config; keys with no effect here (ignored): %s", source,
                    shown_names(ignored, 40))
    return config_from_dict(ours, source)


def load_any_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """This project's config, or semseg's / the zoo's, with overrides in either spelling: ``section.key``
    (ours) or ``KEY`` / ``SECTION.key`` (theirs, for a foreign config)."""
    from src.config import load_config

    path = Path(path)
    raw = read_yaml(path)
    if not is_foreign(raw):
        return load_config(path, overrides)
    if "base" in raw:
        raise ConfigError(f"{shown(path, 300)}: base: is for this project's configs; a semseg / model-zoo config "
                          f"(DATA / TRAIN / TEST sections) takes none: copy the base's keys into this file")
    pairs = parse_overrides(overrides)
    theirs = [(k, v) for k, v in pairs if k.split(".")[0] not in SECTIONS]
    ours = [item for k, v in pairs if k.split(".")[0] in SECTIONS for item in (k, v)]
    cfg = load_foreign(raw, str(path), theirs)
    return apply_overrides(cfg, ours) if ours else cfg
