"""Dataset descriptions: class names, color palettes and how raw label files map to class indices."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from src.config import DATASETS, ConfigError, DataConfig
from src.data.encode import palette_png
from src.outputs.atomic import write_bytes

VOC_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor"]

ADE20K_CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel",
    "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag"]

CITYSCAPES_CLASSES = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle"]
CITYSCAPES_COLORS = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                     (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                     (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                     (0, 80, 100), (0, 0, 230), (119, 11, 32)]
# labelId -> trainId for the 19 evaluated classes; every other labelId is ignored.
CITYSCAPES_LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                             25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}

CAMVID_CLASSES = ["sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist"]
CAMVID_COLORS = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0),
                 (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)]

KITTI_ROAD_CLASSES = ["background", "road"]
KITTI_ROAD_COLORS = [(255, 0, 0), (255, 0, 255)]


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC color map: class bits spread over the high bits of R, G and B. (n, 3) uint8."""
    pal = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def _palette_from(colors: Sequence[Sequence[int]]) -> np.ndarray:
    pal = voc_palette(256)
    pal[: len(colors)] = np.asarray(colors, dtype=np.uint8)
    return pal


def spread_palette(n: int) -> np.ndarray:
    """Up to 150 well-separated colors for data sets with many classes (ADE20K), as ``_palette_from`` input.

    25 hues (14.4 degrees apart) x 6 saturation/value levels; consecutive
    class indices change level and jump 7 hue steps, so neighbours differ
    strongly.  (Not ADE20K's own published color table.)
    """
    import colorsys

    levels = [(0.95, 1.0), (0.55, 1.0), (0.95, 0.75), (0.55, 0.75), (0.95, 0.5), (0.55, 0.5)]
    hues = 25
    if n > hues * len(levels):
        raise ValueError(f"spread_palette makes at most {hues * len(levels)} colors, asked for {n}")
    colors = []
    for i in range(n):
        sat, val = levels[i % len(levels)]
        hue = ((i // len(levels)) * 7 % hues) / hues
        colors.append(tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, sat, val)))
    return np.asarray(colors, dtype=np.uint8)


def identity_map(label: np.ndarray, ignore_label: int) -> np.ndarray:
    """The file's values are the classes (and the ignore value) as they are."""
    return label


def ade20k_map(label: np.ndarray, ignore_label: int) -> np.ndarray:
    """ADE20K stores 0 = 'other' and classes as 1..150: shift by -1, 0 -> the ignore value."""
    out = label.astype(np.int32) - 1
    out[out < 0] = ignore_label
    return out.astype(np.uint8)


def _zero_reduced(label: np.ndarray, ignore_label: int) -> np.ndarray:
    """data.reduce_zero_label: 0 -> ignore, the ignore value stays, every other value v -> v - 1."""
    out = label.astype(np.int32) - 1
    out[(label == 0) | (label == ignore_label)] = ignore_label
    return out.astype(np.uint8)


CITYSCAPES_MAX_LABEL_ID = 33  # labelIds files hold 0..33; 255 marks a labelTrainIds file (already mapped)


def cityscapes_map(label: np.ndarray, ignore_label: int) -> np.ndarray:
    """Cityscapes labelIds -> the 19 trainIds, the other ids the ignore value; a value no labelIds file holds
    (34..255) becomes one that is neither a class nor the ignore value, so the value check refuses the file."""
    lut = np.full(256, ignore_label, dtype=np.uint8)
    lut[CITYSCAPES_MAX_LABEL_ID + 1:] = 254 if ignore_label == 255 else 255
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN.items():
        lut[label_id] = train_id
    return lut[label]


def camvid_map(label: np.ndarray, ignore_label: int) -> np.ndarray:
    """CamVid-11 (SegNet format): 0..10 classes, 11 = void -> the ignore value."""
    out = label.copy()
    out[out == 11] = ignore_label
    return out


