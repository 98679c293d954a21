"""The offline (Ascend 310) file contract: preprocess -> run -> postprocess.

``preprocess`` cuts every image of a list into the evaluation protocol's
windows (and flips), writes them as raw float32 batches
``input/NNNNN_sS_BBB.bin`` of shape (batch, 3, crop_h, crop_w) and records in
``meta.json`` how to put the outputs back together.  A runner (the 310 C++
app in ``inference/ascend310``, or ``inference/run.py`` with ONNX Runtime or
a MINDIR) reads each input file and writes ``output/<same name>_0.bin``: the
float32 logits (batch, classes, crop_h, crop_w).  ``postprocess`` merges
them with the same code eval.py uses, scores them and writes color masks.
"""
from __future__ import annotations

import json
import logging
import math
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from src.config import PYRAMIDS, DataConfig, value_range
from src.data.dataset import DataError, Sample, load_sample, read_image, read_list, refuse_mapped_labels
from src.data.labels import DatasetSpec
from src.evaluation.evaluate import result_lines, write_json
from src.evaluation.pictures import save_or_stop
from src.errors import has_control_chars, shown, shown_names
from src.progress import Progress
from src.evaluation.metrics import ConfusionMatrix, scores_from_matrix
from src.evaluation.protocol import (Protocol, WindowPlan, check_working_set, combine_scales, full_batch,
                                      merge_windows, plan_windows, scaled_images)
from src.runtime.types import Predict
from src.evaluation.report import Gallery, write_report
from src.runtime.backends import backend_from_extension, make_predict
from src.outputs.atomic import free_bytes, output_writes
from src.outputs.folder import OutputFolder, as_folder, make_folder

logger = logging.getLogger(__name__)

META = "meta.json"
OFFLINE_TAG = "310-flow"  # the summary line's tag


def output_name(input_name: str) -> str:
    """``x.bin`` -> ``x_0.bin`` (first model output), as the 310 app writes it."""
    return input_name[:-4] + "_0.bin"


def preprocess(list_file: str, data_root: str, out_dir: "str | OutputFolder", protocol: Protocol,
               require_labels: bool = True) -> Dict:
    """Write window batches and ``meta.json`` for every image in ``list_file``; returns the meta dict."""
    return preprocess_samples(read_list(list_file, data_root, require_labels=require_labels), out_dir, protocol)


def preprocess_samples(samples: Sequence[Sample], out_dir: "str | Path | OutputFolder", protocol: Protocol,
                       show_progress: bool = True, pyramid: Optional[str] = None) -> Dict:
    """Write window batches and ``meta.json`` for ``samples``; returns the meta dict. ``pyramid``: the form the
    model that will run them computes (from its export sidecar), recorded when known."""
    folder = as_folder(out_dir, "work folder", "preprocess")
    b = protocol.batch_size
    meta: Dict = {"protocol": asdict(protocol), "input_shape": [b, 3, protocol.crop_h, protocol.crop_w],
                  "images": []}
    if pyramid is not None:
        meta["pyramid"] = pyramid
    progress = Progress(len(samples)) if show_progress else None
    for idx, sample in enumerate(samples):
        image = read_image(sample.image, sample.where)
        check_working_set(image.shape[0], image.shape[1], protocol, f"{sample.where}: image {sample.image}")
        entry = {"name": Path(sample.image).stem, "image": sample.image, "label": sample.label,
                 "h": image.shape[0], "w": image.shape[1], "scales": []}
        for si, scaled in enumerate(scaled_images(image, protocol)):
            inputs, plan = plan_windows(scaled, protocol)
            files = []
            for k, start in enumerate(range(0, len(inputs), b)):
                chunk = full_batch(inputs[start:start + b], b)
                name = f"{idx:05d}_s{si}_{k:03d}.bin"
                folder.put_bytes(f"input/{name}", np.ascontiguousarray(chunk, np.float32).tobytes())
                files.append(name)
            entry["scales"].append({"plan": asdict(plan), "files": files})
        meta["images"].append(entry)
        if progress:
            progress.update(idx + 1)
    folder.put_json(META, meta, indent=None)
    logger.debug("wrote %d input files for %d images to %s", sum(len(s["files"]) for e in meta["images"]
                                                                for s in e["scales"]), len(samples), folder.root / "input")
    return meta


