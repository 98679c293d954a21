"""Every command of the project, behind one skeleton: arguments, config + overrides, logging, device, exit code.

``python -m src COMMAND [args]`` runs a command; ``train.py``, ``eval.py``,
``export.py``, ``convert/convert_weights.py``, ``inference/*.py`` and
``scripts/*.py`` are aliases of the commands that documented command lines
use.  A command's body only wires library functions together.  Any
:class:`src.errors.PSPNetError` it raises ends the process with status 2 and
one ``error: ...`` line naming the file or key at fault.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from src.errors import EXIT_USER_ERROR, PSPNetError

logger = logging.getLogger("src.cli")


@dataclass(frozen=True)
class Command:
    """One command: what it is for, how its arguments look, and what it runs (its exit code, None = 0)."""

    help: str
    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Optional[int]]


# --- shared pieces ------------------------------------------------------------------------------------------------

def _config_args(p: argparse.ArgumentParser, default: Optional[str] = None) -> None:
    p.add_argument("--config", "--yaml_path", dest="config", required=default is None, default=default,
                   help="YAML config: this project's (config/), or semseg's / the model zoo's (DATA/TRAIN/TEST)")
    p.add_argument("--opts", nargs="*", default=[], help="overrides: KEY VALUE ... or KEY=VALUE ...")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY VALUE",
                   help="trailing overrides as semseg and the zoo write them (model_path M, TEST.model_path M)")


def _device_args(p: argparse.ArgumentParser) -> None:
    """The model zoo's habits: ``--device_target`` / ``--device_id`` are aliases of device.target / device_id."""
    p.add_argument("--device_target", "--device-target", default=None, choices=["Ascend", "GPU", "CPU", "auto"],
                   help="alias of --opts device.target X")
    p.add_argument("--device_id", "--device-id", type=int, default=None,
                   help="the device; wins over a launcher's DEVICE_ID / MS_LOCAL_RANK_ID and device.device_id")


def device_overrides(a: argparse.Namespace) -> List[str]:
    """The ``device.*`` overrides that ``--device_target`` / ``--device_id`` stand for (applied after --opts)."""
    extra: List[str] = []
    if getattr(a, "device_target", None) is not None:
        extra += ["device.target", a.device_target]
    if getattr(a, "device_id", None) is not None:
        extra += ["device.device_id", str(a.device_id)]
    return extra


def _load(a: argparse.Namespace, extra: Sequence[str] = ()):
    """The config of ``--config`` (ours, semseg's or the zoo's) with the trailing overrides, ``--opts``, the
    device aliases (and ``extra``) applied and checked."""
    from src.compat import load_any_config

    cfg = load_any_config(a.config, [*getattr(a, "overrides", []), *a.opts, *device_overrides(a), *extra])
    native_logs(a, cfg.device.quiet)
    return cfg


def native_logs(a: argparse.Namespace, quiet: bool) -> None:
    """``device.quiet`` as ``GLOG_v``: 3 (errors only) when quiet, MindSpore's default (warnings) when not.

    MindSpore reads ``GLOG_v`` once, when it is first imported (its Python logger, which prints the plugin
    lines "Backend Ascend is not available" on CPU, and its C++ logs), so :func:`main` applies the default
    before a command runs and :func:`_load` the config's value, both before a command body imports MindSpore.
    A ``GLOG_v`` the user set (``a.user_glog_v``, noted by :func:`main`) wins; without that note nothing changes.
    """
    if getattr(a, "user_glog_v", True):
        return
    if quiet:
        os.environ["GLOG_v"] = "3"
    else:
        os.environ.pop("GLOG_v", None)


def _model_path(a: argparse.Namespace, cfg) -> str:
    """``--ckpt``, else the config's model (semseg's TEST.model_path, the zoo's DATA.ckpt, eval.model_path)."""
    path = a.ckpt or cfg.eval.model_path
    if not path:
        from src.config import ConfigError

        raise ConfigError("no model to use: pass --ckpt PATH (or set eval.model_path / TEST.model_path in the "
                          "config)")
    return path


def _pth_as_checkpoint(path: str, stack: contextlib.ExitStack) -> str:
    """A trained semseg PSPNet ``.pth`` converted (strictly, by name) into a private temporary checkpoint
    that lives as long as ``stack``; anything else is returned as it is."""
    if not path.lower().endswith((".pth", ".pt")):
        return path
    from src.convert.weights import convert_file
    from src.outputs.atomic import private_folder

    folder = stack.enter_context(private_folder())
    dst = os.path.join(folder, "converted.ckpt")
    convert_file(path, dst, "semseg_pspnet")
    logger.info("%s: a semseg PSPNet converted in memory (names mapped, every tensor checked)", path)
    return dst


def _device(cfg, mode: Optional[str] = None, seed: Optional[int] = None, id_from_flag: bool = False) -> str:
    """Set up the config's device (``mode`` overrides device.mode); returns the target used."""
    from src.system.device import setup_device

    return setup_device(cfg.device.target, mode or cfg.device.mode, cfg.device.device_id, seed=seed,
                        quiet=cfg.device.quiet, id_from_flag=id_from_flag)


