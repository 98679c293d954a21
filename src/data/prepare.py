"""Data preparation: VOC2012AUG (VOC2012 + SBD), ADE20K, Cityscapes and CamVid lists, and a list checker.

Usage:
  python -m src.data.prepare voc --voc-root VOCdevkit/VOC2012 --sbd-root benchmark_RELEASE/dataset
  python -m src.data.prepare ade20k --root ADEChallengeData2016
  python -m src.data.prepare cityscapes --root cityscapes
  python -m src.data.prepare camvid --root CamVid
  python -m src.data.prepare check --config config/voc2012_pspnet50.yaml [--which train|val|both]
  python -m src.data.prepare check --list data/voc2012/val.txt --root data/voc2012 --dataset voc2012
"""
from __future__ import annotations

import collections
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from src.data.dataset import DataError, read_image, read_label
from src.data.labels import IGNORE, dataset_spec
from src.outputs import OutputFolder, index_png

logger = logging.getLogger(__name__)

VOC_LINE = "JPEGImages/{0}.jpg SegmentationClassAug/{0}.png"


def _read_ids(path: Path) -> List[str]:
    if not path.is_file():
        raise DataError(f"id list not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def sbd_mat_to_png(mat_path: Path, folder: OutputFolder, name: str) -> None:
    """One SBD ``cls/*.mat`` (GTcls.Segmentation) -> single-channel index PNG."""
    from scipy.io import loadmat

    try:
        seg = loadmat(str(mat_path))["GTcls"]["Segmentation"][0][0]
    except (KeyError, IndexError, ValueError, OSError) as exc:
        raise DataError(f"cannot read SBD segmentation from {mat_path}: {exc}") from exc
    folder.put_bytes(name, index_png(np.asarray(seg, dtype=np.uint8)))


def prepare_voc_aug(voc_root: str, sbd_root: str, out_root: Optional[str] = None,
                    overwrite: bool = False) -> Dict[str, int]:
    """Build ``SegmentationClassAug`` and the lists ``train_aug.txt`` / ``val.txt`` under ``out_root``.

    train_aug = VOC train + SBD train + SBD val, minus every VOC val image
    (10,582 ids for the standard releases); val = VOC val (1,449).  Labels:
    SBD ``cls/*.mat`` converted to index PNGs, and VOC's own palette PNGs
    (read as indices) where VOC has the image, as is customary.
    ``out_root`` defaults to ``voc_root``; JPEGImages is linked there.
    """
    voc, sbd = Path(voc_root), Path(sbd_root)
    out = Path(out_root) if out_root else voc
    seg_sets = voc / "ImageSets" / "Segmentation"
    voc_train, voc_val = _read_ids(seg_sets / "train.txt"), _read_ids(seg_sets / "val.txt")
    sbd_train, sbd_val = _read_ids(sbd / "train.txt"), _read_ids(sbd / "val.txt")
    val_set = set(voc_val)
    train_aug = sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - val_set)
    with OutputFolder(out, "--out", "prepare", overwrite) as folder:
        folder.refuse_earlier(["train_aug.txt", "val.txt"], "pass --overwrite to write the lists again")
        if out != voc and not (out / "JPEGImages").exists():
            folder.link("JPEGImages", (voc / "JPEGImages").resolve())
        voc_labels = voc / "SegmentationClass"
        for i, name in enumerate(sorted(set(train_aug) | val_set)):
            dst = f"SegmentationClassAug/{name}.png"
            if folder.unchanged(dst):
                continue  # written by an earlier, interrupted prepare: the same bytes
            voc_png = voc_labels / f"{name}.png"
            if voc_png.is_file():
                with Image.open(voc_png) as im:
                    folder.put_bytes(dst, index_png(np.array(im).astype(np.uint8)))
            else:
                mat = sbd / "cls" / f"{name}.mat"
                if not mat.is_file():
                    raise DataError(f"no label for '{name}': neither {voc_png} nor {mat} exists")
                sbd_mat_to_png(mat, folder, dst)
            if i % 1000 == 0:
                logger.info("labels: %d done", i)
        folder.put_text("train_aug.txt", "\n".join(VOC_LINE.format(n) for n in train_aug) + "\n")
        folder.put_text("val.txt", "\n".join(VOC_LINE.format(n) for n in voc_val) + "\n")
    counts = {"train_aug": len(train_aug), "val": len(voc_val)}
    if counts != {"train_aug": 10582, "val": 1449}:
        logger.warning("counts %s differ from the standard VOC2012AUG (10582 / 1449)", counts)
    return counts


def _pairs(images: Iterable[Path], to_label, root: Path) -> List[str]:
    lines = []
    for img in sorted(images):
        lab = to_label(img)
        if not lab.is_file():
            raise DataError(f"no label {lab} for image {img}")
        lines.append(f"{img.relative_to(root)} {lab.relative_to(root)}")
    return lines


def _write_list(path: Path, lines: Sequence[str], overwrite: bool = False) -> int:
    """One list file in the data root; an earlier prepare's list is replaced only with ``overwrite``."""
    if not lines:
        raise DataError(f"no samples found for {path}")
    with OutputFolder(path.parent, "data root", "prepare", overwrite) as folder:
        folder.refuse_earlier([path.name], "pass --overwrite to write the lists again")
        folder.put_text(path.name, "\n".join(lines) + "\n")
    return len(lines)


