"""Data preparation: VOC2012AUG (VOC2012 + SBD), ADE20K, Cityscapes and CamVid lists, and a list checker.

Usage:
  python -m src prepare voc --voc-root VOCdevkit/VOC2012 --sbd-root benchmark_RELEASE/dataset
  python -m src prepare ade20k --root ADEChallengeData2016
  python -m src prepare cityscapes --root cityscapes
  python -m src prepare camvid --root CamVid
  python -m src prepare check --config config/voc2012_pspnet50.yaml [--which train|val|both]
  python -m src prepare check --list data/voc2012/val.txt --root data/voc2012 --dataset voc2012
"""
from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from src.config import Config, ConfigError, DataConfig, config_yaml
from src.data.dataset import DataError, LabelKindError, Sample, label_image, read_list, read_raw_label
from src.data.encode import index_png, palette_png
from src.data.doctor import ListScan, bar_chart, diagnose, report_lines, scan_list
from src.data.labels import DatasetSpec, dataset_spec, spec_of
from src.errors import has_control_chars, shown, shown_names
from src.plotting import figure_bytes
from src.outputs.folder import OutputFolder

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
               class_names: Sequence[str] = (), ignore_label: int = DataConfig.ignore_label,
               reduce_zero_label: bool = False) -> Dict[str, object]:
    """Walk every line of a list file and collect every problem, without stopping at the first.

    Returns ``{'samples': n, 'ok': n, 'problems': {kind: [messages]}}`` with
    kinds ``missing_file``, ``malformed_line``, ``unreadable_image``,
    ``unreadable_label``, ``rgb_masks``, ``size_mismatch`` and ``label_out_of_range``.
    """
    spec = dataset_spec(dataset, classes, class_names, ignore_label, reduce_zero_label)
    scan = _scan(list_file, data_root, spec)
    return {"samples": scan.samples, "ok": scan.ok, "problems": dict(scan.problems)}


def _scan(list_file: str, data_root: str, spec: DatasetSpec) -> ListScan:
    if not Path(list_file).is_file():
        raise DataError(f"list file not found: {list_file}")
    scan = scan_list(list_file, data_root, spec, read_images=True)
    if not scan.samples and not scan.problems:
        scan.problems["malformed_line"].append(f"{list_file}: the list is empty")
    return scan


REPORT_NAME, CHART_NAME = "data_report.md", "class_pixels.png"


def check_command(config: Optional[str], which: str, list_file: Optional[str], root: Optional[str], dataset: str,
                  classes: Optional[int], out: Optional[str] = None, overwrite: bool = False,
                  overrides: Sequence[str] = ()) -> Tuple[List[str], bool]:
    """``prepare check`` (the data doctor): the report lines for the config's lists (``which``: train, val,
    both) or for one ``list_file`` under ``root``, and whether the data is clean. With ``out`` the table and a
    class bar chart are also written there."""
    if config:
        from src.compat import load_any_config

        cfg = load_any_config(config, list(overrides))
        d = cfg.data
        spec = spec_of(d)
        lists = {"train": ["train"], "val": ["val"], "both": ["train", "val"]}[which]
        jobs = {name: (_in_root(d.data_root, d.train_list if name == "train" else d.val_list), d.data_root)
                for name in lists}
        allow = d.allow_absent_classes
    elif list_file and root:
        spec = dataset_spec(dataset, classes)
        jobs, allow, config = {"list": (list_file, root)}, (), "CONFIG"
    else:
        raise DataError("prepare check needs --config, or --list and --root")
    scans = {name: _scan(path, data_root, spec) for name, (path, data_root) in jobs.items()}
    found = diagnose(scans.get("train"), scans.get("val"), spec, config, allow)
    lines = report_lines(scans, found, spec)
    if out:
        with OutputFolder(out, "--out", "prepare", overwrite) as folder:
            folder.refuse_earlier([REPORT_NAME, CHART_NAME], "pass --overwrite to replace them")
            folder.put_text(REPORT_NAME, "# Data report\n\n" + "\n".join(lines) + "\n")
            folder.put_bytes(CHART_NAME, figure_bytes(bar_chart(scans, spec), CHART_NAME))
        lines.append(f"report: {Path(out) / REPORT_NAME}, {Path(out) / CHART_NAME}")
    clean = not found and not any(s.problems for s in scans.values())
    return lines, clean


