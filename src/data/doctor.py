"""The data doctor: one scan of a list's label files, what it says about the data, and what it refuses.

:func:`scan_list` reads every label of a list file once (and, for the report, every image) and counts, per
class, the pixels and the images that hold it, the ignored pixels and the raw values of the files.
:func:`diagnose` turns the scans of the train and val lists into problems that name their fix (0/255 binary
masks, RGB colour masks, 0 used for unlabeled pixels, classes that never occur, mostly ignored labels, files in
both splits). Training runs :func:`training_label_check` on the training list's scan before its first step.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from src.data.dataset import (DataError, LabelKindError, Sample, header_size, label_value_hint, read_image,
                              read_list, read_raw_label)
from src.config import ConfigError
from src.data.labels import DatasetSpec
from src.errors import shown, shown_names
from src.progress import Progress

logger = logging.getLogger(__name__)

MOSTLY_IGNORED = 0.95  # training refuses labels whose pixels are at least this share ignored
SCAN_VERSION = 2  # bump when what a scan records changes: older caches are scanned again


@dataclass
class ListScan:
    """What one pass over a list file's samples found."""

    list_file: str
    classes: int
    samples: int = 0
    ok: int = 0
    class_pixels: np.ndarray = None  # type: ignore[assignment]  # (classes,) pixels of each class
    class_images: np.ndarray = None  # type: ignore[assignment]  # (classes,) images holding each class
    raw_values: np.ndarray = None  # type: ignore[assignment]  # (256,) pixels of each value in the files
    class_image_pixels: np.ndarray = None  # type: ignore[assignment]  # (classes,) pixels of the images holding c
    ignored: int = 0
    pixels: int = 0
    rgb_masks: int = 0
    binary_files: int = 0  # masks holding 0 and 255 and nothing else
    class_files: int = 0  # masks holding a value from 1 to classes-1
    images: List[str] = field(default_factory=list)
    problems: Dict[str, List[str]] = field(default_factory=lambda: collections.defaultdict(list))

    def __post_init__(self) -> None:
        for name, size in (("class_pixels", self.classes), ("class_images", self.classes), ("raw_values", 256),
                           ("class_image_pixels", self.classes)):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(size, np.int64))

    @property
    def ignored_share(self) -> float:
        """The share of the read labels' pixels that are ignored (0 when nothing was read)."""
        return self.ignored / self.pixels if self.pixels else 0.0

    def to_json(self) -> Dict:
        """The counts as plain data (the training cache)."""
        return {"list_file": self.list_file, "classes": self.classes, "samples": self.samples, "ok": self.ok,
                "class_pixels": self.class_pixels.tolist(), "class_images": self.class_images.tolist(),
                "raw_values": self.raw_values.tolist(), "class_image_pixels": self.class_image_pixels.tolist(),
                "ignored": self.ignored, "pixels": self.pixels,
                "rgb_masks": self.rgb_masks, "binary_files": self.binary_files, "class_files": self.class_files,
                "problems": {k: v for k, v in self.problems.items()}}

    @classmethod
    def from_json(cls, obj: Dict) -> "ListScan":
        """The inverse of :meth:`to_json` (raises KeyError/TypeError/ValueError on a malformed record)."""
        scan = cls(str(obj["list_file"]), int(obj["classes"]), int(obj["samples"]), int(obj["ok"]),
                   np.asarray(obj["class_pixels"], np.int64), np.asarray(obj["class_images"], np.int64),
                   np.asarray(obj["raw_values"], np.int64),
                   np.asarray(obj["class_image_pixels"], np.int64), int(obj["ignored"]), int(obj["pixels"]),
                   int(obj["rgb_masks"]), int(obj["binary_files"]), int(obj["class_files"]))
        if scan.class_pixels.shape != (scan.classes,) or scan.class_images.shape != (scan.classes,) or \
                scan.raw_values.shape != (256,) or scan.class_image_pixels.shape != (scan.classes,):
            raise ValueError("counts of the wrong length")
        for kind, items in dict(obj["problems"]).items():
            scan.problems[str(kind)] = [str(i) for i in items]
        return scan