def prepare_ade20k(root: str, overwrite: bool = False) -> Dict[str, int]:
    """``training.txt`` / ``validation.txt`` from ADEChallengeData2016's images/ and annotations/."""
    r = Path(root)
    return {split: _write_list(r / f"{split}.txt", _pairs(
        (r / "images" / split).glob("*.jpg"), lambda p, s=split: r / "annotations" / s / (p.stem + ".png"), r),
        overwrite) for split in ("training", "validation")}


def prepare_cityscapes(root: str, overwrite: bool = False) -> Dict[str, int]:
    """``fine_train.txt`` / ``fine_val.txt`` pairing leftImg8bit with gtFine labelIds.

    The labelId -> trainId mapping is applied when samples are read
    (``data.dataset: cityscapes``), so no converted copies are written.
    """
    r = Path(root)

    def label_of(img: Path) -> Path:
        city, split = img.parent.name, img.parent.parent.name
        return r / "gtFine" / split / city / img.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png")

    return {f"fine_{split}": _write_list(r / f"fine_{split}.txt",
                                        _pairs((r / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"), label_of, r),
                                        overwrite)
            for split in ("train", "val")}


def prepare_camvid(root: str, overwrite: bool = False) -> Dict[str, int]:
    """``train.txt`` / ``val.txt`` / ``test.txt`` for the SegNet CamVid-11 layout (X/ and Xannot/)."""
    r = Path(root)
    return {split: _write_list(r / f"{split}.txt", _pairs(
        (r / split).glob("*.png"), lambda p, s=split: r / f"{s}annot" / p.name, r), overwrite)
        for split in ("train", "val", "test")}


def check_list(list_file: str, data_root: str, dataset: str, classes: Optional[int] = None,
               class_names: Sequence[str] = ()) -> Dict[str, object]:
    """Walk every line of a list file and collect every problem, without stopping at the first.

    Returns ``{'samples': n, 'ok': n, 'problems': {kind: [messages]}}`` with
    kinds ``missing_file``, ``malformed_line``, ``unreadable_image``,
    ``unreadable_label``, ``size_mismatch`` and ``label_out_of_range``.
    """
    spec = dataset_spec(dataset, classes, class_names)
    problems: Dict[str, List[str]] = collections.defaultdict(list)
    path = Path(list_file)
    if not path.is_file():
        raise DataError(f"list file not found: {path}")
    lines = [(no, line.split()) for no, line in enumerate(path.read_text().splitlines(), 1)
             if line.strip() and not line.strip().startswith("#")]
    ok = 0
    for no, parts in lines:
        where = f"{path}:{no}"
        if len(parts) != 2:
            problems["malformed_line"].append(f"{where}: expected 'image label', got {len(parts)} columns")
            continue
        img_path, lab_path = (str(Path(data_root) / p) for p in parts)
        missing = [p for p in (img_path, lab_path) if not os.path.isfile(p)]
        if missing:
            problems["missing_file"].extend(f"{where}: file not found: {p}" for p in missing)
            continue
        try:
            image = read_image(img_path, where)
        except DataError as exc:
            problems["unreadable_image"].append(str(exc))
            image = None
        try:
            label = read_label(lab_path, spec, where)
        except DataError as exc:
            problems["unreadable_label"].append(str(exc))
            continue
        bad_sample = image is None
        if image is not None and image.shape[:2] != label.shape:
            problems["size_mismatch"].append(f"{where}: image {image.shape[1]}x{image.shape[0]} vs label "
                                             f"{label.shape[1]}x{label.shape[0]}")
            bad_sample = True
        values = np.unique(label)
        out_of_range = [int(v) for v in values if v >= spec.classes and v != IGNORE]
        if out_of_range:
            problems["label_out_of_range"].append(f"{where}: {lab_path} has values {out_of_range[:10]}")
            bad_sample = True
        ok += not bad_sample
    if not lines:
        problems["malformed_line"].append(f"{path}: the list is empty")
    return {"samples": len(lines), "ok": ok, "problems": dict(problems)}


def check_lines(report: Dict[str, object], list_file: str, show: int = 20) -> List[str]:
    """:func:`check_list`'s report as lines: the counts, then up to ``show`` messages per kind of problem."""
    problems: Dict[str, List[str]] = report["problems"]  # type: ignore[assignment]
    lines = [f"{list_file}: {report['samples']} samples, {report['ok']} fine"]
    for kind, items in problems.items():
        lines.append(f"  {kind}: {len(items)}")
        lines += [f"    {msg}" for msg in items[:show]]
        if len(items) > show:
            lines.append(f"    ... and {len(items) - show} more")
    return lines


def check_command(config: Optional[str], which: str, list_file: Optional[str], root: Optional[str], dataset: str,
                  classes: Optional[int]) -> Tuple[List[str], bool]:
    """``prepare check``: the report lines for the config's lists (``which``: train, val, both) or for one
    ``list_file`` under ``root``; and whether every list is clean."""
    if config:
        from src.config import load_config

        d = load_config(config).data
        lists = {"train": [d.train_list], "val": [d.val_list], "both": [d.train_list, d.val_list]}[which]
        jobs = [(os.path.join(d.data_root, lst), d.data_root, d.dataset, d.classes, d.class_names) for lst in lists]
    elif list_file and root:
        jobs = [(list_file, root, dataset, classes, ())]
    else:
        raise DataError("prepare check needs --config, or --list and --root")
    lines: List[str] = []
    clean = True
    for job in jobs:
        report = check_list(*job)
        lines += check_lines(report, job[0])
        clean &= not report["problems"]
    return lines, clean


if __name__ == "__main__":  # python -m src.data.prepare: the documented alias of python -m src prepare
    import sys

    from src.cli import main

    sys.exit(main(command="prepare", description=__doc__))