def read_meta(work_dir: str | Path) -> Dict:
    """``meta.json`` of a work folder, checked (:func:`check_meta`), or one error saying what is wrong."""
    path = Path(work_dir) / META
    if not path.is_file():
        raise DataError(f"{path} not found: run inference/preprocess.py first")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); run inference/preprocess.py again") from None
    check_meta(meta, path)
    return meta


def _plain_name(value) -> bool:
    """A file name without folders: what preprocess writes, so nothing is read or written outside the work folder."""
    return isinstance(value, str) and value not in ("", ".", "..") and Path(value).name == value and \
        "\\" not in value and not has_control_chars(value)


def _whole(v, low: int, high: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _real(v, low: float, high: float) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and low <= v <= high


# The protocol fields preprocess writes: the config key each comes from (its bounds are that key's) and its form.
_PROTOCOL_KEYS: Dict[str, Tuple[str, str]] = {
    "classes": ("data.classes", "integer"), "crop_h": ("eval.test_h", "integer"),
    "crop_w": ("eval.test_w", "integer"), "base_size": ("eval.base_size", "integer"),
    "batch_size": ("eval.batch_size", "integer"), "scales": ("eval.scales", "scales"), "flip": ("eval.flip", "bool"),
    "stride_rate": ("eval.stride_rate", "number"), "mean": ("data.mean", "rgb"), "std": ("data.std", "rgb"),
    "max_image_gb": ("eval.max_image_gb", "number"),
}


def _protocol_rule(key: str, form: str) -> Tuple[str, Callable[[object], bool]]:
    """What a protocol field of ``form`` must be, in words and as a test, within config key ``key``'s bounds."""
    if form == "bool":
        return "true or false", lambda v: isinstance(v, bool)
    low, high = value_range(key)
    span = f"from {low:g} to {high:g}"
    if form == "integer":
        return f"an integer {span}", lambda v: _whole(v, low, high)
    if form == "number":
        return f"a number {span}", lambda v: _real(v, low, high)
    if form == "rgb":
        return f"3 numbers {span}", lambda v: isinstance(v, list) and len(v) == 3 and \
            all(_real(x, low, high) for x in v)
    return (f"a list of 1 to 16 numbers {span}",
            lambda v: isinstance(v, list) and 1 <= len(v) <= 16 and all(_real(x, low, high) for x in v))


def _check_protocol(protocol: Dict, bad: Callable[[str], DataError]) -> None:
    """Every protocol field present, of its type and within its bounds: the runner and postprocess compute
    with them (a class count sizes the confusion matrix and the output files)."""
    for key, (config_key, form) in _PROTOCOL_KEYS.items():
        what, ok = _protocol_rule(config_key, form)
        if key not in protocol or not ok(protocol[key]):
            got = shown(repr(protocol[key]), 60) if key in protocol else "nothing (another version's?)"
            raise bad(f"protocol.{key} must be {what}, got {got}")
    extra = sorted(set(protocol) - set(_PROTOCOL_KEYS))
    if extra:
        raise bad(f"protocol has fields this version does not know: {shown_names(extra)}")


def check_meta(meta, path: Path) -> None:
    """The shape preprocess writes; anything else (a hand-edited or foreign file) is one :class:`DataError`.

    File and image names must be plain names: the runner writes ``output/<file>_0.bin`` and postprocess
    ``<results>/color/<name>.png``, so a ``../`` in them would write outside those folders.
    """
    def bad(what: str) -> DataError:
        return DataError(f"{path}: {what}; this is not a meta.json that inference/preprocess.py wrote")

    if not isinstance(meta, dict) or not isinstance(meta.get("protocol"), dict) or \
            not isinstance(meta.get("images"), list):
        raise bad("expected an object with protocol, input_shape and images")
    shape = meta.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 4 and
            all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)):
        raise bad(f"input_shape must be 4 positive integers, got {shown(repr(shape))}")
    if "pyramid" in meta and meta["pyramid"] not in PYRAMIDS:
        raise bad(f"pyramid must be {' or '.join(PYRAMIDS)} (the model's form), got {shown(repr(meta['pyramid']), 60)}")
    _check_protocol(meta["protocol"], bad)
    for i, entry in enumerate(meta["images"]):
        if not isinstance(entry, dict) or not _plain_name(entry.get("name")) or \
                not isinstance(entry.get("scales"), list):
            raise bad(f"images[{i}] needs a plain file name and a list of scales")
        if not (_whole(entry.get("h"), 1, 2**20) and _whole(entry.get("w"), 1, 2**20) and
                isinstance(entry.get("image"), str) and (entry.get("label") is None or isinstance(entry["label"], str))):
            raise bad(f"images[{i}] ({shown(entry['name'])}): needs the image's path, its label's path or null, "
                      f"and its size h, w")
        for s in entry["scales"]:
            if not isinstance(s, dict) or not isinstance(s.get("plan"), dict) or \
                    not isinstance(s.get("files"), list) or not all(_plain_name(f) for f in s["files"]):
                raise bad(f"images[{i}] ({shown(entry['name'])}): each scale needs a plan and plain input file names")