def value_map(spec: DatasetSpec) -> np.ndarray:
    """(256,) what each file value reads as (a class, or the ignore value) under ``spec``."""
    return spec.map_label(np.arange(256, dtype=np.uint8).reshape(1, -1)).reshape(-1)


def scan_samples(samples: Sequence[Sample], spec: DatasetSpec, list_file: str, read_images: bool = False,
                 what: str = "labels") -> ListScan:
    """Read every sample's label once (and its image when ``read_images``; else only the image's header for
    its size) and count; every problem is collected, none stops the scan."""
    scan = ListScan(list_file, spec.classes, samples=len(samples))
    lut = value_map(spec)
    progress = Progress(len(samples), what) if len(samples) >= 2000 else None  # a VOC-sized list takes a minute
    for i, sample in enumerate(samples, start=1):
        scan.ok += _scan_one(sample, spec, lut, scan, read_images)
        scan.images.append(os.path.normpath(sample.image))
        if progress:
            progress.update(i)
    return scan


def _image_size(sample: Sample, scan: ListScan, read_images: bool) -> Optional[Tuple[int, int]]:
    """The image's (height, width), from its pixels or (not ``read_images``) its header; None when it cannot be
    read (recorded in ``scan``)."""
    try:
        if read_images:
            return read_image(sample.image, sample.where).shape[:2]
        w, h = header_size(sample.image, f"{sample.where}: ")
        return (h, w)
    except DataError as exc:
        scan.problems["unreadable_image"].append(str(exc))
        return None


def _scan_one(sample: Sample, spec: DatasetSpec, lut: np.ndarray, scan: ListScan, read_images: bool) -> bool:
    """Count one sample into ``scan``; False when it has a problem (recorded under its kind)."""
    where = sample.where
    if sample.label and os.path.normpath(sample.image) == os.path.normpath(sample.label):
        scan.problems["image_is_mask"].append(f"{where}: the image and the label are one file "
                                              f"({shown(sample.image, 300)})")
        return False
    missing = [p for p in (sample.image, sample.label) if p and not os.path.isfile(p)]
    if missing:
        scan.problems["missing_file"] += [f"{where}: file not found: {shown(p, 300)}" for p in missing]
        return False
    size = _image_size(sample, scan, read_images)
    if sample.label is None:
        scan.problems["malformed_line"].append(f"{where}: no label column")
        return False
    try:
        raw = read_raw_label(sample.label, spec, where)
    except LabelKindError as exc:
        scan.rgb_masks += 1
        scan.problems["rgb_masks"].append(str(exc))
        return False
    except DataError as exc:
        scan.problems["unreadable_label"].append(str(exc))
        return False
    fine = size is not None
    if size is not None and tuple(size) != raw.shape:
        scan.problems["size_mismatch"].append(f"{where}: image {sample.image} is {size[1]}x{size[0]} but label "
                                              f"{sample.label} is {raw.shape[1]}x{raw.shape[0]}")
        fine = False
    hist = np.bincount(raw.ravel(), minlength=256).astype(np.int64)
    scan.raw_values += hist
    values = set(np.flatnonzero(hist).tolist())
    scan.binary_files += values == {0, 255} or values == {255}
    scan.class_files += any(1 <= v < spec.classes for v in values)
    bad = spec.out_of_range(np.flatnonzero(hist).astype(np.uint8))
    if bad:
        scan.problems["label_out_of_range"].append(f"{where}: {sample.label} has values {bad[:10]}"
                                                   f"{label_value_hint(bad, spec)}")
        return False
    per_value = np.bincount(lut, weights=hist, minlength=256).astype(np.int64)  # pixels per read value
    scan.class_pixels += per_value[:spec.classes]
    scan.class_images += per_value[:spec.classes] > 0
    scan.class_image_pixels += (per_value[:spec.classes] > 0) * int(hist.sum())
    scan.ignored += int(per_value[spec.ignore_label])
    scan.pixels += int(hist.sum())
    return fine


