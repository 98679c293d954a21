"""Samples from list files: reading images and labels, with errors that name the list line and file."""
from __future__ import annotations

import logging
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from src.data.labels import DatasetSpec
from src.errors import PSPNetError, has_control_chars, read_user_file, shown
from src.outputs.atomic import append_line

logger = logging.getLogger(__name__)


class DataError(PSPNetError, ValueError):
    """A list file or sample that cannot be used; the message names the list line and the file."""


@dataclass(frozen=True)
class Sample:
    """One list line: absolute paths and where it came from."""

    image: str
    label: Optional[str]
    list_file: str
    line_no: int

    @property
    def where(self) -> str:
        return f"{self.list_file}:{self.line_no}"


def _missing(path: Optional[str]) -> Optional[str]:
    """Why ``path`` cannot be read as a list entry's file (None when it can, or when there is no path)."""
    if path is None or os.path.isfile(path):
        return None
    if os.path.exists(path):
        return "not a regular file (a device, FIFO or socket)"
    return "a symbolic link to a missing file" if os.path.islink(path) else "file not found"


MAX_LIST_BYTES = 1 << 30  # ~15 million lines; ADE20K's training list is 1.4 MB


def _list_text(data: bytes, list_file: Path) -> str:
    """A list file's bytes as text: UTF-8, a byte-order mark (Windows editors) not part of the first path."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{list_file}:{line_no}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        f"save the list file as UTF-8") from None


def read_list(list_file: str | os.PathLike, data_root: str | os.PathLike, require_labels: bool = True,
              check_files: bool = True) -> List[Sample]:
    """Parse a list file of ``image_rel [label_rel]`` lines (relative to ``data_root``).

    The two paths are separated by white space, or by one tab when a path
    contains spaces.  Blank lines and ``#`` comments are skipped.  Every problem (malformed
    line, missing label column, missing file) is collected and reported in
    one :class:`DataError`, with line numbers.
    """
    list_file = Path(list_file)
    root = Path(data_root)
    data = read_user_file(list_file, "list file", DataError, MAX_LIST_BYTES, missing_hint=(
        " (write VOC2012AUG's with `python -m src prepare voc --voc-root R --sbd-root S`, ADE20K's / Cityscapes' "
        "with `prepare ade20k|cityscapes --root R`, or the demo set with `python -m src synthetic --out DIR`)"))
    samples: List[Sample] = []
    problems: List[str] = []
    for no, raw in enumerate(_list_text(data, list_file).split("\n"), start=1):  # splitlines() would also split at \x0b, \x1c, \u2028...
        raw = raw[:-1] if raw.endswith("\r") else raw
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if has_control_chars(raw.replace("\t", "")):  # before splitting: str.split() cuts at some of them
            problems.append(f"{list_file}:{no}: the line holds control characters: {shown(line, 300)}")
            continue
        parts = [p.strip() for p in raw.split("\t")] if "\t" in raw else line.split()
        parts = [p for p in parts if p]
        if len(parts) > 2:
            problems.append(f"{list_file}:{no}: expected 'image [label]', got {len(parts)} columns: "
                            f"{shown(line, 300)}")
            continue
        if len(parts) == 1 and require_labels:
            problems.append(f"{list_file}:{no}: no label column: {shown(line, 300)}")
            continue
        image = str(root / parts[0])
        label = str(root / parts[1]) if len(parts) == 2 else None
        if check_files:
            problems += [f"{list_file}:{no}: {what}: {shown(path, 300)}" for path in (image, label)
                         for what in [_missing(path)] if what]
        samples.append(Sample(image, label, str(list_file), no))
    if problems:
        listed = "\n  ".join(problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise DataError(f"{len(problems)} problem(s) in {list_file}:\n  {listed}{more}")
    if not samples:
        raise DataError(f"list file {list_file} has no samples")
    return samples


MAX_PIXELS = 1 << 26  # 64 Mpixel (8192 x 8192): larger headers are refused before decoding
MAX_IMAGE_BYTES = 256 << 20  # a file larger than this is refused before it is read
# The formats the loaders accept; anything else (PIL may not identify it, OpenCV might still decode it
# without any size check) is refused.
IMAGE_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM")
# What the decoders raise on a damaged or hostile file besides OSError, caught around the decoding calls only (a
# bug elsewhere keeps its traceback): Pillow's plugins raise SyntaxError ("broken PNG file"), struct.error,
# EOFError, TypeError (a TIFF tag of the wrong type), IndexError, KeyError; OpenCV its cv2.error (a header that it
# reads larger than Pillow did); either MemoryError.
DECODER_ERRORS = (OSError, ValueError, SyntaxError, struct.error, EOFError, TypeError, IndexError, KeyError,
                  MemoryError, cv2.error)


def header_size(path: str, prefix: str = "", kind: str = "image") -> Tuple[int, int]:
    """(width, height) from the file's header, without decoding it; refuses more than MAX_PIXELS pixels.

    Only :data:`IMAGE_FORMATS` are identified; any other file is refused here,
    so no decoder ever sees an image whose size was not checked first.
    """
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as im:
            w, h = im.size
    except Image.DecompressionBombError as exc:
        raise DataError(f"{prefix}{kind} {path} declares too many pixels ({exc}); at most {MAX_PIXELS} are "
                        f"allowed") from None
    except DECODER_ERRORS:
        raise DataError(f"{prefix}cannot read {kind} {path} (corrupt or not an image in one of "
                        f"{', '.join(IMAGE_FORMATS)})") from None
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        raise DataError(f"{prefix}{kind} {path} declares {w}x{h} pixels; at most {MAX_PIXELS} are allowed")
    return w, h


def jpeg_is_complete(data: bytes | np.ndarray) -> bool:
    """True unless ``data`` is a JPEG whose image data has no end-of-image marker (a truncated file).

    A decoder fills the missing part of a truncated JPEG with gray and only
    warns, so the marker is looked for: the header segments are walked by
    their lengths (an EXIF thumbnail has its own marker), then the marker must
    follow the first scan.  Anything after it (padding, the video of a
    phone's "motion photo") is allowed.
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        return True
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data follows, where 0xFF is always escaped
            return data.find(b"\xff\xd9", pos + 2) != -1
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


MAX_JPEG_SCANS = 100  # encoders write 1 (baseline) to about 12 (progressive); each scan is a pass of the decoder


def jpeg_scans(data: bytes | np.ndarray) -> int:
    """How many scans (start-of-scan markers) a JPEG holds before its end-of-image marker; 0 for other data.

    A progressive JPEG repeating one scan 20,000 times is 2 MB and took 95 s to decode: the decoder's work
    grows with the scans, which the header does not declare, so they are counted before decoding.
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        return 0
    first = data.find(b"\xff\xda")
    if first < 0:
        return 0
    end = data.find(b"\xff\xd9", first)  # 0xFF is escaped in scan data: the first EOI ends the image
    return data[first:end if end >= 0 else len(data)].count(b"\xff\xda")


def _check_file(path: str, prefix: str, kind: str) -> None:
    """Refuse special files (a FIFO would block the reader forever) and files over MAX_IMAGE_BYTES."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise DataError(f"{prefix}cannot read {kind} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{prefix}{kind} {path} is not a regular file")
    if st.st_size > MAX_IMAGE_BYTES:
        raise DataError(f"{prefix}{kind} {path} is {st.st_size} bytes; at most {MAX_IMAGE_BYTES} are allowed")


def _read_bytes(path: str, prefix: str, kind: str) -> np.ndarray:
    """The file's bytes, after :func:`_check_file`."""
    _check_file(path, prefix, kind)
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{prefix}cannot read {kind} {path}: {exc.strerror or exc}") from None


def read_image(path: str, where: str = "") -> np.ndarray:
    """Read an image as (H, W, 3) float32 RGB; grayscale and RGBA inputs become RGB.

    Special files, empty files, truncated JPEGs, undecodable data, formats
    outside :data:`IMAGE_FORMATS` and headers declaring more than
    :data:`MAX_PIXELS` pixels raise :class:`DataError` naming the file; the
    size is checked from the header before anything is decoded.
    """
    prefix = f"{where + ': ' if where else ''}"
    data = _read_bytes(path, prefix, "image")
    if data.size == 0:
        raise DataError(f"{prefix}image {path} is an empty file")
    if not jpeg_is_complete(data):
        raise DataError(f"{prefix}image {path} is a truncated JPEG (no end-of-image marker)")
    scans = jpeg_scans(data)
    if scans > MAX_JPEG_SCANS:
        raise DataError(f"{prefix}image {path} is a JPEG of {scans} scans (encoders write at most about 12; at most "
                        f"{MAX_JPEG_SCANS} are decoded): its decoding cost is unbounded - re-encode it")
    w, h = header_size(path, prefix, "image")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except DECODER_ERRORS as exc:
        why = "not enough memory to decode it" if isinstance(exc, MemoryError) else "corrupt: the decoder refused it"
        raise DataError(f"{prefix}cannot read image {path} ({why})") from None
    if img is None:
        raise DataError(f"{prefix}cannot read image {path} (corrupt or not an image)")
    if sorted(img.shape[:2]) != sorted((h, w)):  # (OpenCV applies the EXIF orientation)
        raise DataError(f"{prefix}image {path} decodes to {img.shape[1]}x{img.shape[0]} but its header says "
                        f"{w}x{h}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)


class LabelKindError(DataError):
    """A label file of a kind the loader does not read (an RGB colour mask); ``kind`` says which."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def label_image(path: str, prefix: str, rgb: bool = False) -> Tuple[str, np.ndarray]:
    """A label file's mode and pixels (as RGB with ``rgb``: palette masks through their palette), after the file
    and size checks every label read makes; JPEG masks are refused (lossy: values invented along every edge)."""
    _check_file(path, prefix, "label")
    header_size(path, prefix, "label")
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                raise DataError(f"{prefix}label {path} is a JPEG: its lossy compression invents values along every "
                                f"edge (new classes, shifted borders); save masks losslessly (PNG)")
            if rgb and im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                raise DataError(f"{prefix}label {path} is a {im.mode} image of numbers, not a colour mask")
            im.load()
            return im.mode, np.array(im.convert("RGB") if rgb else im)
    except DataError:
        raise
    except (Image.DecompressionBombError, *DECODER_ERRORS) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{prefix}cannot read label {path}: {shown(reason, 200)}") from None


def _mapped_already(path: str, spec: DatasetSpec) -> Optional[str]:
    """Why the label file ``path`` must not go through the data set's map, when its name says the map was applied
    to it already (a Cityscapes *_labelTrainIds.png); None otherwise."""
    if spec.name == "cityscapes" and str(path).endswith("_labelTrainIds.png"):
        return (f"label {path} is a Cityscapes *_labelTrainIds.png file, already mapped to the 19 trainIds: "
                f"data.dataset cityscapes reads the *_gtFine_labelIds.png files (as `prepare cityscapes` lists "
                f"them); read trainId masks as data.dataset custom with data.classes 19")
    return None


def refuse_mapped_labels(samples: Sequence[Sample], spec: DatasetSpec) -> None:
    """One DataError for the first sample whose label file was mapped already: before any work, not at it."""
    for sample in samples:
        why = _mapped_already(sample.label, spec) if sample.label else None
        if why:
            raise DataError(f"{sample.where}: {why}")


def read_raw_label(path: str, spec: DatasetSpec, where: str = "") -> np.ndarray:
    """A label file's values as (H, W) uint8, before the data set's label map: palette PNGs give their indices
    (not their colours), single-channel files their values, colour ground truth goes through
    ``spec.color_classes`` (unmatched colours become ``spec.ignore_label``).  Values that do not fit 0..255
    (16/32-bit files, negative numbers) are refused, never wrapped."""
    prefix = f"{where + ': ' if where else ''}"
    mapped = _mapped_already(path, spec)
    if mapped:
        raise DataError(prefix + mapped)
    mode, arr = label_image(path, prefix)
    if mode in ("P", "L", "1"):  # "1": a 1-bit mask, read as 0 and 1
        return arr.astype(np.uint8)
    if mode in ("I", "I;16", "I;16B", "I;16L"):
        if arr.size and (int(arr.max()) > 255 or int(arr.min()) < 0):
            raise DataError(f"{prefix}label {path} has values outside 0..255 ({int(arr.min())} to "
                            f"{int(arr.max())}); class indices and the ignore value fit 0..255")
        return arr.astype(np.uint8)
    if mode in ("RGB", "RGBA") and spec.color_classes:
        label = np.full(arr.shape[:2], spec.ignore_label, dtype=np.uint8)
        for color, cls in spec.color_classes.items():
            label[np.all(arr[..., :3] == np.asarray(color, np.uint8), axis=-1)] = cls
        return label
    if mode in ("RGB", "RGBA"):
        raise LabelKindError(f"{prefix}label {path} is an RGB colour mask; the loader reads class indices. Convert "
                             f"a copy: set data.class_colors ([r, g, b] per class) and run `python -m src prepare "
                             f"check --config CONFIG --fix colors --out DIR`", "rgb")
    raise DataError(f"{prefix}label {path} is a {mode} image; expected a single-channel or palette PNG "
                    f"of class indices")


def read_label(path: str, spec: DatasetSpec, where: str = "") -> np.ndarray:
    """Read a label file as (H, W) uint8 class indices, ``spec.ignore_label`` where no class is given.

    :func:`read_raw_label`, :func:`check_label_values`, then the dataset's label map (ADE20K shift, Cityscapes
    trainIds, reduce_zero_label).
    """
    raw = read_raw_label(path, spec, where)
    check_label_values(raw, spec, path, where)
    return spec.map_label(raw)


DATASET_FILE_HINTS = {  # what the named data sets' label files hold, and the mistake a value outside it shows
    "cityscapes": " (Cityscapes' *_gtFine_labelIds.png files hold ids 0..33, mapped to the 19 trainIds when read; "
                  "a 255 marks a *_labelTrainIds.png file, already mapped: list the labelIds files, as `prepare "
                  "cityscapes` does, or read trainId masks as data.dataset custom with data.classes 19)",
    "ade20k": " (ADEChallengeData2016's annotation files hold 0 (other) and the classes as 1..150, shifted when "
              "read; a 255 marks labels already shifted to 0..149: read those as data.dataset custom with "
              "data.classes 150)",
}


def label_value_hint(values: Sequence[int], spec: DatasetSpec) -> str:
    """Why a label may hold the out-of-range ``values`` (file values), and the fix: '' when no cause is known."""
    values = sorted(set(int(v) for v in values))
    if spec.name in DATASET_FILE_HINTS:
        return DATASET_FILE_HINTS[spec.name]
    if spec.reduce_zero_label:
        return ""
    if values == [spec.classes]:
        return (f" (values 1..{spec.classes} with 0 for unlabeled pixels? set data.reduce_zero_label true, or "
                f"data.classes {spec.classes + 1} if 0 is a class)")
    if values == [255] and spec.ignore_label != 255:
        return f" (255 is not data.ignore_label {spec.ignore_label} here: is 255 your masks' ignore value?)"
    return ""


def check_label_values(raw: np.ndarray, spec: DatasetSpec, path: str, where: str = "") -> None:
    """Raise DataError if a label file holds values that are neither a class of ``spec`` nor its ignore value."""
    bad = spec.out_of_range(raw)
    if bad:
        kept = "0 (unlabeled), " if spec.reduce_zero_label else ""
        allowed = f"1..{spec.classes}" if spec.reduce_zero_label else f"[0, {spec.classes})"
        raise DataError(f"{where + ': ' if where else ''}label {path} has values {bad[:10]} outside {kept}{allowed} "
                        f"and not data.ignore_label {spec.ignore_label}{label_value_hint(bad, spec)}")


def load_sample(sample: Sample, spec: DatasetSpec, classes: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read and check one sample: (image float32 RGB HxWx3, label uint8 HxW or None)."""
    image = read_image(sample.image, sample.where)
    if sample.label is None:
        return image, None
    raw = read_raw_label(sample.label, spec, sample.where)
    if raw.shape != image.shape[:2]:
        raise DataError(f"{sample.where}: image {sample.image} is {image.shape[1]}x{image.shape[0]} but label "
                        f"{sample.label} is {raw.shape[1]}x{raw.shape[0]}")
    if classes != spec.classes:
        raise ValueError(f"{classes} classes for a data set of {spec.classes}")
    check_label_values(raw, spec, sample.label, sample.where)
    return image, spec.map_label(raw)


class SegDataset:
    """Random-access training/eval samples: ``dataset[i] -> (image CHW float32, label HW int32)``.

    ``transform(image, label, rng)`` is applied with a generator seeded from
    ``(seed, epoch, index)``, so every sample gets its own augmentation in
    every epoch, in whichever worker process it is loaded, and a run is
    reproducible from the seed.  The index may carry the epoch as
    ``epoch * len(dataset) + i`` (see :class:`src.data.pipeline.EpochShardSampler`).

    ``on_bad_sample``: ``error`` raises naming the list line and file;
    ``skip`` logs the sample once and serves the next readable sample in its
    place, counting how many were replaced (``bad_count``).  With ``bad_log``
    each skipped sample is also appended to that file, so the count covers
    every worker process (each has its own copy of this object).
    """

    def __init__(self, samples: List[Sample], spec: DatasetSpec, classes: int,
                 transform: Optional[Callable] = None, seed: int = 0, on_bad_sample: str = "error",
                 bad_log: Optional[str] = None, error_log: Optional[str] = None) -> None:
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got {on_bad_sample!r}")
        self.samples = samples
        self.spec = spec
        self.classes = classes
        self.transform = transform
        self.seed = seed
        self.on_bad_sample = on_bad_sample
        self.bad_seen: set = set()
        self.bad_log = bad_log
        self.error_log = error_log

    @property
    def bad_count(self) -> int:
        """Distinct samples skipped so far: in every worker with ``bad_log``, else in this process."""
        if self.bad_log and os.path.isfile(self.bad_log):
            with open(self.bad_log, encoding="utf-8") as f:
                return len({line.split("\t", 1)[0] for line in f if line.strip()})
        return len(self.bad_seen)

    def __len__(self) -> int:
        return len(self.samples)

    def _record_error(self, exc: DataError) -> None:
        """Write the error where the process that iterates the pipeline can read it (see :meth:`recorded_error`):
        MindSpore re-raises it there as a RuntimeError of its own, possibly from a worker process."""
        if self.error_log:
            try:
                append_line(self.error_log, " ".join(str(exc).split()))  # in place: the run's own log file
            except OSError as log_exc:
                logger.warning("cannot record the data error in %s: %s", self.error_log, log_exc)

    def recorded_error(self) -> Optional[str]:
        """The message of the last sample that failed in ``error`` mode (in any worker), or None."""
        if not self.error_log or not os.path.isfile(self.error_log):
            return None
        with open(self.error_log, "rb") as f:
            f.seek(max(0, os.path.getsize(self.error_log) - 4096))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else None

    def _load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        n = len(self.samples)
        for step in range(n):
            i = (index + step) % n
            try:
                image, label = load_sample(self.samples[i], self.spec, self.classes)
                if label is None:
                    raise DataError(f"{self.samples[i].where}: no label for a training/eval sample")
                need = getattr(self.transform, "working_set_bytes", None)
                if need is not None and need(image.shape) > self.transform.budget_bytes:
                    raise DataError(f"{self.samples[i].where}: image {self.samples[i].image} ({image.shape[1]}x"
                                    f"{image.shape[0]}) needs about {need(image.shape) / 1e9:.1f} GB to augment "
                                    f"(scale up to {self.transform.recipe.scale_max:g}); the budget is "
                                    f"train.max_image_gb {self.transform.recipe.max_image_gb:g}")
                return image, label
            except DataError as exc:
                if self.on_bad_sample == "error":
                    self._record_error(exc)
                    raise
                if i not in self.bad_seen:
                    self.bad_seen.add(i)
                    if self.bad_log:  # one short append per sample: safe from several processes
                        try:
                            append_line(self.bad_log, f"{i}\t{' '.join(str(exc).split())}")
                        except OSError as log_exc:
                            logger.warning("cannot record the skipped sample in %s: %s", self.bad_log, log_exc)
                    logger.warning("skipping bad sample (%d so far in this process): %s", len(self.bad_seen), exc)
        where = self.samples[0].list_file if self.samples else "the list"
        raise DataError(f"every sample in {where} is unreadable (see the warnings above for each)")

    def __getitem__(self, code: int):
        code = int(code)
        epoch, index = divmod(code, len(self.samples))
        image, label = self._load(index)
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            image, label = self.transform(image, label, rng)
        return image, label.astype(np.int32)