def _from_meta(cls, values: Dict, path: Path, what: str):
    """``cls(**values)`` from meta.json, a wrong set of keys being one :class:`DataError`."""
    try:
        return cls(**values)
    except TypeError as exc:
        raise DataError(f"{path}: {what} does not match this version's ({shown(exc, 200)}); run "
                        f"inference/preprocess.py again") from None


def runner_predict(work_dir: str, model_path: str, backend: Optional[str] = None, lite_target: str = "cpu",
                   device_id: int = 0) -> Predict:
    """The predict function of an exported model for a work folder's input shape (``meta.json``).

    ``backend`` defaults to the file's extension (.onnx / .mindir); ``lite``
    runs a MINDIR in MindSpore Lite as the 310 app does.
    """
    meta = read_meta(work_dir)
    b, _, h, w = meta["input_shape"]
    classes = meta["protocol"]["classes"]
    backend = backend or backend_from_extension(model_path)
    if backend == "ms":
        raise DataError(f"{model_path}: the runner takes an exported model (.onnx or .mindir), not a checkpoint")
    return make_predict(backend, model_path, None, classes, b, (h, w), lite_target, device_id)


def run_inputs(work_dir: "str | OutputFolder", predict: Predict, show_progress: bool = True) -> int:
    """The Python runner: every ``input/*.bin`` -> ``output/*_0.bin`` logits; returns the file count."""
    folder = as_folder(work_dir, "work folder", "infer")
    work = folder.root
    meta = read_meta(work)
    shape = tuple(meta["input_shape"])
    names = [f for e in meta["images"] for s in e["scales"] for f in s["files"]]
    progress = Progress(len(names), "files") if show_progress else None
    for i, name in enumerate(names, start=1):
        if not (work / "input" / name).is_file():
            raise DataError(f"{work / 'input' / name} not found (listed in {work / META}); run inference/preprocess.py "
                            f"again")
        x = np.fromfile(work / "input" / name, dtype=np.float32)
        if x.size != int(np.prod(shape)):
            raise DataError(f"{work / 'input' / name}: {x.size} floats, expected {shape}")
        y = np.asarray(predict(x.reshape(shape)), dtype=np.float32)
        folder.put_bytes(f"output/{output_name(name)}", np.ascontiguousarray(y).tobytes())
        if progress:
            progress.update(i)
    return len(names)


def _read_output(path: Path, batch: int, classes: int, crop_h: int, crop_w: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"missing model output {path} (did the runner process every input file?)")
    y = np.fromfile(path, dtype=np.float32)
    want = batch * classes * crop_h * crop_w
    if y.size != want:
        raise DataError(f"{path}: {y.size} floats, expected {batch}x{classes}x{crop_h}x{crop_w} logits")
    return y.reshape(batch, classes, crop_h, crop_w)