def scan_list(list_file: str, data_root: str, spec: DatasetSpec, read_images: bool = False) -> ListScan:
    """:func:`scan_samples` over a list file; a list whose lines cannot be parsed is one ``malformed_line``
    problem (its lines are listed in the message)."""
    try:
        samples = read_list(list_file, data_root, require_labels=True, check_files=False)
    except DataError as exc:
        scan = ListScan(str(list_file), spec.classes)
        scan.problems["malformed_line"].append(str(exc))
        return scan
    return scan_samples(samples, spec, str(list_file), read_images)


# --- what the counts say ------------------------------------------------------------------------------------------

def mask_kind(scan: ListScan, spec: DatasetSpec) -> str:
    """The kind of masks a scan saw: ``rgb``, ``binary_255``, ``zero_unlabeled``, ``index`` (or ``none``)."""
    present = set(np.flatnonzero(scan.raw_values).tolist())
    if scan.rgb_masks and not present:
        return "rgb"
    if not present:
        return "none"
    if not spec.reduce_zero_label and spec.ignore_label == 255 and present == {0, 255} and spec.classes >= 2 \
            and spec.label_map(np.array([[0, 255]], np.uint8), 255).tolist() == [[0, 255]]:
        return "binary_255"
    if not spec.reduce_zero_label and spec.ignore_label != spec.classes and 0 in present and \
            spec.classes in present and all(v <= spec.classes or v == spec.ignore_label for v in present) and \
            value_map(spec)[spec.classes] == spec.classes:  # (N is the ignore value itself where ignore_label is N)
        return "zero_unlabeled"
    return "index"


def diagnose(train: Optional[ListScan], val: Optional[ListScan], spec: DatasetSpec, config: str = "CONFIG",
             allow_absent: Sequence[str] = ()) -> Dict[str, List[str]]:
    """Problems of the data as a whole, each naming its fix (``config``: the config's path for the commands)."""
    found: Dict[str, List[str]] = collections.defaultdict(list)
    for name, scan in (("train", train), ("val", val)):
        if scan is None:
            continue
        kind = mask_kind(scan, spec)
        if kind == "binary_255":
            found["binary_masks"].append(
                f"{name}: the masks hold only 0 and 255: 0/255 binary masks? The foreground is 255 = "
                f"data.ignore_label, so it would be ignored and nothing but background learned. Write fixed copies "
                f"(255 -> 1): python -m src prepare check --config {config} --fix binary --out DIR")
        elif scan.binary_files and scan.class_files and spec.classes == 2 and spec.ignore_label == 255 and \
                not spec.reduce_zero_label:
            found["binary_masks"].append(
                f"{name}: {scan.binary_files} of the masks hold only 0 and 255 while {scan.class_files} hold class 1: "
                f"0/255 masks among 0/1 ones? Their foreground is 255 = data.ignore_label and would be ignored. Write "
                f"fixed copies of those (255 -> 1) or save them as 0/1")
        elif scan.rgb_masks:
            found["rgb_masks"].append(
                f"{name}: {scan.rgb_masks} label file(s) are RGB colour masks; the loader reads class indices. With "
                f"data.class_colors ([r, g, b] per class) write index copies: python -m src prepare check --config "
                f"{config} --fix colors --out DIR")
        elif kind == "zero_unlabeled":
            found["zero_unlabeled"].append(
                f"{name}: the masks hold 0..{spec.classes} for {spec.classes} classes: is 0 unlabeled? Set "
                f"data.reduce_zero_label true (1..{spec.classes} become classes 0..{spec.classes - 1}); or "
                f"data.classes {spec.classes + 1} if 0 is a class")
    if train is not None and train.pixels:
        absent = [spec.class_names[c] for c in range(spec.classes)
                  if train.class_pixels[c] == 0 and spec.class_names[c] not in allow_absent]
        if absent and "binary_masks" not in found:
            found["absent_classes"].append(
                f"train: no pixel of class(es) {shown_names(absent, 8, 60)} in {train.list_file}: a class the "
                f"network never sees cannot be learned. Add samples that hold it, remove it from data.classes / "
                f"data.class_names, or list it in data.allow_absent_classes if that is on purpose")
        if train.ignored_share >= MOSTLY_IGNORED and "binary_masks" not in found:
            found["mostly_ignored"].append(
                f"train: {train.ignored_share:.1%} of the labels' pixels are data.ignore_label {spec.ignore_label}: "
                f"the loss would learn from almost nothing. Is the ignore value right for these masks?")
    if train is not None and val is not None:
        both = sorted(set(train.images) & set(val.images))
        if both:
            found["in_both_splits"].append(
                f"{len(both)} image(s) are in both the train and the val list ({shown_names(both, 3, 120)}): "
                f"validation would score images the network trained on")
    return dict(found)


