"""Segment image files of any size, and videos frame by frame, with any model format; write gray / color /
overlay pictures, and an overlay video per video."""
from __future__ import annotations

import errno
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from src.data.dataset import MAX_PIXELS, DataError, header_size, read_image
from src.data.encode import encode_image, palette_png
from src.data.labels import colorize
from src.evaluation.pictures import output_names, overlay, save_prediction
from src.errors import has_control_chars, shown, shown_names
from src.progress import Progress
from src.outputs.atomic import output_writes
from src.outputs.folder import OutputFolder, as_folder
from src.evaluation.protocol import Protocol, segment
from src.runtime.types import Predict

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".ts")
# The codec an overlay video is written with, by container; any other container (or one this OpenCV build
# cannot write) gives an MJPG .avi.
WRITER_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".wmv": "WMV2"}
FALLBACK = (".avi", "MJPG")
MAX_VIDEO_PIXELS = 1 << 36  # declared frames x width x height: about 33,000 frames of 1920x1080 (18 min at 30 fps)
DEFAULT_FPS = 25.0  # written when a video declares no usable frame rate


@dataclass(frozen=True)
class VideoInfo:
    """A video input as its header declares it (checked against the caps by :func:`check_video`)."""

    path: Path
    width: int
    height: int
    frames: int
    fps: float


@dataclass
class PredictInputs:
    """What ``--input`` named: image files and videos, in the order given."""

    images: List[Path] = field(default_factory=list)
    videos: List[VideoInfo] = field(default_factory=list)


def _capture(path: Path) -> Optional["cv2.VideoCapture"]:
    """An opened OpenCV capture of the file ``path`` (FFmpeg; an absolute path, so no name is read as a URL
    protocol such as ``http:``), or None."""
    cap = cv2.VideoCapture(os.path.abspath(path), cv2.CAP_FFMPEG)
    if cap.isOpened():
        return cap
    cap.release()
    return None


def check_video(path: Path, max_pixels: int = MAX_VIDEO_PIXELS) -> VideoInfo:
    """Open ``path`` as a video and check what it declares: a frame size (at most MAX_PIXELS a frame), a frame
    count, and frames x size at most ``max_pixels``; one :class:`DataError` naming the file otherwise."""
    cap = _capture(path)
    if cap is None:
        raise DataError(f"{shown(path, 300)}: cannot open it as a video (corrupt, or a format OpenCV's FFmpeg cannot "
                        f"read): re-encode it (e.g. to .mp4) or leave it out")
    try:
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        count, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    if not all(math.isfinite(v) for v in (w, h, count)) or w < 1 or h < 1:
        raise DataError(f"{shown(path, 300)}: the video declares no frame size; re-encode it")
    w, h = int(w), int(h)
    if w * h > MAX_PIXELS:
        raise DataError(f"{shown(path, 300)}: the video's frames are {w}x{h}; at most {MAX_PIXELS} pixels a frame are "
                        f"segmented: scale it down")
    if count < 1:
        raise DataError(f"{shown(path, 300)}: the video declares no frames (a stream without a frame count?); "
                        f"re-encode it into a file (e.g. .mp4)")
    count = int(count)
    if count * w * h > max_pixels:
        raise DataError(f"{shown(path, 300)}: the video declares {count} frames of {w}x{h} ({count * w * h:.3g} "
                        f"pixels); at most {max_pixels:.3g} are segmented in one video: cut it into parts")
    return VideoInfo(Path(path), w, h, count, fps if math.isfinite(fps) else 0.0)


def _is_image(path: Path) -> bool:
    """True when ``path``'s header is one of the image formats the loaders read."""
    try:
        header_size(str(path))
        return True
    except DataError:
        return False


