"""Typed configuration: YAML files -> dataclasses, with checked overrides.

A config file has one mapping per section (``data``, ``model``, ``train``,
``eval``, ``device``).  Every key must be a field of the section's dataclass
and every value must have the field's type; anything else is a
:class:`ConfigError` that names the key and the file.  Overrides from the
command line (``--opts train.base_lr 0.02`` or ``train.base_lr=0.02``) go
through the same checks.  A key that is unique across sections may be given
without its section (``base_lr=0.02``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import reprlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import yaml

from src.errors import PSPNetError, has_control_chars, read_user_file, shown, shown_names


class ConfigError(PSPNetError, ValueError):
    """A config file or override that cannot be used; the message names the key and the file."""


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; this bounds the parser's time and memory
MAX_CONFIG_NODES = 100_000  # values after alias expansion (a few hundred in a real config)


def _show(value: Any) -> str:
    """A bounded repr of a config value (it may be a huge or self-sharing structure)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"  # repr may refuse it
    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxdict, short.maxstring, short.maxother = 2, 6, 6, 80, 80
    text = short.repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


class _DuplicateKey(yaml.YAMLError):
    """A mapping that repeats a key (PyYAML would keep the last one silently)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping, naming both lines."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise _DuplicateKey(f"key '{shown(key_node.value, 80)}' appears twice (lines {seen[key_node.value]} "
                                    f"and {line}); PyYAML would silently keep the second")
            seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's constructors for explicitly tagged values (``!!int``, ``!!float``, ``!!timestamp``) raise
        Python's own errors on bad text (a 5,000-digit ``!!int`` meets Python's digit limit): those become a
        YAML error at the value's line. A number's text is bounded before it is converted."""
        if isinstance(node, yaml.ScalarNode) and node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_TEXT:
            raise yaml.constructor.ConstructorError(
                None, None, f"a number written with {len(node.value)} characters: no setting takes one that long",
                node.start_mark)
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the {shown(node.tag, 60)} value {shown(getattr(node, 'value', ''), 60)}: "
                f"{shown(exc, 120)}", node.start_mark) from None


MAX_NUMBER_TEXT = 100  # characters of one number: the largest setting (train.max_steps 1e9) needs 10
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


# Every plain scalar of a config file is read as its text; the key's type then parses it (parse_scalar): the
# same parser as --opts, so ``0100`` is a string where a string is expected and never YAML 1.1's octal 64,
# ``yes`` is no boolean and ``0x10`` no integer.
_StrictLoader.yaml_implicit_resolvers = {}



def _expanded_size(obj: Any, cap: int) -> int:
    """How many values ``obj`` holds with every shared (aliased) part counted each time; stops past ``cap``."""
    sizes: Dict[int, int] = {}

    def size(o: Any, depth: int) -> int:
        if depth > 50:
            return cap + 1
        if id(o) in sizes:
            return sizes[id(o)]
        children = list(o.keys()) + list(o.values()) if isinstance(o, dict) else o if isinstance(o, list) else []
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > cap:
                break
        sizes[id(o)] = total
        return total

    return size(obj, 0)


MAX_CONFIG_DEPTH = 32
_OPEN = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken, yaml.BlockSequenceStartToken,
         yaml.BlockMappingStartToken)
_CLOSE = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)


def _check_nesting(text: str, path: Path) -> None:
    """Refuse nesting deeper than MAX_CONFIG_DEPTH from the token stream, before PyYAML's parser
    (whose time grows with the square of the depth) sees the whole of it."""
    depth = 0
    for token in yaml.scan(text, Loader=yaml.SafeLoader):
        depth += isinstance(token, _OPEN) - isinstance(token, _CLOSE)
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{path}:{token.start_mark.line + 1}: nested too deeply to be a config (more than "
                              f"{MAX_CONFIG_DEPTH} levels)")