def _ranks(always: bool = False):
    """``(rank, size)``: joins the collective group when launched by msrun / a rank table (or ``always``)."""
    from src.system.distributed import init_distributed, launched_distributed
    from src.system.logging_setup import setup_logging

    if not (always or launched_distributed()):
        return 0, 1
    rank, size = init_distributed()
    setup_logging(rank)
    return rank, size


# --- train / eval / export ----------------------------------------------------------------------------------------

def _train_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    _device_args(p)
    p.add_argument("--resume", default=None, help="checkpoint to resume from, 'auto' for the newest in save_dir, "
                   "or 'none' (default) to start fresh")
    p.add_argument("--stop_after_epoch", "--stop-after-epoch", type=int, default=None, metavar="E",
                   help="stop after epoch E without changing the schedule (a time-limited job); --resume auto "
                        "continues the run")
    p.add_argument("--allow_schedule_change", "--allow-schedule-change", action="store_true",
                   help="resume even if batch size, epochs, lr, crop or device count differ from the checkpoint's run")
    p.add_argument("--overwrite", action="store_true",
                   help="start fresh in a train.save_dir that holds another run: that run's files (only those) are "
                        "replaced")
    p.add_argument("--plan", action="store_true",
                   help="build the run, time three training steps and print its peak memory, compile time, s/step "
                        "and the schedule's estimated time; writes nothing (train.save_dir is not created)")


def _train(a: argparse.Namespace) -> None:
    cfg = _load(a)  # before MindSpore's import: device.quiet
    from src.train.loop import run_training

    target = _device(cfg, seed=cfg.train.seed, id_from_flag=a.device_id is not None)
    rank, size = _ranks(always=cfg.train.distributed)
    if a.plan:  # before any output folder or log file: a plan writes nothing
        from src.train.plan import plan_training

        plan_training(cfg, target, rank, size)
        return

    def opener(path, overwrite):  # a fresh run over another run is refused before the log file is touched
        from src.outputs.folder import OutputFolder
        from src.train.run_folder import refuse_fresh_over_earlier

        folder = OutputFolder(path, "train.save_dir", "train", overwrite).__enter__()
        try:
            if a.resume in (None, "none"):
                refuse_fresh_over_earlier(folder)
        except BaseException:
            folder.close()
            raise
        return folder

    with _command_folder(cfg.train.save_dir, "train.save_dir", "train", a.overwrite, rank, "train.log",
                         opener) as folder:
        summary = run_training(cfg, target, rank, size, a.resume, a.stop_after_epoch, a.allow_schedule_change,
                               a.overwrite, folder)
    logger.info("done: %s", summary)


@contextlib.contextmanager
def _command_folder(path, what: str, command: str, overwrite: bool, rank: int = 0, log: Optional[str] = None,
                    opener: Optional[Callable] = None):
    """Rank 0's output folder, locked for the whole command (None on other ranks), with the command's log
    file in it: ``<log>`` for rank 0, ``<stem>.rank<N>`` beside it for the others."""
    from src.system.logging_setup import add_log_stream, log_file_name
    from src.outputs.atomic import claim_rank_file, open_append
    from src.outputs.folder import OutputFolder

    folder = None
    if rank == 0:
        folder = opener(path, overwrite) if opener else \
            OutputFolder(path, what, command, overwrite).__enter__()
    try:
        if log:
            stream = folder.open_log(log) if folder is not None else \
                open_append(claim_rank_file(Path(path) / log_file_name(log, rank), fresh=False))
            add_log_stream(stream, rank)
            logger.info("log file: %s", stream.name)
        yield folder
    finally:
        if folder is not None:
            folder.close()


MULTI_SCALES = "[0.5, 0.75, 1.0, 1.25, 1.5, 1.75]"  # semseg's multi-scale test


def _eval_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    _device_args(p)
    p.add_argument("--ckpt", "--ckpt_file", dest="ckpt", default=None,
                   help="MindSpore .ckpt, a semseg .pth, or a .mindir / .onnx file (default: the config's "
                        "eval.model_path / TEST.model_path)")
    p.add_argument("--backend", default=None, choices=["ms", "mindir", "onnx", "lite"],
                   help="default: from the extension (.ckpt ms, .mindir mindir, .onnx onnx); lite: a MINDIR in "
                        "MindSpore Lite's runtime (needs the mindspore_lite wheel)")
    p.add_argument("--multi_scale", "--multi-scale",
                   action="store_true", help=f"use scales {MULTI_SCALES} (semseg's multi-scale test)")
    p.add_argument("--results_dir", "--results-dir", default=None, help="where results.json and pictures go "
                   "(default eval.save_dir, else <train.save_dir>/eval_<backend>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evaluation's files in the results folder (a user's files there stay)")