def collect_inputs(inputs: Sequence[str], max_video_pixels: int = MAX_VIDEO_PIXELS) -> PredictInputs:
    """Images and videos from a mix of files and folders.

    Folders give their regular files with an image or a video extension, sorted. A file named directly is an
    image by its extension (or its header), else a video if OpenCV opens it as one, else refused. Every video
    is opened and checked here (:func:`check_video`), before any work. In a folder, anything that is not a
    regular file (a FIFO, a device, a socket) is skipped with a warning: opening a FIFO would wait forever.
    """
    found = PredictInputs()
    for item in inputs:
        path = Path(item)
        if has_control_chars(str(path)):
            raise DataError(f"input {shown(path, 300)}: its name holds control characters; rename it")
        if path.is_dir():
            for p in sorted(q for q in path.iterdir() if q.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
                if has_control_chars(p.name):
                    raise DataError(f"{shown(p, 300)}: the file's name holds control characters; rename it")
                if not p.is_file():
                    logger.warning("skipping %s: not a regular file", p)
                elif p.suffix.lower() in VIDEO_EXTENSIONS:
                    found.videos.append(check_video(p, max_video_pixels))
                else:
                    found.images.append(p)
        elif path.is_file():
            suffix = path.suffix.lower()
            if suffix in IMAGE_EXTENSIONS or (suffix not in VIDEO_EXTENSIONS and _is_image(path)):
                found.images.append(path)
            elif suffix in VIDEO_EXTENSIONS or _capture_opens(path):
                found.videos.append(check_video(path, max_video_pixels))
            else:
                raise DataError(f"{shown(path, 300)}: neither an image (JPEG, PNG, BMP, TIFF, WEBP, GIF, PPM) nor a "
                                f"video OpenCV can open; convert it or leave it out")
        else:
            raise DataError(f"input not found: {shown(path, 300)}")
    if not found.images and not found.videos:
        raise DataError(f"no images or videos in {shown_names(inputs, 6, 300)}")
    return found


def _capture_opens(path: Path) -> bool:
    cap = _capture(path)
    if cap is not None:
        cap.release()
    return cap is not None


def collect_images(inputs: Sequence[str]) -> List[Path]:
    """Image files from a mix of files and folders (see :func:`collect_inputs`; videos are left out)."""
    images = collect_inputs(inputs).images
    if not images:
        raise DataError(f"no images in {shown_names(inputs, 6, 300)}")
    return images


PICTURE_FOLDERS = ("gray/", "color/", "overlay/")


def predict_images(paths: Sequence[Path], predict: Predict, protocol: Protocol, out: "Path | OutputFolder",
                   palette: np.ndarray, names: Optional[Sequence[str]] = None) -> List[Path]:
    """Segment each image file (any size) and write gray/color/overlay pictures; returns the color masks.

    ``names``: the pictures' names (default: :func:`output_names` of ``paths``). Masks an earlier predict wrote
    in ``out`` are refused unless the folder was opened with ``overwrite``."""
    folder = as_folder(out, "--out", "predict")
    folder.refuse_earlier(PICTURE_FOLDERS, "pass --overwrite to replace them, or choose another --out")
    written = []
    names = list(names) if names is not None else output_names(paths)
    progress = Progress(len(paths))
    for i, (path, name) in enumerate(zip(paths, names), start=1):
        image = read_image(str(path), str(path))
        pred = segment(image, predict, protocol, f"image {path}")
        with output_writes(folder.root, f"the masks of the {i - 1} images before it are complete in {folder.root}"):
            save_prediction(pred, image, name, folder, palette)
        written.append(folder.root / "color" / f"{name}.png")
        progress.update(i)
    return written


class _CannotWrite(Exception):
    """OpenCV cannot write this container here (no such encoder in its build): the caller falls back."""


def video_names(name: str, video: VideoInfo) -> List[str]:
    """The overlay video's name in the input's container (when one is known here) and the fallback .avi."""
    suffix = video.path.suffix.lower()
    own = [f"{name}_overlay{suffix}"] if suffix in WRITER_CODECS else []
    return own if suffix == FALLBACK[0] else own + [f"{name}_overlay{FALLBACK[0]}"]


def frame_name(name: str, index: int) -> str:
    """The per-frame masks' name: ``<name>_f000123`` (frames counted from 0)."""
    return f"{name}_f{index:06d}"


@dataclass
class _VideoJob:
    """One video's overlay: what it reads, how it segments, where masks go, and its checks' limits."""

    video: VideoInfo
    name: str
    predict: Predict
    protocol: Protocol
    folder: OutputFolder
    palette: np.ndarray
    frames: bool
    fps: float
    where: str

    def write(self, tmp: str, codec: str) -> None:
        """Segment every frame into the overlay video ``tmp`` (codec ``codec``), then check what was stored."""
        v = self.video
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*codec), self.fps, (v.width, v.height))
        if not writer.isOpened():
            writer.release()
            raise _CannotWrite(codec)
        cap = _capture(v.path)
        if cap is None:
            writer.release()
            raise DataError(f"{self.where}: cannot open it as a video any more (was it changed?)")
        start = time.perf_counter()
        try:
            n = self._frames(cap, writer)
        finally:
            cap.release()
            writer.release()
        self._check(tmp, n)
        seconds = time.perf_counter() - start
        logger.info("%s: %d frames in %.1f s, %.2f frames/s", self.where, n, seconds, n / max(seconds, 1e-9))

    def _frames(self, cap, writer) -> int:
        """Read, check, segment and write each frame (and its masks with ``frames``); returns how many."""
        v, where = self.video, self.where
        limit = v.frames + max(2, v.frames // 100)
        progress, n = Progress(v.frames, "frames"), 0
        while True:
            ok, frame = cap.read()
            if not ok:
                return n
            if frame is None or frame.shape != (v.height, v.width, 3) or frame.dtype != np.uint8:
                got = "x".join(str(d) for d in getattr(frame, "shape", ())[1::-1]) or "nothing"
                raise DataError(f"{where}: frame {n} decodes to {got} but the video declares {v.width}x{v.height}; "
                                f"re-encode it")
            if n >= limit:
                raise DataError(f"{where}: decodes more than the {v.frames} frames it declares (+1%); its length is "
                                f"unknown: re-encode it")
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            pred = segment(rgb.astype(np.float32), self.predict, self.protocol, f"frame {n} of {where}")
            writer.write(cv2.cvtColor(overlay(rgb, colorize(pred, self.palette)), cv2.COLOR_RGB2BGR))
            if self.frames:
                with output_writes(self.folder.root, f"the overlay of {where} is not placed"):
                    gray = f"gray/{frame_name(self.name, n)}.png"
                    self.folder.put_bytes(gray, encode_image(self.folder.path(gray), pred), unique=True)
                    self.folder.put_bytes(f"color/{frame_name(self.name, n)}.png", palette_png(pred, self.palette),
                                          unique=True)
            n += 1
            progress.update(n)

    def _check(self, tmp: str, n: int) -> None:
        """Refuse a video with no frame; count what the writer stored (VideoWriter.write reports nothing: a full
        disk shows here)."""
        if n == 0:
            raise DataError(f"{self.where}: no frame could be decoded; re-encode it")
        if n < self.video.frames:
            logger.warning("%s: %d frames decoded of the %d it declares (a truncated file?); the overlay has %d",
                           self.where, n, self.video.frames, n)
        check = _capture(Path(tmp))
        wrote = int(check.get(cv2.CAP_PROP_FRAME_COUNT)) if check is not None else 0
        if check is not None:
            check.release()
        if wrote != n:
            raise OSError(errno.EIO, f"the video writer stored {wrote} of {n} frames", tmp)


def predict_video(video: VideoInfo, name: str, predict: Predict, protocol: Protocol, folder: OutputFolder,
                  palette: np.ndarray, frames: bool = False) -> Path:
    """Segment every frame of ``video`` and write ``<name>_overlay.<ext>`` in ``folder`` (its container where
    OpenCV can write it, else an MJPG .avi): the same size, frame rate and frame count. ``frames``: also
    ``gray/`` and ``color/`` masks per frame. Returns the video's path.

    Frames that decode to another size than declared, or more frames than declared (+1%), are one
    :class:`DataError` naming the file; the partial video is then removed and nothing is placed."""
    fps, where = video.fps, shown(video.path, 300)
    if not 0 < fps <= 1000:
        logger.warning("%s declares a frame rate of %g; its overlay is written at %g frames/s", where, fps,
                       DEFAULT_FPS)
        fps = DEFAULT_FPS
    job = _VideoJob(video, name, predict, protocol, folder, palette, frames, fps, where)
    names = video_names(name, video)
    for out_name in names:
        codec = WRITER_CODECS.get(Path(out_name).suffix, FALLBACK[1])
        try:
            return folder.put_written(out_name, lambda tmp: job.write(tmp, codec), unique=True)
        except _CannotWrite:
            logger.info("OpenCV cannot write %s (codec %s) here; trying %s", out_name, codec, FALLBACK[0])
    raise DataError(f"{where}: OpenCV cannot write an overlay video here (tried {shown_names(names)})")


def _refuse_video_outputs(folder: OutputFolder, videos: Sequence[VideoInfo], names: Sequence[str],
                          frames: bool) -> None:
    """Refuse an earlier predict's overlay videos of these names (and its masks, with ``frames``) unless the
    folder allows ``overwrite``, and a user's file named as an overlay video in the input's container."""
    outputs = [n for name, v in zip(names, videos) for n in video_names(name, v)]
    if outputs:
        folder.refuse_earlier(outputs + (list(PICTURE_FOLDERS[:2]) if frames else []),
                              "pass --overwrite to replace them, or choose another --out")
    folder.refuse_foreign(video_names(name, v)[0] for name, v in zip(names, videos))


def predict_videos(videos: Sequence[VideoInfo], predict: Predict, protocol: Protocol, out: "Path | OutputFolder",
                   palette: np.ndarray, frames: bool = False, names: Optional[Sequence[str]] = None) -> List[Path]:
    """Segment each video (see :func:`predict_video`); returns the overlay videos.

    ``names``: the outputs' names (default: :func:`output_names` of the videos' paths). An earlier predict's
    outputs of these names (and, with ``frames``, its masks) are refused unless the folder was opened with
    ``overwrite``; a user's file with an overlay video's name is refused before any frame is segmented."""
    folder = as_folder(out, "--out", "predict")
    names = list(names) if names is not None else output_names([v.path for v in videos])
    _refuse_video_outputs(folder, videos, names, frames)
    return [predict_video(v, name, predict, protocol, folder, palette, frames) for name, v in zip(names, videos)]


def predict_inputs(inputs: PredictInputs, predict: Predict, protocol: Protocol, out: "Path | OutputFolder",
                   palette: np.ndarray, video_frames: bool = False) -> List[Path]:
    """Images (:func:`predict_images`) then videos (:func:`predict_videos`) into one folder, with one distinct
    name per input across both; returns the images' color masks and the overlay videos."""
    folder = as_folder(out, "--out", "predict")
    names = output_names(list(inputs.images) + [v.path for v in inputs.videos])
    image_names, video_names_ = names[:len(inputs.images)], names[len(inputs.images):]
    _refuse_video_outputs(folder, inputs.videos, video_names_, video_frames)  # before any image is segmented
    written = predict_images(inputs.images, predict, protocol, folder, palette, image_names) if inputs.images else []
    if inputs.videos:
        written += predict_videos(inputs.videos, predict, protocol, folder, palette, video_frames, video_names_)
    return written