def _in_root(data_root: str, name: str) -> str:
    return name if os.path.isabs(name) else os.path.join(data_root, name)


# --- fixes: new copies of the masks, never in place ----------------------------------------------------------------


def fix_command(config: str, kind: str, out: str, overwrite: bool = False,
                overrides: Sequence[str] = ()) -> List[str]:
    """``prepare check --fix binary|colors --out DIR``: fixed copies of every train and val mask, the two list
    files and a ``config.yaml`` (absolute paths) that trains as it is; the user's masks are only read."""
    from src.compat import load_any_config

    cfg = load_any_config(config, list(overrides))
    d = cfg.data
    if kind == "colors" and not d.class_colors:
        raise ConfigError(f"{config}: --fix colors needs data.class_colors: one [r, g, b] per class, in class "
                          f"order (e.g. data: {{class_colors: [[0, 0, 0], [128, 0, 0], ...]}})")
    if kind == "binary" and d.classes < 2:
        raise ConfigError(f"{config}: --fix binary writes classes 0 (background) and 1 (foreground): set "
                          f"data.classes 2")
    out_path = Path(out).resolve()
    splits = {name: read_list(_in_root(d.data_root, lst), d.data_root)
              for name, lst in (("train", d.train_list), ("val", d.val_list))}
    spec = spec_of(d)
    colors = {tuple(c): d.ignore_label for c in d.ignore_colors}  # unlabeled: the loss and the scores skip them
    colors.update({tuple(c): i for i, c in enumerate(d.class_colors)})
    palette = spec.palette
    written = 0
    _refuse_writing_over_inputs(out_path, splits, d.data_root,
                                [_in_root(d.data_root, d.train_list), _in_root(d.data_root, d.val_list), config])
    with OutputFolder(out_path, "--out", "prepare", overwrite) as folder:
        folder.refuse_earlier(["masks/", "train.txt", "val.txt", "config.yaml"],
                              "pass --overwrite to write the fixed copies again")
        lists: Dict[str, List[str]] = {}
        names: Dict[str, str] = {}
        for split, samples in splits.items():
            lines = []
            for sample in samples:
                if sample.label not in names:  # a mask listed twice (in both splits) is written once
                    names[sample.label] = _mask_name(sample.label, d.data_root, names.values())
                    folder.put_bytes(names[sample.label], palette_png(_fixed_mask(sample, kind, colors), palette))
                    written += 1
                name = names[sample.label]
                lines.append(f"{os.path.abspath(sample.image)}\t{name}")
            lists[split] = lines
        for split, lines in lists.items():
            folder.put_text(f"{split}.txt", "\n".join(lines) + "\n")
        fixed_cfg = _absolute_config(cfg, out_path)
        folder.put_text("config.yaml", f"# written by `prepare check --fix {kind}` from {cfg.source}\n"
                        + config_yaml(fixed_cfg))
    return [f"wrote {written} fixed masks ({kind}) under {out_path / 'masks'}, train.txt ({len(lists['train'])}), "
            f"val.txt ({len(lists['val'])}) and config.yaml; your masks were only read",
            *(["the copies hold the class indices themselves: config.yaml sets data.reduce_zero_label false"]
              if d.reduce_zero_label else []),
            f"next: python -m src prepare check --config {out_path / 'config.yaml'}",
            f"then: python train.py --config {out_path / 'config.yaml'}"]