def _eval(a: argparse.Namespace) -> None:
    cfg = _load(a, ["eval.scales", MULTI_SCALES] if a.multi_scale else [])  # before MindSpore's import
    from src.evaluation.evaluate import EVAL_LOG, open_results_dir, results_dir_of, run_eval
    from src.runtime.backends import backend_from_extension

    stack = contextlib.ExitStack()
    model = _pth_as_checkpoint(_model_path(a, cfg), stack)
    a.backend = a.backend or backend_from_extension(model)
    _device(cfg, id_from_flag=a.device_id is not None)
    rank, size = _ranks()
    out_dir = results_dir_of(cfg, a.backend, a.results_dir)
    with _command_folder(out_dir, "results folder", "eval", a.overwrite, rank, EVAL_LOG, open_results_dir) as folder:
        with stack:
            run_eval(cfg, model, a.backend, a.overwrite, a.results_dir, rank, size, folder)


def _export_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    _device_args(p)
    p.add_argument("--ckpt", "--ckpt_file", dest="ckpt", default=None,
                   help="checkpoint (.ckpt, or a semseg .pth; default: the config's eval.model_path)")
    p.add_argument("--file_format", default="MINDIR", choices=["MINDIR", "AIR", "ONNX", "mindir", "air", "onnx"],
                   help="default MINDIR, as the model zoo's export.py")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--height", type=int, default=None, help="input height (default eval.test_h)")
    p.add_argument("--width", type=int, default=None, help="input width (default eval.test_w)")
    p.add_argument("--file_name", default=None, help="output path without or with extension (default pspnet<layers>)")
    p.add_argument("--output", default="logits", choices=["logits", "softmax", "argmax"])
    p.add_argument("--no_verify", "--no-verify", action="store_true", help="skip the reload/ONNX Runtime comparison")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export of that name (and its sidecar)")


def _export(a: argparse.Namespace) -> None:
    cfg = _load(a)
    target = _device(cfg, mode="GRAPH", id_from_flag=a.device_id is not None)
    height = cfg.eval.test_h if a.height is None else a.height
    width = cfg.eval.test_w if a.width is None else a.width
    with contextlib.ExitStack() as stack:
        ckpt = _pth_as_checkpoint(_model_path(a, cfg), stack)
        result = _export_with(a, cfg, target, ckpt, height, width)
    print(json.dumps(result, indent=1))


def _export_with(a: argparse.Namespace, cfg, target: str, ckpt: str, height: int, width: int) -> Dict:
    from src.deploy.export import export_model

    return export_model(cfg.model, cfg.data.classes, ckpt, a.file_format, a.batch_size, height, width,
                        a.file_name or f"pspnet{cfg.model.layers}", target, a.output, not a.no_verify,
                        cfg.data.mean, cfg.data.std, a.overwrite)


# --- weights, data ------------------------------------------------------------------------------------------------

def _convert_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, help="PyTorch .pth file (zip or legacy format)")
    p.add_argument("--dst", required=True, help="MindSpore .ckpt to write")
    p.add_argument("--kind", default="auto", choices=["auto", "semseg_backbone", "torchvision", "semseg_pspnet"])
    p.add_argument("--layers", type=int, choices=[50, 101, 152], default=None,
                   help="expected ResNet depth (checked against the file; detected when omitted)")
    p.add_argument("--allow_mismatch", "--allow-mismatch", action="store_true",
                   help="drop unknown keys and shape mismatches (listed) instead of refusing")
    p.add_argument("--allow_non_finite", "--allow-non-finite", action="store_true",
                   help="convert tensors holding NaN/inf (listed) instead of refusing the file")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint an earlier conversion wrote at --dst")


def _convert(a: argparse.Namespace) -> None:
    from src.convert.weights import convert_file
    from src.system.device import setup_device

    setup_device("CPU", "PYNATIVE")
    report = convert_file(a.src, a.dst, a.kind, a.layers, a.allow_mismatch, a.allow_non_finite, a.overwrite)
    print(report.summary())
    print(f"wrote {a.dst}")


def _synthetic_args(p: argparse.ArgumentParser) -> None:
    from src.data.synthetic import TASKS

    p.add_argument("--out", required=True, help="output folder (the data root)")
    p.add_argument("--task", default="shapes", choices=sorted(TASKS))
    p.add_argument("--num", type=int, default=100, help="number of images (train + val)")
    p.add_argument("--size", type=int, default=128, help="image width; height is 3/4 of it (3/8 for context_far)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val_fraction", "--val-fraction", type=float, default=0.2)
    p.add_argument("--overwrite", action="store_true", help="write over a data set an earlier run wrote in OUT")
    p.add_argument("--layout", choices=["voc", "folders"], default="voc",
                   help="voc: JPEGImages/, SegmentationClassAug/ and lists; folders: images/ and masks/ as a user "
                        "brings them (then `prepare folders`)")
    p.add_argument("--masks", choices=["index", "binary", "colors"], default="index",
                   help="with --layout folders: class indices, 0/255 binary masks, or RGB colour masks")


