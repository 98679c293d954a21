"""PyTorch state dicts -> MindSpore PSPNet parameter names (a rename, never positional).

Kinds:
  * ``semseg_backbone``: hszhao/semseg ImageNet ``resnet50_v2.pth`` / ``resnet101_v2.pth``
    (deep stem ``conv1/bn1/conv2/bn2/conv3/bn3`` -> ``layer0.0/1/3/4/6/7``);
  * ``torchvision``: torchvision ``resnet50/101`` (7x7 stem ``conv1/bn1`` -> ``layer0.0/1``),
    for ``model.deep_stem: false``;
  * ``semseg_pspnet``: a trained semseg PSPNet (``{'state_dict': ...}``, ``module.`` prefixes).

BatchNorm entries are recognised by name (a module that has ``running_mean``)
and renamed ``weight/bias/running_mean/running_var`` ->
``gamma/beta/moving_mean/moving_variance``; ``num_batches_tracked`` and the
ImageNet classifier ``fc.*`` are skipped and reported.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from src.errors import PSPNetError, shown, shown_names

logger = logging.getLogger(__name__)

KINDS = ("semseg_backbone", "torchvision", "semseg_pspnet")
BN_RENAME = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
SEMSEG_STEM = {"conv1": "layer0.0", "bn1": "layer0.1", "conv2": "layer0.3", "bn2": "layer0.4",
               "conv3": "layer0.6", "bn3": "layer0.7"}
TORCHVISION_STEM = {"conv1": "layer0.0", "bn1": "layer0.1"}
LAYER3_BLOCKS = {6: 50, 23: 101, 36: 152}


class ConversionError(PSPNetError, ValueError):
    """Weights that cannot be converted as asked; the message lists the offending keys."""


@dataclass
class ConversionReport:
    """What a conversion did with every source key."""

    kind: str
    layers: int
    deep_stem: bool
    classes: Optional[int]
    mapped: Dict[str, str] = field(default_factory=dict)
    skipped: List[str] = field(default_factory=list)
    unknown: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines a person can read."""
        lines = [f"kind {self.kind}, ResNet-{self.layers}, {'deep' if self.deep_stem else '7x7'} stem"
                 + (f", {self.classes} classes" if self.classes else ""),
                 f"mapped {len(self.mapped)} tensors",
                 f"skipped {len(self.skipped)} (not network weights): " + (shown_names(self.skipped, 8) or "-")]
        for title, items in (("unknown", self.unknown), ("shape mismatch", self.mismatched),
                             ("missing (network parameters not in the file)", self.missing)):
            if items:
                lines.append(f"{title} {len(items)}: " + shown_names(items, 8))
        return "\n".join(lines)


def detect_kind(sd: Mapping[str, np.ndarray]) -> str:
    """Guess the kind of a state dict from its keys and the stem's kernel size."""
    if any(k.startswith(("ppm.", "cls.")) for k in sd) or "layer0.0.weight" in sd:
        return "semseg_pspnet"
    w = sd.get("conv1.weight")
    if w is not None and w.ndim == 4 and w.shape[-1] == 7:
        return "torchvision"
    if w is not None and w.ndim == 4 and w.shape[-1] == 3 and "conv2.weight" in sd:
        return "semseg_backbone"
    raise ConversionError("cannot tell what these weights are (no ppm./cls./layer0. keys, no conv1.weight); "
                          "pass --kind explicitly")


def detect_layers(sd: Mapping[str, np.ndarray]) -> int:
    """ResNet depth from the number of blocks in layer3."""
    blocks = {int(m.group(1)) for k in sd for m in [re.match(r"layer3\.(\d+)\.", k)] if m}
    count = max(blocks) + 1 if blocks else 0
    if count not in LAYER3_BLOCKS:
        raise ConversionError(f"layer3 has {count} blocks; expected one of {sorted(LAYER3_BLOCKS)} (ResNet-50/101/152)")
    return LAYER3_BLOCKS[count]


def rename_key(key: str, kind: str, bn_modules: set) -> Optional[str]:
    """MindSpore name for one PyTorch key, or None if it is not a network weight (skipped)."""
    module, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
        return None
    if kind != "semseg_pspnet":
        if module == "fc":
            return None
        head, _, rest = module.partition(".")
        stem = SEMSEG_STEM if kind == "semseg_backbone" else TORCHVISION_STEM
        if head in stem and not rest:
            module = stem[head]
    if key.rpartition(".")[0] in bn_modules:
        leaf = BN_RENAME.get(leaf, leaf)
    return f"{module}.{leaf}" if module else leaf