def read_yaml(path: Path) -> Any:
    """Parse a config file: size-capped, UTF-8 (named on failure), duplicate keys and alias bombs refused. A
    folder, FIFO or unreadable file is one ConfigError naming it (:func:`src.errors.read_user_file`)."""
    data = read_user_file(path, "config file", ConfigError, MAX_CONFIG_BYTES,
                          too_big="{path}: {size} bytes is far more than a config holds (at most {limit}); is this "
                                  "the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                          f"save the config as UTF-8") from None
    try:
        _check_nesting(text, path)
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        where = f"{path}:{exc.problem_mark.line + 1}" if exc.problem_mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {shown(exc.problem or exc.context, 300)}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {shown(' '.join(str(exc).split()), 300)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if _expanded_size(raw, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
        raise ConfigError(f"{path}: expands to more than {MAX_CONFIG_NODES} values (aliases of aliases?); a "
                          f"config holds a few hundred")
    return raw


@dataclass
class DataConfig:
    """Where the data lives and how labels are read."""

    dataset: str = "voc2012"
    data_root: str = "data/voc2012"
    train_list: str = "train_aug.txt"
    val_list: str = "val.txt"
    classes: int = 21
    ignore_label: int = 255
    class_names: List[str] = field(default_factory=list)
    mean: List[float] = field(default_factory=lambda: [0.485 * 255, 0.456 * 255, 0.406 * 255])
    std: List[float] = field(default_factory=lambda: [0.229 * 255, 0.224 * 255, 0.225 * 255])
    workers: int = 2
    on_bad_sample: str = "error"
    reduce_zero_label: bool = False  # label 0 = unlabeled (ignored); 1..N are classes 0..N-1 (mmseg's option)
    allow_absent_classes: List[str] = field(default_factory=list)  # classes that may have no training pixel
    class_colors: List[List[int]] = field(default_factory=list)  # custom sets: [r, g, b] per class (fix colors)
    ignore_colors: List[List[int]] = field(default_factory=list)  # [r, g, b] colours meaning unlabeled (fix colors)


@dataclass
class ModelConfig:
    """Network architecture."""

    layers: int = 50
    deep_stem: bool = True
    output_stride: int = 8
    bins: List[int] = field(default_factory=lambda: [1, 2, 3, 6])
    use_ppm: bool = True
    use_aux: bool = True
    dropout: float = 0.1
    zero_init_residual: bool = False  # from scratch: each bottleneck's last BN scale starts at 0
    pretrained: str = ""
    pretrained_head: str = "strict"  # strict: the heads must fit; match: keep the rows of shared class names; fresh
    pretrained_class_names: List[str] = field(default_factory=list)  # the class names of model.pretrained's heads
    allow_non_finite: bool = False  # load weights holding NaN/inf (refused by default: they predict nonsense)
    width_divisor: int = 1  # test-only: divide every channel count (1 = the paper's network; tests use 16 with layers 14)
    graph_form: str = "auto"  # fixed: built for the train crop (AI Core ops only); dynamic: any size; auto: fixed on Ascend
    pyramid: str = "auto"  # semseg: the paper's pyramid; zoo: the model zoo's (60x60 map); auto: zoo for its PSPNets


@dataclass
class TrainConfig:
    """The training recipe (semseg tool/train.py)."""

    epochs: int = 50
    max_steps: int = 0
    batch_size: int = 16
    crop_h: int = 473
    crop_w: int = 473
    scale_min: float = 0.5
    scale_max: float = 2.0
    rotate_min: float = -10.0
    rotate_max: float = 10.0
    rotate_prob: float = 0.5
    blur_prob: float = 0.5
    flip_prob: float = 0.5
    base_lr: float = 0.01
    power: float = 0.9
    warmup_steps: int = 0  # linear warm-up into the poly curve (0 = the reference schedule)
    output_stride: int = 0  # train at this stride, evaluate and export at model.output_stride (0 = the same)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    head_lr_mult: float = 10.0
    aux_weight: float = 0.4
    class_weights: Union[List[float], str] = "none"  # none, auto (median frequency) or one weight per class
    seed: int = 123
    save_dir: str = "outputs/voc2012_pspnet50"
    save_every: int = 1
    keep_last: int = 3
    log_every: int = 10
    sink_size: int = 0  # Ascend/GPU: steps per device call in data-sink mode (0: one step per call from the host)
    eval_interval: int = 1
    eval_mode: str = "fast"
    distributed: bool = False
    sync_bn: bool = True
    amp_level: str = "O0"
    lean_backward: str = "auto"  # input gradients of 3x3 convs as forward convs (src/model/lean.py); auto: on CPU
    loss_scale: str = "none"
    loss_scale_value: float = 1024.0
    max_image_gb: float = 2.0  # one training sample's augmentation (scale_max^2 x pixels) may take at most this


@dataclass
class EvalConfig:
    """The evaluation protocol (semseg tool/test.py)."""

    base_size: int = 512
    test_h: int = 473
    test_w: int = 473
    scales: List[float] = field(default_factory=lambda: [1.0])
    flip: bool = True
    stride_rate: float = 2.0 / 3.0
    batch_size: int = 4
    save_dir: str = ""
    save_images: bool = False
    model_path: str = ""  # the model eval.py / export.py use when --ckpt is not given (semseg's TEST.model_path)
    list: str = ""  # the list eval.py and the 310 flow evaluate (semseg's TEST.test_list); empty: data.val_list
    max_image_gb: float = 2.0  # one image's probability maps (classes x scales x pixels) may take at most this


@dataclass
class DeviceConfig:
    """Where and how MindSpore runs."""

    target: str = "auto"
    mode: str = "GRAPH"
    device_id: int = 0
    quiet: bool = True


@dataclass
class Config:
    """The whole configuration; ``source`` is the file it came from (for messages)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    source: str = "<defaults>"


SECTIONS: Tuple[str, ...] = ("data", "model", "train", "eval", "device")

# The data set families (data.dataset) and the tag of their results line ("VOC2012-AUG-ss:mIoU/mAcc/allAcc ...").
# src.data.labels.dataset_spec knows each one's classes, names, palette and label map.
DATASETS: Dict[str, str] = {"voc2012": "VOC2012-AUG", "ade20k": "ADE20K", "cityscapes": "Cityscapes",
                            "camvid": "CamVid", "kitti_road": "KITTI-road", "synthetic": "Synthetic",
                            "custom": "Custom"}

# The pyramid pooling module's forms (model.pyramid): semseg's (the paper's, the default) and the MindSpore model
# zoo's PSPNet (its stages on a fixed 60x60 map, the second without pooling), for that zoo's own checkpoints.
PYRAMIDS: Tuple[str, ...] = ("semseg", "zoo")

_CHOICES: Dict[str, Tuple[Any, ...]] = {
    "data.on_bad_sample": ("error", "skip"),
    "data.dataset": tuple(DATASETS),
    "model.layers": (50, 101, 152, 14),  # 14: the tests' one-block-per-stage network (not for real use)
    "model.width_divisor": (1, 2, 4, 8, 16, 32, 64),
    "model.output_stride": (8, 16, 32),
    "train.output_stride": (0, 8, 16, 32),
    "model.graph_form": ("auto", "fixed", "dynamic"),
    "model.pyramid": ("auto",) + PYRAMIDS,
    "model.pretrained_head": ("strict", "match", "fresh"),
    "device.target": ("auto", "Ascend", "GPU", "CPU"),
    "device.mode": ("GRAPH", "PYNATIVE"),
    "train.amp_level": ("O0", "O1", "O2"),
    "train.lean_backward": ("auto", "on", "off"),
    "train.loss_scale": ("none", "fixed", "dynamic"),
    "train.eval_mode": ("fast", "full"),
}


# Ranges of every numeric key: (lowest, highest), both allowed.  Past these a value is a typo or an attack
# (data.classes 1e8 would allocate gigabytes for one confusion matrix), never a setting.
_RANGES: Dict[str, Tuple[float, float]] = {
    "data.classes": (1, 255),  # labels are uint8 and 255 is "ignore"
    "data.ignore_label": (0, 255), "data.mean": (0, 255), "data.std": (1e-6, 255), "data.workers": (0, 64),
    "model.bins": (1, 64), "model.dropout": (0, 0.999),
    "train.epochs": (1, 100_000), "train.max_steps": (0, 10**9), "train.batch_size": (1, 4096),
    "train.crop_h": (1, 8192), "train.crop_w": (1, 8192), "train.scale_min": (1e-3, 16), "train.scale_max": (1e-3, 16),
    "train.rotate_min": (-180, 180), "train.rotate_max": (-180, 180), "train.rotate_prob": (0, 1),
    "train.blur_prob": (0, 1), "train.flip_prob": (0, 1), "train.base_lr": (1e-12, 1e20), "train.power": (0, 10),
    "train.warmup_steps": (0, 10**9), "train.momentum": (0, 0.999999), "train.weight_decay": (0, 1),
    "train.head_lr_mult": (0, 1000), "train.aux_weight": (0, 100), "train.seed": (0, 2**32 - 1),
    "train.save_every": (1, 100_000), "train.keep_last": (0, 100_000), "train.log_every": (1, 10**9),
    "train.sink_size": (0, 10**6), "train.eval_interval": (0, 100_000), "train.loss_scale_value": (1e-6, 2.0**24),
    "eval.base_size": (1, 8192), "eval.test_h": (1, 8192), "eval.test_w": (1, 8192), "eval.scales": (1e-3, 8),
    "eval.stride_rate": (1e-3, 1), "eval.batch_size": (1, 1024), "device.device_id": (0, 4095),
    "eval.max_image_gb": (1e-3, 4096), "train.max_image_gb": (1e-3, 4096),
}


def value_range(dotted: str) -> Tuple[float, float]:
    """The lowest and highest value a numeric key (``eval.test_h``) may take, both allowed: for files that carry
    settings written from a config (the 310 flow's meta.json), checked against the same bounds."""
    return _RANGES[dotted]


def _check_ranges(cfg: "Config", src: str) -> None:
    """Every numeric key within :data:`_RANGES` (each item of a list key too)."""
    for dotted, (low, high) in _RANGES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(cfg, section), key)
        for v in value if isinstance(value, list) else [value]:
            if not low <= v <= high:
                raise ConfigError(f"{src}: {dotted} must be between {low:g} and {high:g}, got {_show(value)}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
NULL_TEXTS = ("null", "~", "")


def _split_items(text: str) -> List[str]:
    """The items of a list's inside, split at the commas outside brackets (``[1, 2], [3, 4]`` is two items)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    return items + [text[start:].strip()]


def parse_scalar(text: str, tp: Any) -> Any:
    """The text of a config value or an override read as type ``tp``, strictly; the text itself when it is
    not one (the type check then names the key). Integers and floats: decimal, a float with an optional
    exponent; booleans: true / false; strings: the text as given; lists: ``[a, b]``. An integer of more than
    MAX_NUMBER_TEXT digits is a ConfigError (:func:`_check_value` names the key)."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) < len(typing.get_args(tp)) and text.strip().lower() in NULL_TEXTS:
            return None
        return parse_scalar(text, args[0]) if len(args) == 1 else text  # a choice of types: _check_value tries each
    if typing.get_origin(tp) in (list, List):
        inner = text.strip()
        if not (inner.startswith("[") and inner.endswith("]")):
            return text
        items = _split_items(inner[1:-1]) if inner[1:-1].strip() else []
        (item_tp,) = typing.get_args(tp)
        return [parse_scalar(t[1:-1] if len(t) > 1 and t[0] == t[-1] and t[0] in "'\"" else t, item_tp)
                for t in items]
    if tp is bool and text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    if tp is int and _INT_TEXT.fullmatch(text.strip()):
        if len(text.strip()) > MAX_NUMBER_TEXT:  # int() refuses past 4,300 digits, and no setting is near that
            raise ConfigError(f"a number of {len(text.strip().lstrip('+-'))} digits: no setting takes one that "
                              f"large")
        return int(text.strip())
    if tp is float and _FLOAT_TEXT.fullmatch(text.strip()):
        return float(text.strip())
    return text


def _check_union(value: Any, tp: Any, key: str, source: str) -> Any:
    """:func:`_check_value` for ``Optional[X]`` and a choice of types (a list or a word): the first that takes
    the value."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if value is None and len(args) < len(typing.get_args(tp)):
        return None
    for arg in args[:-1]:
        if isinstance(value, str) and arg is not str:
            try:
                value_as = parse_scalar(value, arg)
            except ConfigError as exc:
                raise ConfigError(f"{source}: key '{key}': {exc}") from None
            if value_as is value:
                continue
        try:
            return _check_value(value, arg, key, source)
        except ConfigError:
            continue
    if len(args) > 1:
        try:
            return _check_value(value, args[-1], key, source)
        except ConfigError:
            raise ConfigError(f"{source}: key '{key}' must be one of "
                              f"{' or '.join(_type_name(a) for a in args)}, got {_show(value)}") from None
    return _check_value(value, args[-1], key, source)


def _check_value(value: Any, tp: Any, key: str, source: str) -> Any:
    """Return ``value`` converted to ``tp`` or raise ConfigError naming ``key`` and ``source``.

    Text (every plain value of a config file, every override) is first read by :func:`parse_scalar`."""
    if isinstance(value, str) and tp is not str:
        try:
            value = parse_scalar(value, tp)
        except ConfigError as exc:
            raise ConfigError(f"{source}: key '{key}': {exc}") from None
    origin = typing.get_origin(tp)
    bad = ConfigError(
        f"{source}: key '{key}' must be {_type_name(tp)}, got {type(value).__name__} {_show(value)}"
    )
    if origin is typing.Union:
        return _check_union(value, tp, key, source)
    if origin in (list, List):
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise bad
        return [_check_value(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        try:
            return float(value)
        except OverflowError:  # an integer past float's range (a YAML !!int 0xfff...)
            raise ConfigError(f"{source}: key '{key}' must be a finite number, got {_show(value)}") from None
    if tp is str:
        if not isinstance(value, str):
            raise bad
        if has_control_chars(value):
            raise ConfigError(f"{source}: key '{key}' holds control characters ({shown(value)}); no path, name or "
                              f"choice has them")
        return value
    raise bad


def _field_types(section_cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(section_cls)


def _set_key(cfg: Config, dotted: str, value: Any, source: str) -> None:
    """Set ``section.key`` (or a unique bare ``key``) on ``cfg`` after checking its type."""
    if "." in dotted:
        section, key = dotted.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section '{shown(section)}' in key '{shown(dotted)}' "
                f"(sections: {', '.join(SECTIONS)})"
            )
    else:
        owners = [s for s in SECTIONS if dotted in _field_types(type(getattr(cfg, s)))]
        if not owners:
            raise ConfigError(f"{source}: unknown key '{shown(dotted)}'")
        if len(owners) > 1:
            raise ConfigError(
                f"{source}: key '{dotted}' is ambiguous, write one of "
                + ", ".join(f"{s}.{dotted}" for s in owners)
            )
        section, key = owners[0], dotted
    obj = getattr(cfg, section)
    types = _field_types(type(obj))
    if key not in types:
        raise ConfigError(
            f"{source}: unknown key '{section}.{shown(key)}' (known: {', '.join(sorted(types))})"
        )
    checked = _check_value(value, types[key], f"{section}.{key}", source)
    choices = _CHOICES.get(f"{section}.{key}")
    if choices is not None and checked not in choices:
        raise ConfigError(
            f"{source}: key '{section}.{key}' must be one of {list(choices)}, got {_show(checked)}"
        )
    setattr(obj, key, checked)


def config_from_dict(raw: Any, source: str = "<dict>", bases: Sequence[Tuple[Any, str]] = ()) -> Config:
    """Build a Config from a nested mapping ``{section: {key: value}}``. ``bases`` are ``(mapping, file)`` pairs
    set first, the furthest base first (:func:`load_config`), so a key is checked and named in the file that sets it
    and the later file's value replaces it whole; the relations between keys are checked once, on the result."""
    cfg = Config(source=source)
    for layer, where in [*bases, (raw, source)]:
        _set_sections(cfg, layer, where)
    validate(cfg)
    return cfg


def _set_sections(cfg: Config, raw: Any, source: str) -> None:
    """Set every ``section: {key: value}`` of one file's mapping on ``cfg``, each key type-checked."""
    if raw is None:
        raise ConfigError(f"{source}: the config is empty (only comments or blank lines); a config must set at "
                          f"least its data section (see config/demo_synthetic.yaml)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(raw).__name__}")
    for section, values in raw.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: unknown section '{shown(section)}' (sections: {', '.join(SECTIONS)})"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{shown(section)}' must be a mapping")
        for key, value in values.items():
            _set_key(cfg, f"{section}.{key}", value, source)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config file and apply command-line overrides.

    ``overrides`` is a flat list, either ``KEY VALUE KEY VALUE ...`` or
    ``KEY=VALUE ...`` (mixing is allowed).  Values are parsed as YAML scalars
    or lists (``[1,2,3]``), then type-checked like the file.
    """
    path = Path(path)
    layers = read_with_bases(path)
    cfg = config_from_dict(layers[-1][0], source=str(path), bases=layers[:-1])
    apply_overrides(cfg, overrides)
    return cfg


MAX_BASE_DEPTH = 8  # bases in one chain (a depth or data set variant needs one or two)


def read_with_bases(path: Path) -> List[Tuple[Any, str]]:
    """``(mapping, file)`` for ``path`` and the chain of configs it names with a top-level ``base: FILE`` (a path
    relative to the naming file), the furthest base first and ``base`` removed. A base that is not a string, cannot
    be read, closes a cycle or lies more than :data:`MAX_BASE_DEPTH` deep is one ConfigError naming the files."""
    layers: List[Tuple[Any, str]] = []
    chain: List[Path] = []
    while True:
        try:
            raw = read_yaml(path)
        except ConfigError as exc:
            if not chain:
                raise
            raise ConfigError(f"{shown(chain[-1], 300)}: base: {exc}") from None
        layers.append((raw, str(path)))
        chain.append(path)
        if not isinstance(raw, dict) or "base" not in raw:
            return layers[::-1]
        base = raw.pop("base")
        if not isinstance(base, str) or not base.strip() or has_control_chars(base):
            raise ConfigError(f"{shown(path, 300)}: base must name one config file (a path relative to this file), "
                              f"got {_show(base)}")
        path = path.parent / base
        names = " -> ".join(shown(p, 200) for p in chain + [path])
        if any(os.path.realpath(p) == os.path.realpath(path) for p in chain):
            raise ConfigError(f"{shown(chain[0], 300)}: its bases form a cycle ({names}); remove one base: line")
        if len(chain) > MAX_BASE_DEPTH:
            raise ConfigError(f"{shown(chain[0], 300)}: more than {MAX_BASE_DEPTH} bases in a chain ({names}); "
                              f"state the keys in fewer files")


def parse_overrides(items: Sequence[str]) -> List[Tuple[str, str]]:
    """Turn ``['a.b', '1', 'c=2']`` into ``[('a.b', '1'), ('c', '2')]``: the values stay text, read by the
    key's type when set (:func:`parse_scalar`)."""
    pairs: List[Tuple[str, str]] = []
    i = 0
    items = list(items)
    while i < len(items):
        item = items[i]
        if "=" in item and not item.startswith("="):
            key, text = item.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(items):
                raise ConfigError(f"override '{shown(item)}' has no value (use KEY VALUE or KEY=VALUE)")
            key, text = item, items[i + 1]
            i += 2
        pairs.append((key, text))
    return pairs


def apply_overrides(cfg: Config, overrides: Sequence[str]) -> Config:
    """Apply command-line overrides to ``cfg`` in place (and return it)."""
    for key, text in parse_overrides(overrides):
        _set_key(cfg, key, text, "command line (--opts)")
    validate(cfg, source="command line (--opts)")
    return cfg


def validate(cfg: Config, source: Optional[str] = None) -> None:
    """Check relations between keys that single-key type checks cannot see."""
    src = source or cfg.source
    if cfg.data.classes < 1:
        raise ConfigError(f"{src}: data.classes must be >= 1, got {cfg.data.classes}")
    if cfg.data.class_names and len(cfg.data.class_names) != cfg.data.classes:
        raise ConfigError(
            f"{src}: data.class_names has {len(cfg.data.class_names)} names but data.classes is {cfg.data.classes}"
        )
    if len(cfg.data.mean) != 3 or len(cfg.data.std) != 3:
        raise ConfigError(f"{src}: data.mean and data.std must have 3 values (RGB)")
    if not cfg.model.bins or any(b < 1 for b in cfg.model.bins):
        raise ConfigError(f"{src}: model.bins must be a non-empty list of positive sizes, got {cfg.model.bins}")
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError(f"{src}: model.dropout must be in [0, 1), got {cfg.model.dropout}")
    for section in SECTIONS:
        for name, value in dataclasses.asdict(getattr(cfg, section)).items():
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise ConfigError(f"{src}: {section}.{name} must be a finite number, got {value}")
    t = cfg.train
    if t.base_lr <= 0:
        raise ConfigError(f"{src}: train.base_lr must be > 0, got {t.base_lr}")
    for name in ("weight_decay", "power", "head_lr_mult", "aux_weight", "max_steps", "sink_size", "keep_last",
                 "eval_interval", "warmup_steps"):
        if getattr(t, name) < 0:
            raise ConfigError(f"{src}: train.{name} must be >= 0, got {getattr(t, name)}")
    if t.amp_level == "O2" and t.loss_scale == "none":
        raise ConfigError(f"{src}: train.amp_level O2 runs convolutions in float16 and needs a loss scale; set "
                          f"train.loss_scale to dynamic or fixed")
    if not 0 <= t.momentum < 1:
        raise ConfigError(f"{src}: train.momentum must be in [0, 1), got {t.momentum}")
    for name in ("crop_h", "crop_w", "batch_size", "epochs", "log_every", "save_every"):
        if getattr(t, name) < 1:
            raise ConfigError(f"{src}: train.{name} must be >= 1, got {getattr(t, name)}")
    if not 0 < t.scale_min <= t.scale_max:
        raise ConfigError(f"{src}: need 0 < train.scale_min <= train.scale_max, got {t.scale_min}, {t.scale_max}")
    if t.rotate_min > t.rotate_max:
        raise ConfigError(f"{src}: train.rotate_min must be <= train.rotate_max")
    e = cfg.eval
    if not e.scales or any(s <= 0 for s in e.scales):
        raise ConfigError(f"{src}: eval.scales must be a non-empty list of positive factors, got {e.scales}")
    if not 0 < e.stride_rate <= 1:
        raise ConfigError(f"{src}: eval.stride_rate must be in (0, 1], got {e.stride_rate}")
    _check_ranges(cfg, src)
    _validate_labels(cfg.data, cfg.train, src)


# Data sets whose label files are already read with a fixed map (ADE20K's 0 = other, Cityscapes' labelIds, ...):
# data.reduce_zero_label would shift them a second time.
SHIFTED_BY_NAME = ("voc2012", "ade20k", "cityscapes", "camvid", "kitti_road")


def _validate_labels(d: DataConfig, t: TrainConfig, src: str) -> None:
    """The label contract: the ignore value is no class, reduce_zero_label only where labels are not already
    mapped, class colours and weights one per class."""
    if d.ignore_label < d.classes:
        hint = (" If 0 marks unlabeled pixels in your masks, keep data.ignore_label 255 and set "
                "data.reduce_zero_label true (classes 1..N are read as 0..N-1)" if d.ignore_label == 0 else "")
        raise ConfigError(f"{src}: data.ignore_label {d.ignore_label} is one of the {d.classes} classes "
                          f"(0..{d.classes - 1}): that class could never be learned or scored; choose an ignore "
                          f"value of {d.classes} or more.{hint}")
    if d.reduce_zero_label and d.dataset in SHIFTED_BY_NAME:
        how = "already reads 0 as unlabeled (0 -> ignore, 1..150 -> 0..149)" if d.dataset == "ade20k" else \
            "has its own fixed label map"
        raise ConfigError(f"{src}: data.reduce_zero_label with data.dataset {d.dataset}: that data set {how}, so "
                          f"the shift would apply twice; remove data.reduce_zero_label (it is for custom data)")
    if d.reduce_zero_label and d.classes >= 255:
        raise ConfigError(f"{src}: data.reduce_zero_label reads values 1..{d.classes} as classes: at most 254")
    if d.class_colors and len(d.class_colors) != d.classes:
        raise ConfigError(f"{src}: data.class_colors has {len(d.class_colors)} colours for {d.classes} classes "
                          f"(one [r, g, b] per class)")
    if d.ignore_colors and not d.class_colors:
        raise ConfigError(f"{src}: data.ignore_colors needs data.class_colors (one [r, g, b] per class): both are "
                          f"what `prepare check --fix colors` maps RGB masks by")
    _check_colors(src, d.class_colors, d.ignore_colors)
    if d.class_names and d.allow_absent_classes:
        unknown = [n for n in d.allow_absent_classes if n not in d.class_names]
        if unknown:
            raise ConfigError(f"{src}: data.allow_absent_classes names {shown_names(unknown, 5, 60)}, not among "
                              f"data.class_names")
    _validate_class_weights(t.class_weights, d.classes, src)



def _check_colors(src: str, class_colors: List[List[int]], ignore_colors: List[List[int]]) -> None:
    """Each colour of data.class_colors and data.ignore_colors is [r, g, b] in 0-255, and names one meaning."""
    seen: Dict[tuple, str] = {}
    for key, colors in (("class_colors", class_colors), ("ignore_colors", ignore_colors)):
        for i, c in enumerate(colors):
            if len(c) != 3 or any(not 0 <= v <= 255 for v in c):
                raise ConfigError(f"{src}: data.{key}[{i}] must be [r, g, b] with values 0-255, got {_show(c)}")
            if tuple(c) in seen:
                raise ConfigError(f"{src}: data.{key}[{i}] repeats the colour of {seen[tuple(c)]} "
                                  f"({', '.join(map(str, c))}); each colour means one class, or unlabeled")
            seen[tuple(c)] = f"class {i}" if key == "class_colors" else f"data.ignore_colors[{i}]"

def _validate_class_weights(w, classes: int, src: str) -> None:
    """``train.class_weights``: none, auto, or one finite weight from 0 to 1e6 per class, not all 0."""
    if isinstance(w, str):
        if w.strip().startswith("["):
            raise ConfigError(f"{src}: train.class_weights must be a list of finite numbers (one per class), got "
                              f"{_show(w)}")
        if w not in ("none", "auto"):
            raise ConfigError(f"{src}: train.class_weights must be none, auto or a list of one weight per class, "
                              f"got {_show(w)}")
    else:
        if len(w) != classes:
            raise ConfigError(f"{src}: train.class_weights has {len(w)} weights for {classes} classes (one per "
                              f"class, in class order)")
        bad = [i for i, v in enumerate(w) if not (math.isfinite(v) and 0 <= v <= 1e6)]
        if bad:
            raise ConfigError(f"{src}: train.class_weights[{bad[0]}] must be a finite number from 0 to 1e6, got "
                              f"{w[bad[0]]}")
        if not any(float(np.float32(v)) > 0 for v in w):  # the loss computes in float32: 1e-300 is 0 there
            raise ConfigError(f"{src}: train.class_weights are all 0 (in float32, as the loss computes): no pixel "
                              f"would count in the loss")


def eval_list(cfg: Config) -> str:
    """The list file eval.py and the 310 flow evaluate: ``eval.list``, else ``data.val_list`` (the one training
    validates on); relative to ``data.data_root`` unless absolute."""
    return cfg.eval.list or cfg.data.val_list


def config_to_dict(cfg: Config) -> Dict[str, Dict[str, Any]]:
    """The resolved config as plain data (without ``source``)."""
    return {s: dataclasses.asdict(getattr(cfg, s)) for s in SECTIONS}


def config_yaml(cfg: Config) -> str:
    """The resolved config as YAML text (it loads back to an equal Config)."""
    return f"# resolved from {cfg.source}\n" + yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