def _synthetic(a: argparse.Namespace) -> None:
    from src.data.synthetic import generate

    with _command_folder(a.out, "--out", "synthetic", a.overwrite) as folder:
        print(json.dumps(generate(folder, a.task, a.num, a.size, a.seed, a.val_fraction, a.layout, a.masks)))


def _prepare_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("voc", help="VOC2012 + SBD -> SegmentationClassAug, train_aug.txt, val.txt")
    v.add_argument("--voc_root", "--voc-root", required=True)
    v.add_argument("--sbd_root", "--sbd-root", required=True, help="SBD 'dataset' folder with cls/, train.txt, val.txt")
    v.add_argument("--out", default=None, help="data root to write (default: the VOC root)")
    v.add_argument("--overwrite", action="store_true", help="write the lists again over an earlier prepare's")
    for name in ("ade20k", "cityscapes", "camvid"):
        sp = sub.add_parser(name, help=f"write the {name} list files")
        sp.add_argument("--root", required=True)
        sp.add_argument("--overwrite", action="store_true", help="write the lists again over an earlier prepare's")
    c = sub.add_parser("check", help="the data doctor: every bad sample, per-class counts, mask kinds and their "
                       "fixes (exit 1 if there is a problem); --fix writes fixed copies")
    c.add_argument("--config", help="take lists, root, dataset, classes and label settings from this config")
    c.add_argument("--opts", nargs="*", default=[], help="config overrides: KEY VALUE ... or KEY=VALUE ...")
    c.add_argument("--which", choices=["train", "val", "both"], default="both")
    c.add_argument("--list")
    c.add_argument("--root")
    c.add_argument("--dataset", default="voc2012")
    c.add_argument("--classes", type=int, default=None)
    c.add_argument("--out", default=None, help="also write the report (data_report.md) and a class bar chart "
                   "(class_pixels.png) here; with --fix, where the fixed copies go")
    c.add_argument("--fix", choices=["binary", "colors"], default=None,
                   help="write fixed copies of the masks, the lists and a config.yaml into --out: binary (0/255 "
                        "masks: 255 -> 1), colors (RGB masks -> class indices by data.class_colors)")
    c.add_argument("--overwrite", action="store_true", help="replace what an earlier check or fix wrote in --out")
    f = sub.add_parser("folders", help="pair an images folder and a masks folder by name; write train/val lists "
                       "and a config.yaml that trains at once")
    f.add_argument("--images", required=True, help="folder of images (searched recursively)")
    f.add_argument("--masks", required=True, help="folder of masks with the images' names (any extension)")
    f.add_argument("--out", required=True, help="where train.txt, val.txt and config.yaml go")
    f.add_argument("--val_fraction", "--val-fraction", type=float, default=0.2)
    f.add_argument("--seed", type=int, default=0, help="the shuffle that picks the val samples")
    f.add_argument("--overwrite", action="store_true", help="write the lists and config again over an earlier one")


def _prepare(a: argparse.Namespace) -> int:
    from src.data import prepare

    if a.cmd == "voc":
        print(prepare.prepare_voc_aug(a.voc_root, a.sbd_root, a.out, a.overwrite))
    elif a.cmd in ("ade20k", "cityscapes", "camvid"):
        print(getattr(prepare, f"prepare_{a.cmd}")(a.root, a.overwrite))
    elif a.cmd == "folders":
        summary = prepare.prepare_folders(a.images, a.masks, a.out, a.val_fraction, a.seed, a.overwrite)
        print(json.dumps({k: v for k, v in summary.items() if k != "notes"}))
        print("\n".join(f"note: {n}" for n in summary["notes"]))
        print(f"next: python -m src prepare check --config {summary['config']}")
    elif a.fix:
        if not (a.config and a.out):
            from src.config import ConfigError

            raise ConfigError("prepare check --fix needs --config (the data to fix) and --out (where the copies go)")
        print("\n".join(prepare.fix_command(a.config, a.fix, a.out, a.overwrite, a.opts)))
    else:
        lines, clean = prepare.check_command(a.config, a.which, a.list, a.root, a.dataset, a.classes, a.out,
                                             a.overwrite, a.opts)
        print("\n".join(lines))
        return 0 if clean else 1
    return 0


# --- deployment: the 310 file flow and predict ---------------------------------------------------------------------

def _preprocess_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--out", required=True, help="work folder")
    p.add_argument("--list", default=None, help="list file (default: eval.list, else data.val_list, under "
                                                "data.data_root)")
    p.add_argument("--batch_size", type=int, default=None, help="the exported model's batch (default eval.batch_size)")


def _preprocess(a: argparse.Namespace) -> None:
    cfg = _load(a, ["eval.batch_size", str(a.batch_size)] if a.batch_size is not None else [])  # before MindSpore
    from src.config import eval_list
    from src.deploy.offline import preprocess
    from src.evaluation.protocol import protocol_from_config

    lst = a.list or os.path.join(cfg.data.data_root, eval_list(cfg))
    with _command_folder(a.out, "work folder (--out)", "preprocess", True) as folder:
        folder.remove_owned(["input/", "output/"])  # an earlier preprocess's windows (its own files only)
        preprocess(lst, cfg.data.data_root, folder, protocol_from_config(cfg.data, cfg.eval))