def convert_state_dict(sd: Mapping[str, np.ndarray], kind: str = "auto", layers: Optional[int] = None
                       ) -> Tuple[Dict[str, np.ndarray], ConversionReport]:
    """Rename ``sd`` to MindSpore PSPNet names; returns the arrays and a report (no shape checks yet)."""
    if kind == "auto":
        kind = detect_kind(sd)
    if kind not in KINDS:
        raise ConversionError(f"unknown kind '{kind}'; choose auto or one of {', '.join(KINDS)}")
    found_layers = detect_layers(sd)
    if layers is not None and layers != found_layers:
        raise ConversionError(f"--layers {layers} given but the weights are ResNet-{found_layers} "
                              f"(layer3 has the block count of ResNet-{found_layers})")
    bn_modules = {k.rpartition(".")[0] for k in sd if k.endswith(".running_mean")}
    if kind == "semseg_pspnet":
        deep_stem = "layer0.6.weight" in sd
    else:
        deep_stem = kind == "semseg_backbone"
    classes = int(sd["cls.4.weight"].shape[0]) if "cls.4.weight" in sd else None
    report = ConversionReport(kind=kind, layers=found_layers, deep_stem=deep_stem, classes=classes)
    out: Dict[str, np.ndarray] = {}
    for key, value in sd.items():
        name = rename_key(key, kind, bn_modules)
        if name is None:
            report.skipped.append(key)
            continue
        if name in out:
            raise ConversionError(f"two source keys map to '{shown(name)}' (second: '{shown(key)}')")
        out[name] = _as_float32(value, key)
        report.mapped[key] = name
    return out, report


def _as_float32(value: np.ndarray, key: str) -> np.ndarray:
    """``value`` as float32, refused when the cast changes it beyond rounding: a finite value that overflows to
    inf (a float64 1e300), an integer float32 cannot hold exactly (int64 2^53 + 1, past 2^24)."""
    value = np.asarray(value)
    if value.dtype == np.float32:
        return np.ascontiguousarray(value)
    if value.dtype.kind not in "fiub":
        raise ConversionError(f"{shown(key)}: unsupported dtype {value.dtype} for a weight")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is found and named below
        cast = value.astype(np.float32)
    if value.dtype.kind == "f" and not np.array_equal(np.isfinite(cast), np.isfinite(value)):
        raise ConversionError(f"{shown(key)}: {value.dtype} values beyond float32's range (up to "
                              f"{float(np.abs(value[np.isfinite(value)]).max()):.3g}) would become inf")
    if value.dtype.kind in "iu" and value.size:
        back = cast.astype(value.dtype).reshape(-1)
        changed = np.flatnonzero(back != value.reshape(-1))
        if changed.size:
            raise ConversionError(f"{shown(key)}: {value.dtype} values that float32 cannot hold exactly (e.g. "
                                  f"{int(value.reshape(-1)[changed[0]])})")
    return np.ascontiguousarray(cast)


def check_against(params: Dict[str, np.ndarray], report: ConversionReport,
                  expected: Mapping[str, Tuple[int, ...]], allow_mismatch: bool = False) -> Dict[str, np.ndarray]:
    """Compare converted ``params`` with the network's ``expected`` name -> shape.

    Unknown names and shape mismatches are an error listing them all unless
    ``allow_mismatch``, in which case they are dropped and listed in the
    report.  Network parameters the file lacks are always listed in
    ``report.missing`` (a backbone file has no ``ppm/cls/aux``).
    """
    unknown = [n for n in params if n not in expected]
    mismatched = [f"{n}: file {tuple(params[n].shape)} vs network {tuple(expected[n])}"
                  for n in params if n in expected and tuple(params[n].shape) != tuple(expected[n])]
    report.unknown, report.mismatched = unknown, mismatched
    report.missing = [n for n in expected if n not in params]
    if (unknown or mismatched) and not allow_mismatch:
        listed = "; ".join(f"{t} ({len(v)}): {shown_names(v, 4)}" for t, v in (("unknown", unknown),
                                                                             ("shape mismatch", mismatched)) if v)
        stem = any(m.startswith("layer0.0.weight:") for m in mismatched)
        seven = any(re.match(r"layer0\.0\.weight: file \(\d+, \d+, 7, 7\)", m) for m in mismatched)
        fix = ("the stem does not fit: these are " + ("torchvision weights (a 7x7 stem): use --kind torchvision "
               "and train with model.deep_stem false" if seven else "weights of a deep stem: use --kind "
               "semseg_backbone")) if stem and report.kind != "semseg_pspnet" \
            else "check --kind / --layers against the file, or pass --allow-mismatch to drop these and convert the rest"
        raise ConversionError(f"the weights do not fit the {report.kind} network: {listed} - {fix}")
    bad = set(unknown) | {m.split(":")[0] for m in mismatched}
    return {n: v for n, v in params.items() if n not in bad}