def postprocess(work_dir: "str | Path | OutputFolder", spec: DatasetSpec, ignore_label: int = DataConfig.ignore_label,
                results_dir: "Optional[str | OutputFolder]" = None, gallery: Optional[Gallery] = None,
                matrix: Optional[ConfusionMatrix] = None, show_progress: bool = True) -> np.ndarray:
    """Merge the runner's outputs into class maps, score them; returns the confusion matrix.

    With ``results_dir``, writes gray/color/overlay pictures as eval.py does;
    ``gallery`` collects per-image IoU and best/worst thumbnails for the report;
    ``matrix`` (of earlier chunks) is added to rather than started afresh.
    """
    work = Path(getattr(work_dir, "root", work_dir))
    meta = read_meta(work)
    refuse_mapped_labels([Sample(e["image"], e["label"], "meta.json", i) for i, e in enumerate(meta["images"], 1)],
                         spec)  # before any image is merged
    pictures = as_folder(results_dir, "--results-dir", "postprocess") if results_dir else None
    p = _from_meta(Protocol, {k: tuple(v) if isinstance(v, list) else v for k, v in meta["protocol"].items()},
                   work / META, "the protocol")
    cm = matrix if matrix is not None else ConfusionMatrix(p.classes, ignore_label)
    progress = Progress(len(meta["images"])) if show_progress else None
    for i, entry in enumerate(meta["images"], start=1):
        per_scale = []
        for s in entry["scales"]:
            plan_d = s["plan"]
            plan = _from_meta(WindowPlan, {**plan_d, "boxes": tuple(tuple(b) for b in plan_d.get("boxes", ()))},
                              work / META, f"the window plan of {entry['name']}")
            logits = np.concatenate([_read_output(work / "output" / output_name(f), p.batch_size, p.classes,
                                                  p.crop_h, p.crop_w) for f in s["files"]])[:plan.num_inputs]
            per_scale.append(merge_windows(logits, plan, p))
        pred = combine_scales(per_scale, entry["h"], entry["w"]).argmax(axis=2).astype(np.uint8)
        image = read_image(entry["image"]) if (pictures or (gallery is not None and entry["label"])) else None
        if entry["label"]:
            _, label = load_sample(Sample(entry["image"], entry["label"], "meta.json", i), spec, p.classes)
            cm.update(pred, label)
            if gallery is not None:
                gallery.add(entry["name"], image, label, pred)
        if pictures:
            pictures = save_or_stop(pred, image, entry["name"], pictures, spec.palette, i - 1)
        if progress:
            progress.update(i)
    return cm.matrix


def postprocess_and_report(work_dir: "str | OutputFolder", spec: DatasetSpec, ignore_label: int = DataConfig.ignore_label,
                           results_dir: "Optional[str | OutputFolder]" = None,
                           report_dir: "Optional[str | OutputFolder]" = None) -> Dict:
    """:func:`postprocess`, then the same ``results.json`` and ``report.md`` eval.py writes; returns the scores.

    ``results.json`` goes into the work folder, the report into ``report_dir`` (default: the work folder).
    """
    work = as_folder(work_dir, "work folder", "postprocess")
    gallery = Gallery(spec.classes, ignore_label)
    matrix = postprocess(work, spec, ignore_label, results_dir, gallery)
    report = as_folder(report_dir, "--report-dir", "postprocess") if report_dir else work
    scores = _score_and_report(matrix, spec, gallery, work, report, f"over the work folder `{work.root}`", {})
    return scores.as_dict(spec.class_names)


def _score_and_report(matrix: np.ndarray, spec: DatasetSpec, gallery: Gallery, work: OutputFolder,
                      report_dir: OutputFolder, how: str, extra: Dict):
    """Scores of ``matrix``, logged and written as ``work/results.json`` and ``report_dir/report.md``."""
    scores = scores_from_matrix(matrix)
    for line in result_lines(scores, spec.class_names, OFFLINE_TAG):
        logger.info(line)
    with output_writes(report_dir.root, "the scores are complete in the lines above; only the result files are "
                                        "missing"):
        out = write_json(work, scores, spec.class_names,
                         {"tag": OFFLINE_TAG, "confusion_matrix": matrix.tolist(), **extra})
        report_path = write_report(report_dir, scores, spec.class_names, matrix, OFFLINE_TAG, spec.palette, gallery,
                                   [f"Offline (310) flow {how}."])
    logger.info("results in %s; report in %s", out, report_path)
    return scores