def _infer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", required=True)
    p.add_argument("--model", required=True, help=".onnx or .mindir exported with export.py")
    p.add_argument("--backend", default=None, choices=["onnx", "mindir", "lite"],
                   help="default: from the file extension (lite: MindSpore Lite's runtime, as on the 310)")
    p.add_argument("--lite_target", "--lite-target",
                   default="cpu", choices=["cpu", "ascend"], help="device for --backend lite")
    p.add_argument("--device_id", "--device-id", type=int, default=0, help="device for --backend lite with ascend")


def _infer(a: argparse.Namespace) -> None:
    from src.deploy.offline import run_inputs, runner_predict
    from src.system.device import setup_device
    from src.runtime.backends import backend_from_extension

    backend = a.backend or backend_from_extension(a.model)
    if backend == "mindir":
        setup_device("CPU", "GRAPH")
    predict = runner_predict(a.work, a.model, backend, a.lite_target, a.device_id)
    with _command_folder(a.work, "work folder (--work)", "infer", True) as folder:
        n = run_inputs(folder, predict)
    logger.info("wrote %d output files to %s", n, os.path.join(a.work, "output"))


def _postprocess_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--work", required=True)
    p.add_argument("--results_dir", "--results-dir", default=None, help="write gray/color/overlay pictures here")
    p.add_argument("--report_dir", "--report-dir",
                   default=None, help="where report.md and its pictures go (default: WORK)")


def _postprocess(a: argparse.Namespace) -> None:
    cfg = _load(a)  # before MindSpore's import: device.quiet
    from src.data.labels import spec_of
    from src.deploy.offline import postprocess_and_report
    from src.outputs.folder import OutputFolder

    with _command_folder(a.work, "work folder (--work)", "postprocess", True) as work:
        report = work
        if a.report_dir and os.path.abspath(a.report_dir) != os.path.abspath(a.work):
            report = OutputFolder(a.report_dir, "--report-dir", "postprocess", True, lock=False).__enter__()
        postprocess_and_report(work, spec_of(cfg.data), cfg.data.ignore_label, a.results_dir, report)


def _flow310_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--model", required=True, help="the MINDIR (exported with export.py; its batch is read from its "
                   "sidecar <model>.json)")
    p.add_argument("--work", required=True, help="work folder: new, or a previous flow's (only files the flow "
                   "wrote there are replaced; its results only with --overwrite)")
    p.add_argument("--runner", default="app", choices=["app", "python"],
                   help="app: the 310 C++ app (--app); python: the Python runner (ONNX Runtime / MINDIR / Lite)")
    p.add_argument("--app", default="inference/ascend310/build/pspnet_310", help="the built 310 app")
    p.add_argument("--backend", default=None, choices=["onnx", "mindir", "lite"], help="python runner's backend")
    p.add_argument("--device", default="ascend", choices=["ascend", "cpu"], help="where the app / Lite runs")
    p.add_argument("--device_id", "--device-id", type=int, default=0)
    p.add_argument("--precision", default="float32", choices=["float32", "float16"],
                   help="the app's Ascend precision (Lite's Ascend default would be float16)")
    p.add_argument("--list", default=None, help="list file (default: eval.list, else data.val_list, under "
                                                "data.data_root)")
    p.add_argument("--max_disk_gb", "--max-disk-gb",
                   type=float, default=4.0, help="peak size of the work folder (default 4)")
    p.add_argument("--save_images", "--save-images",
                   action="store_true", help="write gray/color/overlay masks to WORK/results")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier flow's results in WORK (its own "
                   "files only)")
    p.add_argument("--batch_size", type=int, default=None,
                   help="the model's batch when it has no export sidecar <model>.json (default: from the sidecar)")