def _refuse_writing_over_inputs(out: Path, splits: Dict[str, List[Sample]], data_root: str,
                                others: Sequence[str]) -> None:
    """One line, before anything is written, when a fixed copy, a list or the config would land on a file the fix
    reads (an image, a mask, a list, the config: ``--out`` is the data's own folder): with or without
    --overwrite, a fix never writes in place."""
    inputs = {os.path.realpath(p) for samples in splits.values() for s in samples for p in (s.image, s.label) if p}
    inputs |= {os.path.realpath(p) for p in others}
    names: Dict[str, str] = {}
    for samples in splits.values():
        for sample in samples:
            if sample.label not in names:
                names[sample.label] = _mask_name(sample.label, data_root, names.values())
    for name in [*names.values(), "train.txt", "val.txt", "config.yaml"]:
        target = os.path.realpath(out / name)
        if target in inputs:
            raise DataError(f"--out {shown(out, 200)} would write {name} over {shown(target, 200)}, a file the fix "
                            f"reads: fixes write new copies, never in place; choose another --out")


def _mask_name(label: str, data_root: str, taken) -> str:
    """The fixed copy's name under masks/: the label's path below the data root, as .png, made unique."""
    try:
        rel = Path(os.path.relpath(label, data_root))
        rel = rel if ".." not in rel.parts else Path(Path(label).name)
    except ValueError:
        rel = Path(Path(label).name)
    base = (Path("masks") / rel).with_suffix(".png").as_posix()
    name, i = base, 1
    taken = set(taken)
    while name in taken:
        name, i = f"{base[:-4]}_{i}.png", i + 1
    return name


def _fixed_mask(sample: Sample, kind: str, colors: Dict[tuple, int]) -> np.ndarray:
    """One mask's fixed class indices; a mask the fix does not fit is one DataError naming the file."""
    path, where = sample.label, sample.where
    if kind == "binary":
        raw = read_raw_label(path, dataset_spec("custom", 2), where)
        values = sorted(set(np.unique(raw).tolist()) - {0, 255})
        if values:
            raise DataError(f"{where}: label {path} holds values {values[:10]} besides 0 and 255: it is not a 0/255 "
                            f"binary mask; --fix binary maps only 255 -> 1")
        return (raw == 255).astype(np.uint8)
    mode, rgb = label_image(path, f"{where}: ", rgb=True)
    if mode in ("P", "L", "1"):  # a second fix over its own copies read index 255 through the palette as a class
        raise DataError(f"{where}: label {path} already holds class indices (a {'palette' if mode == 'P' else 'gray'} "
                        f"PNG, as --fix writes them): --fix colors converts RGB colour masks; list these as they are")
    flat = rgb.reshape(-1, 3)
    codes = (flat[:, 0].astype(np.int64) << 16) | (flat[:, 1].astype(np.int64) << 8) | flat[:, 2]
    found, inverse = np.unique(codes, return_inverse=True)
    lut = np.full(len(found), -1, np.int64)
    for j, code in enumerate(found.tolist()):
        lut[j] = colors.get(((code >> 16) & 255, (code >> 8) & 255, code & 255), -1)
    unknown = [f"{(c >> 16) & 255}, {(c >> 8) & 255}, {c & 255}" for c, v in zip(found.tolist(), lut) if v < 0]
    if unknown:
        raise DataError(f"{where}: label {path} has colour(s) {'; '.join(unknown[:5])}"
                        f"{' ...' if len(unknown) > 5 else ''} that data.class_colors does not list; add each "
                        f"colour to its class, or to data.ignore_colors where it marks unlabeled pixels")
    return lut[inverse].reshape(rgb.shape[:2]).astype(np.uint8)


def read_rgb_mask(path: str, where: str) -> np.ndarray:
    """A mask file as (H, W, 3) uint8 RGB, whatever its mode (palette masks through their palette), with the same
    file and size checks as every label read."""
    return label_image(path, f"{where}: ", rgb=True)[1]