RARE_SHARE = 1e-4  # a class under this share of the labelled pixels is named as rare (a stray value or colour?)


def rare_classes(scan: ListScan, spec: DatasetSpec) -> List[str]:
    """Notes (not problems) on classes so rare in ``scan`` that they may be a stray value or colour."""
    total = int(scan.class_pixels.sum())
    notes = []
    for c in range(spec.classes):
        pixels = int(scan.class_pixels[c])
        if total and 0 < pixels < RARE_SHARE * total:
            notes.append(f"class {shown(spec.class_names[c], 40)} has {pixels} pixel(s) ({pixels / total:.4%} of the "
                         f"labelled ones) in {int(scan.class_images[c])} image(s): a stray value or colour in the "
                         f"masks? (train.class_weights auto would weight it very high)")
    return notes


def check_allowed_absent(allow_absent: Sequence[str], spec: DatasetSpec) -> None:
    """``data.allow_absent_classes`` must name classes of the data set."""
    unknown = [n for n in allow_absent if n not in spec.class_names]
    if unknown:
        raise ConfigError(f"data.allow_absent_classes names {shown_names(unknown, 5, 60)}, which is no class of this "
                          f"data set ({shown_names(spec.class_names, 6, 30)})")


def training_label_check(scan: ListScan, spec: DatasetSpec, allow_absent: Sequence[str], config: str) -> None:
    """Refuse to train (one :class:`DataError` line naming the class and the fix) on labels that cannot teach
    what the config declares: a class without a pixel, or labels that are mostly ignored."""
    check_allowed_absent(allow_absent, spec)
    found = diagnose(scan, None, spec, config, allow_absent)
    for kind in ("binary_masks", "rgb_masks", "zero_unlabeled", "absent_classes", "mostly_ignored"):
        if found.get(kind):
            raise DataError(f"refusing to train: {found[kind][0].removeprefix('train: ')}")


def median_frequency_weights(scan: ListScan) -> List[float]:
    """Median-frequency balancing (Eigen and Fergus): ``w_c = median(f) / f_c`` with ``f_c`` = the class's pixels
    over all pixels of the images that hold it; a class with no pixel gets 0."""
    present = scan.class_pixels > 0
    freq = np.zeros(scan.classes)
    freq[present] = scan.class_pixels[present] / scan.class_image_pixels[present]
    median = float(np.median(freq[present])) if present.any() else 0.0
    weights = np.zeros(scan.classes)
    weights[present] = median / freq[present]
    return [round(float(w), 6) for w in weights]


# --- the report ---------------------------------------------------------------------------------------------------