def _flow310(a: argparse.Namespace) -> None:
    cfg = _load(a, ["eval.batch_size", str(a.batch_size)] if a.batch_size is not None else [])  # before MindSpore
    from src.data.dataset import DataError, read_list
    from src.data.labels import spec_of
    from src.config import eval_list
    from src.deploy.offline import app_runner, python_runner, run_flow
    from src.evaluation.evaluate import batch_from_model
    from src.evaluation.protocol import protocol_from_config
    from src.runtime.backends import backend_from_extension, make_predict, read_sidecar, sidecar_path, sidecar_pyramid

    if not os.path.isfile(a.model):
        raise DataError(f"model not found: {a.model}")
    pyramid = sidecar_pyramid(read_sidecar(a.model))  # what the exported model computes: semseg's or the zoo's
    logger.info("%s: %s", a.model, f"the {pyramid} pyramid (its export sidecar)" if pyramid else
                "no export sidecar: its pyramid form is not known here")
    if a.batch_size is None and pyramid is None:
        raise DataError(f"{a.model}: no export sidecar {sidecar_path(a.model)}, so the batch it was exported with is "
                        f"unknown; export it with export.py, or pass --batch_size N")
    protocol = batch_from_model(protocol_from_config(cfg.data, cfg.eval), "mindir", a.model)
    if a.runner == "app":
        if not (os.path.isfile(a.app) and os.access(a.app, os.X_OK)):
            raise DataError(f"310 app not found or not executable: {a.app} (build it: LITE_HOME=... bash "
                            f"inference/ascend310/build.sh)")
        runner = app_runner(os.path.abspath(a.app), os.path.abspath(a.model), a.device_id, a.device, a.precision)
    else:
        backend = a.backend or backend_from_extension(a.model)
        if backend == "mindir":
            _device(cfg, mode="GRAPH")
        runner = python_runner(make_predict(backend, a.model, None, cfg.data.classes, protocol.batch_size,
                                            (protocol.crop_h, protocol.crop_w), a.device, a.device_id))
    lst = a.list or os.path.join(cfg.data.data_root, eval_list(cfg))
    samples = read_list(lst, cfg.data.data_root)
    run_flow(samples, a.work, protocol, runner, spec_of(cfg.data), cfg.data.ignore_label, a.max_disk_gb,
             a.save_images, a.overwrite, pyramid)


def _predict_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--model", required=True, help=".ckpt (backend ms), .mindir or .onnx")
    p.add_argument("--backend", default=None, choices=["ms", "mindir", "onnx"], help="default: from the extension")
    p.add_argument("--input", nargs="+", required=True, help="image files, video files and/or folders")
    p.add_argument("--out", required=True, help="writes OUT/gray, OUT/color, OUT/overlay; a video: "
                                                "OUT/<name>_overlay.<ext>")
    p.add_argument("--video-frames", action="store_true", help="also write gray/color masks of every video frame "
                                                               "(OUT/gray/<name>_f000123.png)")
    p.add_argument("--overwrite", action="store_true", help="replace masks an earlier predict wrote in OUT")


def _predict(a: argparse.Namespace) -> None:
    cfg = _load(a)  # before MindSpore's import: device.quiet
    from src.data.labels import spec_of
    from src.deploy.predict import collect_inputs, predict_inputs
    from src.evaluation.evaluate import batch_from_model
    from src.evaluation.protocol import protocol_from_config
    from src.runtime.backends import backend_from_extension, make_predict

    backend = a.backend or backend_from_extension(a.model)
    if backend != "onnx":
        _device(cfg)
    protocol = batch_from_model(protocol_from_config(cfg.data, cfg.eval), backend, a.model)  # an export's batch
    predict = make_predict(backend, a.model, cfg.model, cfg.data.classes, protocol.batch_size,
                           (protocol.crop_h, protocol.crop_w))
    inputs = collect_inputs(a.input)
    with _command_folder(a.out, "--out", "predict", a.overwrite) as folder:
        predict_inputs(inputs, predict, protocol, folder, spec_of(cfg.data).palette, a.video_frames)
    logger.info("wrote the masks of %d images to %s (gray/, color/, overlay/) and %d overlay videos",
                len(inputs.images), a.out, len(inputs.videos))


# --- tools ----------------------------------------------------------------------------------------------------------

def _op_inventory_args(p: argparse.ArgumentParser) -> None:
    _config_args(p, default="config/voc2012_pspnet50.yaml")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size (default: train crop)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--allowlist", default=None)
    p.add_argument("--out", default=None, help="also write the table to this Markdown file")


def _op_inventory(a: argparse.Namespace) -> None:
    from src.system.device import setup_device
    from src.outputs.atomic import ensure_output_file
    from src.outputs.folder import put_file
    from src.tools.op_inventory import (ALLOWLIST, ascend_graphs, check_aicore, check_graphs, evidence_table,
                                        load_aicpu_accepted, load_allowlist, load_cann_aicore, report,
                                        wheel_registrations)

    cfg = _load(a)
    allowlist_path = a.allowlist or str(ALLOWLIST)
    allowlist = load_allowlist(allowlist_path)
    if a.out:
        ensure_output_file(a.out, "--out")
    setup_device("CPU", "GRAPH", quiet=cfg.device.quiet)  # the graphs are compiled on CPU: no Ascend needed
    hw = tuple(a.size) if a.size else (cfg.train.crop_h, cfg.train.crop_w)
    logger.info("compiling the training step and the export network at %dx%d on CPU ...", *hw)
    t = cfg.train
    logger.info("training step as train.* builds it: amp_level %s, loss_scale %s%s", t.amp_level, t.loss_scale,
                " (sync_bn: SyncBatchNorm/SyncBatchNormGrad/AllReduce need a device group; listed by hand)"
                if t.sync_bn else "")
    graphs = ascend_graphs(cfg.model, cfg.data.classes, hw, a.batch, t.amp_level, t.loss_scale, t.loss_scale_value)
    registrations = wheel_registrations()
    evidence = evidence_table(graphs, registrations, load_cann_aicore())
    table = "\n".join(report(graphs, allowlist) + ["", "Which engine: the evidence per primitive", "", *evidence])
    print(table)
    if a.out:
        put_file(a.out, (table + "\n").encode("utf-8"), "--out", "op-inventory")
    check_graphs(graphs, allowlist, allowlist_path)
    check_aicore(graphs, registrations, load_aicpu_accepted(allowlist_path))
    logger.info("all %d primitives are on the allowlist", len(set().union(*[set(g) for g in graphs.values()])))