# --- the whole flow in chunks: bounded disk, a work folder it may clear ---------------------------------------------

FLOW_RESULTS = ("results.json", "report.md", "per_class_iou.png", "confusion.png", "best_worst.png", "results/")
FLOW_ENTRIES = ("input/", "output/", META) + FLOW_RESULTS  # everything the flow writes in its work folder
DEFAULT_MAX_DISK_GB = 4.0


class WorkDirError(DataError):
    """The work folder is not one the flow may use."""


def prepare_work_dir(work_dir: "str | Path | OutputFolder", overwrite: bool = False) -> OutputFolder:
    """The work folder, locked when the caller did not open it: new, or one where only files an earlier flow
    wrote (its manifest) are replaced - its results only with ``overwrite``. A user's files stay."""
    work = Path(work_dir.root if isinstance(work_dir, OutputFolder) else work_dir)
    if work.exists() and not work.is_dir():
        raise WorkDirError(f"work folder {work} is a file")
    folder = work_dir if isinstance(work_dir, OutputFolder) else \
        OutputFolder(work, "work folder (--work)", "flow310", overwrite).__enter__()
    try:
        folder.refuse_earlier(FLOW_RESULTS, "pass --overwrite to replace them, or choose another --work")
        folder.refuse_foreign([n for n in FLOW_ENTRIES if not n.endswith("/")])
        folder.remove_owned(FLOW_ENTRIES)
    except BaseException:
        if folder is not work_dir:  # a folder this function locked is let go (its lock would outlive the error)
            folder.close()
        raise
    others = sorted(p.name for p in work.iterdir() if not p.name.startswith(".pspnet") and p.name != ".run.lock")
    if others:
        logger.warning("work folder %s: left %d entries the flow did not write: %s", work, len(others),
                       shown_names(others, 10))
    return folder