def _absolute_config(cfg: Config, data_root: Path) -> Config:
    """A copy of ``cfg`` reading the fixed lists in ``data_root``, every path absolute (config paths resolve
    from the folder a command runs in, so the file works from any folder)."""
    new = copy.deepcopy(cfg)
    new.data.data_root, new.data.train_list, new.data.val_list = str(data_root), "train.txt", "val.txt"
    new.data.dataset = "custom" if new.data.dataset not in ("custom", "synthetic") else new.data.dataset
    new.data.reduce_zero_label = False  # the copies hold the class indices themselves: no second shift
    if not new.data.class_names:
        new.data.class_names = list(spec_of(cfg.data).class_names)
    for section, key in (("train", "save_dir"), ("eval", "save_dir"), ("eval", "model_path"),
                         ("model", "pretrained")):
        value = getattr(getattr(new, section), key)
        if value:
            setattr(getattr(new, section), key, os.path.abspath(value))
    return new


# --- from two folders ----------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".gif")
MAX_COLORS = 64  # distinct colours in RGB masks before they are called photographs, not masks


def _by_stem(folder: Path, suffixes: Sequence[str], what: str) -> Dict[str, Path]:
    """Files under ``folder`` (recursively) by their path without the extension; two files of one stem refused."""
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {shown(folder, 300)}")
    found: Dict[str, Path] = {}
    odd: List[str] = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() and path.is_dir():
            logger.warning("%s: %s is a link to a folder; its files are not searched (link the files, or pass the "
                           "folder itself)", what, shown(path, 200))
            continue
        if path.suffix.lower() not in suffixes or not path.is_file() or path.name.startswith("."):
            continue
        if has_control_chars(str(path.relative_to(folder))):
            odd.append(str(path.relative_to(folder)))
            continue
        stem = path.relative_to(folder).with_suffix("").as_posix()
        if stem in found:
            raise DataError(f"{what}: {shown(found[stem], 300)} and {shown(path, 300)} share the name "
                            f"'{shown(stem, 100)}'; pairing by name needs one file per name")
        found[stem] = path
    if odd:
        logger.warning("%s: %d file(s) whose names hold control characters (a tab or a newline would break the "
                       "list files) are left out: %s; rename them", what, len(odd), shown_names(odd, 5, 80))
    return found