def _context_demo_args(p: argparse.ArgumentParser) -> None:
    _config_args(p, default="config/demo_context.yaml")
    p.add_argument("--out", default="outputs/context_demo")
    p.add_argument("--num", type=int, default=120, help="images (train + val)")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0, help="data set seed")
    p.add_argument("--task", default="context", choices=("context", "context_far"))
    p.add_argument("--train_seeds", "--train-seeds",
                   type=int, nargs="+", default=[0], help="one run per variant and seed")


def _context_demo(a: argparse.Namespace) -> None:
    from src.config import load_config

    cfg = load_config(a.config)  # --opts are applied per run, on top of each variant's own settings
    native_logs(a, cfg.device.quiet)  # before MindSpore's import
    from src.tools.context_demo import run_context_demo

    _device(cfg)
    run_context_demo(cfg, a.out, a.num, a.size, a.seed, a.opts, task=a.task, train_seeds=a.train_seeds)
    print(Path(a.out, "results.md").read_text(encoding="utf-8"))
    print(f"pictures: {os.path.join(a.out, 'predictions.png')} {os.path.join(a.out, 'comparison.png')}")


def _target_check_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("logits", help="logits of a run's newest checkpoint on the fixed input, on one target")
    lg.add_argument("--config", required=True)
    lg.add_argument("--run", required=True, help="the training run's save_dir")
    lg.add_argument("--target", required=True, choices=["CPU", "GPU", "Ascend"])
    lg.add_argument("--out", required=True, help=".npy file")
    lg.add_argument("--opts", nargs="*", default=[])
    cp = sub.add_parser("compare", help="compare a target's run and logits with the CPU's")
    for name in ("ref_run", "run", "ref_logits", "logits", "out"):
        cp.add_argument(f"--{name}", f"--{name.replace('_', '-')}", required=True)
    cp.add_argument("--target", default="GPU")


def _target_check(a: argparse.Namespace) -> int:
    from src.outputs.folder import put_file
    from src.tools.target_check import compare_runs, dump_logits

    if a.cmd == "logits":
        dump_logits(a.config, a.run, a.target, a.out, a.opts)
        return 0
    result = compare_runs(a.ref_run, a.run, a.ref_logits, a.logits, a.target)
    put_file(a.out, json.dumps(result, indent=1).encode("utf-8"), "--out", "target-check")
    print(json.dumps(result, indent=1))
    return 0 if result["agree"] else 1


def _rank_table_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", help="the HCCL rank table (JSON)")
    p.add_argument("server", nargs="?", default=None, help="this host's entry: its index or server_id (default: "
                   "the entry whose server_id is an address of this host)")


def _rank_table(a: argparse.Namespace) -> None:
    from src.system.launch import rank_table_lines

    print("\n".join(rank_table_lines(a.table, a.server)))


def _launch_guard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("launcher_pid", type=int, help="the launcher's pid (it must be this guard's parent)")
    p.add_argument("--grace", type=float, default=20.0, help="seconds between TERM and KILL (STOP_GRACE)")


def _launch_guard(a: argparse.Namespace) -> int:
    """Make the launcher's private folder, print it and the launcher's identity (two lines), then follow and
    stop what the launcher starts (src.system.launch.guard); the folder is removed when the guard ends."""
    import signal
    import sys
    import tempfile

    from src.system.launch import LAUNCHER_FILE, LauncherEnvError, guard, guard_launcher
    from src.outputs.atomic import private_folder, write_text

    launcher = guard_launcher(a.launcher_pid)
    asked: List[int] = []
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):  # the launcher's traps decide on these
        signal.signal(sig, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: asked.append(signum))  # the trap's "stop everything"
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(private_folder())
        except OSError as exc:
            raise LauncherEnvError(f"cannot make the launcher's private folder in {tempfile.gettempdir()} "
                                   f"({exc.strerror}): set TMPDIR to a writable folder") from None
        if "\n" in folder:
            raise LauncherEnvError(f"the temporary folder {folder!r} holds a line break: set TMPDIR to another "
                                   f"folder")
        ident = f"{launcher[0]}:{launcher[1]}"
        write_text(os.path.join(folder, LAUNCHER_FILE), ident + "\n")
        sys.stdout.write(f"{folder}\n{ident}\n")  # read by scripts/lib/launch.sh, which then closes the pipe
        sys.stdout.flush()
        guard(launcher, folder, a.grace, lambda: bool(asked))
    return 0