@dataclass(frozen=True)
class DatasetSpec:
    """What the code needs to know about one dataset family, and how its label files are read.

    ``ignore_label`` is the config's ``data.ignore_label``: the value a label holds (after ``label_map``) where no
    class is given; ``reduce_zero_label``: the files use 0 for unlabeled and 1..N for the classes."""

    name: str
    classes: int
    class_names: List[str]
    palette: np.ndarray
    label_map: Callable[[np.ndarray, int], np.ndarray] = identity_map
    # For datasets whose ground truth is a color image (KITTI road): color -> class, others -> ignore.
    color_classes: Optional[Dict[tuple, int]] = None
    ignore_label: int = DataConfig.ignore_label
    reduce_zero_label: bool = False

    def map_label(self, raw: np.ndarray) -> np.ndarray:
        """A label file's values (uint8) -> class indices with ``ignore_label`` where no class is given."""
        label = self.label_map(raw, self.ignore_label)
        return _zero_reduced(label, self.ignore_label) if self.reduce_zero_label else label

    def out_of_range(self, raw: np.ndarray) -> List[int]:
        """The file values (sorted, distinct) that are neither a class nor the ignore value once read."""
        values = np.unique(raw)
        if self.reduce_zero_label:
            ok = (values == 0) | (values == self.ignore_label) | ((values >= 1) & (values <= self.classes))
        else:
            mapped = self.label_map(values.reshape(1, -1), self.ignore_label).reshape(-1)
            ok = (mapped < self.classes) | (mapped == self.ignore_label)
        return [int(v) for v in values[~ok]]


def dataset_spec(name: str, classes: Optional[int] = None, class_names: Sequence[str] = (),
                 ignore_label: int = DataConfig.ignore_label, reduce_zero_label: bool = False) -> DatasetSpec:
    """The spec for a dataset name; ``custom`` and ``synthetic`` take their class count from the config.

    A ``classes`` that contradicts a known dataset is an error.  Ignored pixels are white in the palette.
    """
    spec = _named_spec(name, classes, class_names)
    palette = spec.palette.copy()
    palette[ignore_label] = (255, 255, 255)
    return replace(spec, palette=palette, ignore_label=ignore_label, reduce_zero_label=reduce_zero_label)


def _named_spec(name: str, classes: Optional[int], class_names: Sequence[str]) -> DatasetSpec:
    known = {
        "voc2012": DatasetSpec("voc2012", 21, VOC_CLASSES, voc_palette()),
        "ade20k": DatasetSpec("ade20k", 150, ADE20K_CLASSES, _palette_from(spread_palette(150)), ade20k_map),
        "cityscapes": DatasetSpec("cityscapes", 19, CITYSCAPES_CLASSES, _palette_from(CITYSCAPES_COLORS),
                                  cityscapes_map),
        "camvid": DatasetSpec("camvid", 11, CAMVID_CLASSES, _palette_from(CAMVID_COLORS), camvid_map),
        "kitti_road": DatasetSpec("kitti_road", 2, KITTI_ROAD_CLASSES, _palette_from(KITTI_ROAD_COLORS),
                                  color_classes={(255, 0, 0): 0, (255, 0, 255): 1}),
    }
    if name in known:
        spec = known[name]
        if classes is not None and classes != spec.classes:
            raise ConfigError(f"dataset '{name}' has {spec.classes} classes but data.classes is {classes}")
        if class_names and list(class_names) != spec.class_names:
            raise ConfigError(f"dataset '{name}' has fixed class names; remove data.class_names or use 'custom'")
        return spec
    if name in ("custom", "synthetic"):
        if classes is None:
            raise ConfigError(f"dataset '{name}' needs data.classes")
        names = list(class_names) or [f"class_{i}" for i in range(classes)]
        if len(names) != classes:
            raise ConfigError(f"{len(names)} class names for {classes} classes")
        return DatasetSpec(name, classes, names, voc_palette())
    raise ConfigError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")


def spec_of(data_cfg: DataConfig) -> DatasetSpec:
    """The :class:`DatasetSpec` a config's data section describes (its class colours are its palette)."""
    spec = dataset_spec(data_cfg.dataset, data_cfg.classes, data_cfg.class_names, data_cfg.ignore_label,
                        data_cfg.reduce_zero_label)
    if data_cfg.class_colors:
        palette = spec.palette.copy()
        palette[:len(data_cfg.class_colors)] = np.asarray(data_cfg.class_colors, dtype=np.uint8)
        spec = replace(spec, palette=palette)
    return spec


def colorize(label: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) RGB uint8 with the dataset palette."""
    return palette[np.asarray(label, dtype=np.uint8)]


def write_palette_png(label: np.ndarray, path: str | os.PathLike, palette: np.ndarray) -> None:
    """Save class indices as a palette PNG (VOC style: the pixel values are the indices), atomically."""
    write_bytes(path, palette_png(label, palette))