def prepare_folders(images: str, masks: str, out: str, val_fraction: float = 0.2, seed: int = 0,
                    overwrite: bool = False) -> Dict[str, object]:
    """``prepare folders``: pair images and masks by name, count the classes the masks hold, and write
    ``train.txt`` / ``val.txt`` and a ``config.yaml`` (absolute paths, the recipe's defaults) into ``out``."""
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    imgs = _by_stem(Path(images), IMAGE_SUFFIXES, "--images")
    msks = _by_stem(Path(masks), MASK_SUFFIXES, "--masks")
    pairs = sorted(set(imgs) & set(msks))
    same = [s for s in pairs if os.path.realpath(imgs[s]) == os.path.realpath(msks[s])]
    if same:
        raise DataError(f"--images and --masks give the same file for {len(same)} name(s) "
                        f"({shown(imgs[same[0]], 200)}): keep the masks in a folder of their own")
    jpeg_masks = [p for p in Path(masks).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")] if \
        Path(masks).resolve() != Path(images).resolve() else []
    if jpeg_masks:
        logger.warning("--masks holds %d JPEG file(s) (%s ...): masks must be lossless (PNG, BMP, TIFF), a JPEG "
                       "invents values along every edge; they were not used", len(jpeg_masks),
                       shown(jpeg_masks[0], 200))
    lonely_images, lonely_masks = sorted(set(imgs) - set(msks)), sorted(set(msks) - set(imgs))
    for what, items, other in (("image", lonely_images, "mask"), ("mask", lonely_masks, "image")):
        if items:
            logger.warning("%d %s(s) without a%s %s, left out: %s", len(items), what, "n" if other == "image" else "",
                           other, shown_names(items, 10, 100))
    if len(pairs) < 2:
        raise DataError(f"{len(pairs)} image/mask pair(s) found by name in {shown(images, 200)} and "
                        f"{shown(masks, 200)}: at least 2 are needed (one to train, one to validate)")
    values, colors, void = _mask_values([msks[s] for s in pairs])
    n_val = 0 if val_fraction == 0 else min(len(pairs) - 1, max(1, int(round(len(pairs) * val_fraction))))
    order = np.random.default_rng(seed).permutation(len(pairs))
    val_idx = set(order[:n_val].tolist())
    line = "{}\t{}".format
    train_lines = [line(imgs[s].resolve(), msks[s].resolve()) for i, s in enumerate(pairs) if i not in val_idx]
    val_lines = [line(imgs[s].resolve(), msks[s].resolve()) for i, s in enumerate(pairs) if i in val_idx]
    cfg, notes = _folders_config(values, colors, void, Path(out).resolve())
    with OutputFolder(out, "--out", "prepare", overwrite) as folder:
        folder.refuse_earlier(["train.txt", "val.txt", "config.yaml"], "pass --overwrite to write them again")
        folder.put_text("train.txt", "\n".join(train_lines) + "\n")
        folder.put_text("val.txt", "\n".join(val_lines or train_lines[:1]) + "\n")
        head = ["# written by `python -m src prepare folders`: fill in data.class_names, then check the data with",
                f"#   python -m src prepare check --config {Path(out).resolve() / 'config.yaml'}"]
        folder.put_text("config.yaml", "\n".join(head + [f"# {n}" for n in notes]) + "\n" + config_yaml(cfg))
    if not val_lines:
        logger.warning("--val-fraction 0: val.txt holds the first training sample only (a smoke check, not a score)")
    return {"pairs": len(pairs), "train": len(train_lines), "val": len(val_lines), "images_without_mask":
            len(lonely_images), "masks_without_image": len(lonely_masks), "classes": cfg.data.classes,
            "config": str(Path(out).resolve() / "config.yaml"), "notes": notes}


def _mask_values(paths: Sequence[Path]) -> Tuple[List[int], List[Tuple[int, int, int]], set]:
    """The values the index masks hold, the colours the RGB masks hold (sorted), and the values every mask that
    holds them draws in PASCAL VOC's void colour (palette masks only: one mask drawing a value in another colour,
    or a gray mask holding it, makes it a class)."""
    spec = dataset_spec("custom", 1)
    values: set = set()
    colors: set = set()
    void: set = set()
    not_void: set = set()
    for path in paths:
        try:
            used = np.unique(read_raw_label(str(path), spec)).tolist()
            values.update(used)
            drawn_void = set(_void_indices(path, used))
            void |= drawn_void
            not_void |= set(used) - drawn_void
        except LabelKindError:
            rgb = read_rgb_mask(str(path), str(path))
            colors.update(map(tuple, np.unique(rgb.reshape(-1, 3), axis=0).tolist()))
            if len(colors) > MAX_COLORS:
                raise DataError(f"{shown(path, 300)}: the RGB masks hold more than {MAX_COLORS} colours: are they "
                                f"photographs (or saved as JPEG, which blurs the colours)? Masks must be lossless "
                                f"(PNG) with one colour per class") from None
    return sorted(values), sorted(colors), void - not_void


def _void_indices(path: Path, used: List[int]) -> List[int]:
    """The ``used`` values a palette mask draws in VOC's void colour (none for a mask without a palette)."""
    try:
        with Image.open(path) as im:
            palette = im.getpalette() if im.mode == "P" else None
    except (OSError, ValueError):  # read a moment ago; a palette that cannot be read names no void
        return []
    return [v for v in used if palette is not None and tuple(palette[3 * v:3 * v + 3]) == VOID_COLOR]



VOID_COLOR = (224, 224, 192)  # PASCAL VOC's colour for object boundaries and unclear pixels: unlabeled, not a class


def _void_value(d: DataConfig, values: List[int], void: set) -> List[str]:
    """A value palette masks draw in VOC's void colour becomes data.ignore_label when it is the largest value (the
    classes stay 0..N-1); elsewhere among the classes it is only named."""
    if not void:
        return []
    shown_void = ", ".join(map(str, sorted(void)))
    if max(void) == max(values) >= 2:  # above every class, and a config names 2 classes at least
        d.ignore_label = max(void)
        return [f"the masks' palette draws value {d.ignore_label} in PASCAL VOC's void colour (boundaries, unclear "
                f"pixels): it is read as unlabeled (data.ignore_label {d.ignore_label}), not as a class"]
    return [f"the masks' palette draws value(s) {shown_void} in PASCAL VOC's void colour: if they mark unlabeled "
            f"pixels, paint them with one value above every class and set data.ignore_label to it"]


def _colour_classes(d: DataConfig, colors: List[Tuple[int, int, int]]) -> List[str]:
    """data.class_colors (and data.ignore_colors: VOC's void colour) from the colours RGB masks hold; the notes."""
    classes = [c for c in colors if tuple(c) != VOID_COLOR]
    d.classes = max(len(classes), 2)
    fillers = [[255, 255, 254], [254, 255, 255]]  # colours no mask holds: the 2 classes a config needs at least
    d.class_colors = [list(c) for c in classes] + fillers[:max(0, 2 - len(classes))]
    d.ignore_colors = [list(VOID_COLOR)] if len(classes) < len(colors) else []
    notes = [f"the masks are RGB colour masks with {len(classes)} class colour(s), one class each (in data."
             f"class_colors): write index copies with `prepare check --config THIS --fix colors --out DIR`"]
    if d.ignore_colors:
        notes.append(f"{', '.join(map(str, VOID_COLOR))} is PASCAL VOC's void colour (boundaries, unclear pixels): "
                     f"it is read as unlabeled (data.ignore_colors); move it to data.class_colors if it is a class")
    return notes

def _folders_config(values: List[int], colors: List[Tuple[int, int, int]], void: set,
                    out: Path) -> Tuple[Config, List[str]]:
    """The config ``prepare folders`` writes, and the notes on what the masks looked like (``void``: the values
    palette masks draw in VOC's void colour)."""
    cfg = Config(source=str(out / "config.yaml"))
    d = cfg.data
    d.dataset, d.data_root, d.train_list, d.val_list = "custom", str(out), "train.txt", "val.txt"
    cfg.train.save_dir = str(out / "run")
    notes: List[str] = []
    if colors:
        notes += _colour_classes(d, colors)
    else:
        notes += _void_value(d, values, void - {d.ignore_label})
        classes = [v for v in values if v != d.ignore_label]
        if set(values) <= {0, 255}:
            d.classes = 2
            notes.append("the masks hold only 0 and 255 (0/255 binary): 255 is data.ignore_label, so write copies "
                         "with 255 -> 1 first: `prepare check --config THIS --fix binary --out DIR`")
        else:
            d.classes = max(max(classes, default=0) + 1, 2)
            notes.append(f"the masks hold values {shown_names(values, 12, 10)}: {d.classes} classes (0.."
                         f"{d.classes - 1}); {d.ignore_label} is data.ignore_label (unlabeled)")
            if len(classes) < d.classes / 2 and max(classes, default=0) >= 32:
                top = max(classes)
                notes.append(f"only {len(classes)} distinct values for {d.classes} classes: is {top} your masks' "
                             f"unlabeled value? Then set data.ignore_label {top} and data.classes "
                             f"{max([v for v in classes if v != top], default=0) + 1}")
            if 0 not in values:
                notes.append(f"no mask holds 0: if your classes are 1..{max(classes, default=1)}, set "
                             f"data.reduce_zero_label true and data.classes {max(classes, default=1)}")
            elif len(classes) >= 3:
                notes.append("if 0 marks unlabeled pixels, set data.reduce_zero_label true and data.classes one less")
    d.class_names = [f"class_{i}" for i in range(d.classes)]
    return cfg, notes