COMMANDS: Dict[str, Command] = {
    "train": Command("train PSPNet (data-parallel under msrun)", _train_args, _train),
    "eval": Command("evaluate by the reference protocol: mIoU/mAcc/allAcc, results.json, report.md",
                    _eval_args, _eval),
    "export": Command("export the eval network to MINDIR / AIR / ONNX and verify it", _export_args, _export),
    "convert": Command("convert PyTorch .pth weights to a MindSpore .ckpt (no torch needed)", _convert_args, _convert),
    "synthetic": Command("write a synthetic VOC-format data set", _synthetic_args, _synthetic),
    "prepare": Command("write list files for VOC2012AUG / ADE20K / Cityscapes / CamVid, or check a list",
                       _prepare_args, _prepare),
    "preprocess": Command("310 flow 1/3: cut a list's images into protocol windows (.bin)", _preprocess_args,
                          _preprocess),
    "infer": Command("310 flow 2/3: run an exported model on every input .bin", _infer_args, _infer),
    "postprocess": Command("310 flow 3/3: merge the outputs, score, write results.json and report.md",
                           _postprocess_args, _postprocess),
    "flow310": Command("the whole 310 flow in chunks (bounded disk): preprocess, app or runner, merge, report",
                       _flow310_args, _flow310),
    "predict": Command("segment image files of any size and write masks and overlays", _predict_args, _predict),
    "op-inventory": Command("list the primitives of the Ascend graphs; fail on any not allowlisted",
                            _op_inventory_args, _op_inventory),
    "target-check": Command("compare another device target with the CPU (scripts/check_gpu.sh's steps)",
                            _target_check_args, _target_check),
    "rank-table": Command("this host's DEVICE_ID / RANK_ID lines from an HCCL rank table (the launchers read them)",
                          _rank_table_args, _rank_table),
    "launch-guard": Command("(started by the launchers, scripts/lib/launch.sh) stop every process a launcher "
                            "started when it stops or dies", _launch_guard_args, _launch_guard),
    "context-demo": Command("train PSPNet and the no-PPM baseline on a context task and compare",
                            _context_demo_args, _context_demo),
}


def build_parser(command: Optional[str] = None, description: Optional[str] = None,
                 prog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of one command, or of ``python -m src`` with every command as a sub-command."""
    fmt = argparse.RawDescriptionHelpFormatter
    if command is not None:
        p = argparse.ArgumentParser(prog=prog, description=description or COMMANDS[command].help, formatter_class=fmt)
        COMMANDS[command].add_args(p)
        p.set_defaults(command=command)
        return p
    p = argparse.ArgumentParser(prog="python -m src", description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.add_args(sub.add_parser(name, help=cmd.help, description=cmd.help, formatter_class=fmt))
    return p


def bind_to_launcher(env: Optional[Dict[str, str]] = None, watch: bool = True) -> Optional[str]:
    """Under a launcher (scripts/lib/launch.sh sets ``PSPNET_PID_DIR`` and ``PSPNET_LAUNCHER``): check that the
    launcher they name runs and started this process (a leftover is one LauncherEnvError, nothing written), die
    with the parent, register in the launcher's private folder (file ``<pid>`` holding its start time) so a stop
    reaches this process even in a session of its own (msrun's workers), and (``watch``) stop this process and
    its group when the launcher is gone, however it died. Returns the registration file, or None when no
    launcher asked."""
    from src.system.distributed import die_with_parent
    from src.system.launch import LauncherEnvError, check_launcher_env, identity, watch_launcher
    from src.outputs.atomic import write_text

    found = check_launcher_env(os.environ if env is None else env)
    if found is None:
        return None
    folder, launcher = found
    die_with_parent()
    me = identity(os.getpid())
    path = os.path.join(folder, str(os.getpid()))
    try:
        write_text(path, f"{me[1] if me else ''}\n")
    except OSError as exc:
        raise LauncherEnvError(f"cannot register with the launcher in {folder} ({exc}); stop the launch and "
                               f"start it again") from None
    if watch:
        watch_launcher(launcher)
    return path


def main(argv: Optional[List[str]] = None, command: Optional[str] = None, description: Optional[str] = None,
         prog: Optional[str] = None) -> int:
    """Run ``command`` (or the one named first in ``argv``); returns the exit status.

    0 done, 1 the command's own "found problems" status (``prepare check``),
    2 a user error (:class:`PSPNetError`: bad config, file, checkpoint...) with one line.
    """
    from src.system.logging_setup import close_log_files, setup_logging

    a = build_parser(command, description, prog).parse_args(argv)
    a.user_glog_v = "GLOG_v" in os.environ
    native_logs(a, quiet=True)  # device.quiet's default until a command's config says otherwise
    setup_logging()
    try:
        bind_to_launcher()
        status = COMMANDS[a.command].run(a)
    except PSPNetError as exc:
        logging.getLogger(a.command).error("error: %s", exc)
        return EXIT_USER_ERROR
    finally:
        close_log_files()
    return int(status or 0)