def class_table(scans: Dict[str, ListScan], spec: DatasetSpec) -> List[str]:
    """A Markdown table: per class, each split's pixels (share of labelled pixels) and images."""
    names = list(scans)
    head = "| class | " + " | ".join(f"{n} pixels | {n} images" for n in names) + " |"
    lines = [head, "|" + "---|" * (1 + 2 * len(names))]
    for c in range(spec.classes):
        cells = []
        for n in names:
            s = scans[n]
            labelled = max(int(s.class_pixels.sum()), 1)
            cells.append(f"{int(s.class_pixels[c])} ({s.class_pixels[c] / labelled:.1%}) | {int(s.class_images[c])}")
        lines.append(f"| {c} {shown(spec.class_names[c], 40)} | " + " | ".join(cells) + " |")
    cells = [f"{s.ignored} ({s.ignored_share:.1%} of all) | -" for s in scans.values()]
    lines.append(f"| ignored ({spec.ignore_label}) | " + " | ".join(cells) + " |")
    return lines


def report_lines(scans: Dict[str, ListScan], found: Dict[str, List[str]], spec: DatasetSpec, show: int = 20) -> List[str]:
    """The doctor's text: per list the counts and per-sample problems, the class table, the data problems."""
    lines: List[str] = []
    for name, scan in scans.items():
        lines.append(f"{scan.list_file}: {scan.samples} samples, {scan.ok} fine; masks: {mask_kind(scan, spec)}; "
                     f"ignored pixels {scan.ignored_share:.1%}")
        for kind, items in scan.problems.items():
            if kind == "rgb_masks":
                continue  # said once for the list below
            lines.append(f"  {kind}: {len(items)}")
            lines += [f"    {msg}" for msg in items[:show]]
            if len(items) > show:
                lines.append(f"    ... and {len(items) - show} more")
    if any(s.pixels for s in scans.values()):
        lines += [""] + class_table(scans, spec)
    notes = rare_classes(scans["train"], spec) if "train" in scans else []
    if notes:
        lines += ["", "notes:"] + [f"  train: {n}" for n in notes]
    if found:
        lines += ["", "problems with the data:"]
        for kind, items in found.items():
            lines += [f"  {kind}: {msg}" for msg in items]
    return lines


def bar_chart(scans: Dict[str, ListScan], spec: DatasetSpec):
    """A matplotlib figure: each class's share of its split's labelled pixels, one bar per split."""
    from src.plotting import label_axes, new_figure

    fig = new_figure(max(6.0, 0.5 * spec.classes + 2), 4.0)
    ax = fig.subplots()
    width = 0.8 / max(len(scans), 1)
    x = np.arange(spec.classes)
    for i, (name, scan) in enumerate(scans.items()):
        share = scan.class_pixels / max(int(scan.class_pixels.sum()), 1)
        ax.bar(x + i * width - 0.4 + width / 2, share, width, label=name)
    ax.set_xticks(x, [shown(n, 20) for n in spec.class_names], rotation=60 if spec.classes > 8 else 0,
                  fontsize="small")
    label_axes(ax, "class", "share of labelled pixels", "pixels per class", grid_axis="y")
    return fig


# --- the training scan's cache ------------------------------------------------------------------------------------

def scan_fingerprint(list_file: str, data_root: str, spec: DatasetSpec, samples: Sequence[Sample]) -> str:
    """What a cached scan depends on: the list's bytes, how labels are read, and each label file's size and
    modification time (a changed mask changes it)."""
    h = hashlib.sha256()
    h.update(json.dumps([SCAN_VERSION, os.path.abspath(data_root), spec.name, spec.classes, spec.ignore_label,
                         spec.reduce_zero_label]).encode())
    h.update(Path(list_file).read_bytes())
    for s in samples:
        try:
            st = os.stat(s.label) if s.label else None
            h.update(f"{s.label}\0{st.st_size if st else -1}\0{st.st_mtime_ns if st else -1}\n".encode())
        except OSError:
            h.update(f"{s.label}\0missing\n".encode())
    return h.hexdigest()