def max_inputs_per_image(protocol: Protocol) -> int:
    """The most input files (batches) one image can need: each scale at its long side on both axes."""
    files = 0
    for scale in protocol.scales:
        side = max(1, int(round(scale * protocol.base_size)))
        _, plan = plan_windows(np.zeros((side, side, 3), np.float32), protocol)
        files += -(-plan.num_inputs // protocol.batch_size)
    return files


def bytes_per_image(protocol: Protocol) -> int:
    """Upper bound of the disk one image's inputs and outputs take at once (float32 files)."""
    per_batch = protocol.batch_size * (3 + protocol.classes) * protocol.crop_h * protocol.crop_w * 4
    return max_inputs_per_image(protocol) * per_batch


@dataclass(frozen=True)
class DiskPlan:
    """How the flow splits a list: images per chunk and the most disk a chunk takes."""

    images: int
    chunk_images: int
    per_image_bytes: int

    @property
    def chunks(self) -> int:
        return -(-self.images // self.chunk_images) if self.images else 0

    @property
    def peak_bytes(self) -> int:
        return min(self.chunk_images, max(self.images, 1)) * self.per_image_bytes

    def describe(self) -> str:
        return (f"{self.images} images in {self.chunks} chunk(s) of at most {self.chunk_images}; peak disk at most "
                f"{self.peak_bytes / 1e9:.2f} GB (an image's inputs + outputs at most "
                f"{self.per_image_bytes / 1e6:.1f} MB; all at once would need up to "
                f"{self.images * self.per_image_bytes / 1e9:.1f} GB)")


def plan_disk(images: int, protocol: Protocol, max_disk_gb: float = DEFAULT_MAX_DISK_GB) -> DiskPlan:
    """Chunks that keep the work folder under ``max_disk_gb`` (at least one image per chunk)."""
    per_image = bytes_per_image(protocol)
    if not max_disk_gb > 0:
        raise DataError(f"--max-disk-gb must be positive, got {max_disk_gb}")
    return DiskPlan(images, max(1, int(max_disk_gb * 1e9 // per_image)), per_image)


def clear_chunk(folder: OutputFolder) -> None:
    """Delete one chunk's input and output files and its meta.json (the flow's own; a user's file stays)."""
    folder.remove_owned(["input/", "output/", META])


def app_runner(app: str, model_path: str, device_id: int = 0, device: str = "ascend",
               precision: str = "float32") -> Callable[[OutputFolder], None]:
    """Run the 310 C++ app on a work folder's ``input/`` (one process per chunk); a failure is one DataError.
    The app writes each output to a temporary name and renames it; the flow records the outputs as its own."""
    def run(folder: OutputFolder) -> None:
        work = folder.root
        cmd = [app, f"--mindir_path={model_path}", f"--input_dir={work / 'input'}", f"--output_dir={work / 'output'}",
               f"--device_id={device_id}", f"--device={device}", f"--precision={precision}"]
        make_folder(folder, "output")
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])[:600]
            raise DataError(f"the 310 app {app} failed with status {proc.returncode}: {tail}")
        logger.debug("%s", proc.stdout.strip())
    return run


def python_runner(predict: Predict) -> Callable[[OutputFolder], None]:
    """The Python runner (:func:`run_inputs`) on a work folder, for ONNX Runtime / MINDIR / Lite."""
    return lambda folder: run_inputs(folder, predict, show_progress=False)


def _chunk_outputs(meta: Dict) -> List[str]:
    return [f"output/{output_name(f)}" for e in meta["images"] for sc in e["scales"] for f in sc["files"]]


def run_flow(samples: Sequence[Sample], work_dir: str | Path, protocol: Protocol, runner: Callable[[Path], None],
             spec: DatasetSpec, ignore_label: int = DataConfig.ignore_label, max_disk_gb: float = DEFAULT_MAX_DISK_GB,
             save_images: bool = False, overwrite: bool = False, pyramid: Optional[str] = None) -> Dict:
    """The 310 flow over ``samples`` in chunks: preprocess -> runner -> merge -> delete, then results and report.

    The work folder must be new, empty or a previous flow's
    (:func:`prepare_work_dir`); its peak size is bounded by ``max_disk_gb``
    (printed up front, and checked against the free space). ``pyramid``: the form the model computes (its export
    sidecar's), recorded in each chunk's meta.json and in results.json when known.
    """
    folder = prepare_work_dir(work_dir, overwrite)
    work = folder.root
    plan = plan_disk(len(samples), protocol, max_disk_gb)
    logger.info("310 flow: %s", plan.describe())
    free = free_bytes(work)
    if free < plan.peak_bytes:
        raise DataError(f"work folder {work}: {free / 1e9:.2f} GB free, the flow needs up to "
                        f"{plan.peak_bytes / 1e9:.2f} GB; free space or lower --max-disk-gb")
    gallery = Gallery(spec.classes, ignore_label)
    cm = ConfusionMatrix(protocol.classes, ignore_label)
    progress = Progress(len(samples))
    done = 0
    for start in range(0, len(samples), plan.chunk_images):
        chunk = samples[start:start + plan.chunk_images]
        clear_chunk(folder)
        meta = preprocess_samples(chunk, folder, protocol, show_progress=False, pyramid=pyramid)
        outputs = _chunk_outputs(meta)
        folder.refuse_foreign(outputs)  # the app would write over a user's file of such a name
        runner(folder)
        for name in outputs:
            if name not in folder.written and folder.path(name).is_file():
                folder.adopt(name)  # written by the app this flow ran
        postprocess(folder, spec, ignore_label, folder.sub("results") if save_images else None, gallery, cm,
                    show_progress=False)
        clear_chunk(folder)
        done += len(chunk)
        progress.update(done)
    extra = {"disk": plan.describe(), **({"pyramid": pyramid} if pyramid else {})}
    scores = _score_and_report(cm.matrix, spec, gallery, folder, folder, f"in chunks: {plan.describe()}", extra)
    return {**scores.as_dict(spec.class_names), "confusion_matrix": cm.matrix.tolist(), "chunks": plan.chunks,
            "peak_bytes": plan.peak_bytes}