def network_shapes(layers: int, deep_stem: bool, classes: int, backbone_only: bool) -> Dict[str, Tuple[int, ...]]:
    """Name -> shape of the MindSpore PSPNet (with aux head) these weights are meant for."""
    from src.model.pspnet import PSPNet

    net = PSPNet(classes=classes, layers=layers, deep_stem=deep_stem, use_aux=True)
    shapes = {p.name: tuple(p.shape) for p in net.get_parameters()}
    if backbone_only:
        shapes = {n: s for n, s in shapes.items() if n.startswith("layer")}
    return shapes


def convert_file(src: str, dst: str, kind: str = "auto", layers: Optional[int] = None,
                 allow_mismatch: bool = False, allow_non_finite: bool = False,
                 overwrite: bool = False) -> ConversionReport:
    """Convert the PyTorch file ``src`` into the MindSpore checkpoint ``dst``; return the report.

    The result is checked name by name and shape by shape against the
    MindSpore network it is meant for before anything is written.
    """
    from src.outputs.atomic import ensure_output_file
    from src.outputs.folder import OutputFolder

    ensure_output_file(dst, "--dst")
    name = os.path.basename(dst)
    with OutputFolder(os.path.dirname(dst) or ".", "--dst folder", "convert", overwrite) as folder:
        folder.refuse_earlier([name], "pass --overwrite to replace it, or choose another --dst")
        folder.refuse_foreign([name, name + ".sha256"])
        return _convert_into(src, name, folder, kind, layers, allow_mismatch, allow_non_finite)


def _convert_into(src: str, name: str, folder, kind: str, layers: Optional[int], allow_mismatch: bool,
                  allow_non_finite: bool) -> ConversionReport:
    """The conversion, written as ``name`` in the locked output folder."""
    from src.checkpoint.files import arrays_to_entries, non_finite_names, save_checkpoint_atomic
    from src.convert.pth import extract_state_dict, load_pth

    sd = extract_state_dict(load_pth(src), src)
    bad = non_finite_names(sd)
    if bad and not allow_non_finite:
        raise ConversionError(f"{src}: {len(bad)} tensors hold NaN or infinite values: {shown_names(bad, 10)}; "
                              f"nothing was written. Pass --allow-non-finite to convert them anyway")
    if bad:
        logger.warning("%s: converting %d tensors with NaN or infinite values (allowed): %s", src, len(bad),
                       shown_names(bad, 10))
    try:  # these two see only the weights: the message gets the file's name here
        params, report = convert_state_dict(sd, kind, layers)
        expected = network_shapes(report.layers, report.deep_stem, report.classes or 21,
                                  backbone_only=report.kind != "semseg_pspnet")
        if report.kind == "semseg_pspnet" and "aux.0.weight" not in params:
            expected = {n: s for n, s in expected.items() if not n.startswith("aux.")}
        params = check_against(params, report, expected, allow_mismatch)
    except ConversionError as exc:
        raise ConversionError(f"{src}: {exc}") from None
    if report.kind == "semseg_pspnet" and report.missing and not allow_mismatch:
        raise ConversionError(f"{src}: a full PSPNet checkpoint lacks network parameters:\n" + report.summary())
    dst = save_checkpoint_atomic(arrays_to_entries(params), name, folder)
    logger.info("%s -> %s\n%s", src, dst, report.summary())
    return report
