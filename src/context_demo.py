"""What global context adds: PSPNet vs the same network without the pyramid pooling module.

On the synthetic ``context`` set (identical hulls: *boat* on water, *car* on
road, with the water/road band far from the hulls) both variants train with
the same budget; the report gives both mIoUs and the boat/car confusion, and
a picture of predictions side by side.
"""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np
from PIL import Image

from src.config import Config, apply_overrides
from src.data.labels import colorize, voc_palette
from src.data.synthetic import generate
from src.evaluation.run import run_eval
from src.train.loop import Trainer

logger = logging.getLogger(__name__)

BOAT, CAR = 3, 4
VARIANTS = (("pspnet", True), ("fcn_baseline", False))


def boat_car_confusion(matrix: np.ndarray) -> Dict[str, float]:
    """Share of boat pixels predicted car, and of car pixels predicted boat."""
    m = np.asarray(matrix, dtype=np.float64)
    return {"boat_as_car": float(m[BOAT, CAR] / max(m[BOAT].sum(), 1)),
            "car_as_boat": float(m[CAR, BOAT] / max(m[CAR].sum(), 1))}


def run_context_demo(cfg: Config, out_dir: str, num: int = 120, size: int = 128, seed: int = 0,
                     overrides: Sequence[str] = (), examples: int = 4) -> Dict:
    """Generate the data, train and evaluate both variants; write ``results.json``, ``results.md``,
    ``predictions.png`` and ``comparison.png``."""
    out = Path(out_dir)
    data_root = out / "data"
    if not (data_root / "info.json").is_file():
        generate(data_root, "context", num=num, size=size, seed=seed)
    results: Dict[str, Dict] = {}
    for name, use_ppm in VARIANTS:
        c = copy.deepcopy(cfg)
        apply_overrides(c, ["data.data_root", str(data_root), "train.save_dir", str(out / name),
                            "model.use_ppm", str(use_ppm).lower(), "eval.save_images", "true", *overrides])
        logger.info("==> training %s (use_ppm %s)", name, use_ppm)
        summary = Trainer(c).run()
        ckpt = sorted((out / name / "checkpoints").glob("epoch_*.ckpt"))[-1]
        res = run_eval(c, str(ckpt), "ms", overwrite=True, results_dir=str(out / name / "eval"))
        conf = boat_car_confusion(np.array(res["confusion_matrix"]))
        per_class = {p["class"]: p["iou"] for p in res["per_class"]}
        conf.update(boat_iou=per_class["boat"], car_iou=per_class["car"])
        results[name] = {"mIoU": res["mIoU"], "mAcc": res["mAcc"], "allAcc": res["allAcc"], **conf,
                         "steps": summary["step"], "use_ppm": use_ppm}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown_table(results))
    picture(out, data_root, examples)
    comparison_plot(results, out / "comparison.png")
    return results


def markdown_table(results: Dict[str, Dict]) -> str:
    lines = ["| model | mIoU | boat IoU | car IoU | boat pixels called car | car pixels called boat | steps |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        label = "PSPNet (PPM)" if r["use_ppm"] else "same network without PPM"
        lines.append(f"| {label} | {r['mIoU']:.4f} | {r['boat_iou']:.4f} | {r['car_iou']:.4f} | "
                     f"{r['boat_as_car']:.1%} | {r['car_as_boat']:.1%} | {r['steps']} |")
    return "\n".join(lines) + "\n"


def picture(out: Path, data_root: Path, examples: int) -> Optional[Path]:
    """``predictions.png``: rows of image | ground truth | PSPNet | no PPM for the first val images."""
    names = [Path(line.split()[0]).stem for line in (data_root / "val.txt").read_text().splitlines() if line.strip()]
    names = names[:examples]
    if not names:
        return None
    palette = voc_palette()
    titles = ("image", "ground truth", "PSPNet", "no PPM")
    fig = _figure(2.6 * len(titles), 2.2 * len(names) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(names), len(titles)))
    for name, row in zip(names, axes):
        gt = np.array(Image.open(data_root / "SegmentationClassAug" / f"{name}.png"))
        cells = [np.array(Image.open(data_root / "JPEGImages" / f"{name}.jpg").convert("RGB")), colorize(gt, palette)]
        for variant, _ in VARIANTS:
            cells.append(colorize(np.array(Image.open(out / variant / "eval" / "gray" / f"{name}.png")), palette))
        for ax, cell, title in zip(row, cells, titles):
            ax.imshow(cell)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title} ({name})" if title == "image" else title, fontsize="small")
    fig.suptitle("boat (on water) vs car (on road): predictions of both variants")
    path = out / "predictions.png"
    fig.savefig(path)
    return path


def comparison_plot(results: Dict[str, Dict], path: Path) -> Dict[str, list]:
    """``comparison.png``: IoUs and the boat/car confusion of both variants side by side; returns the bars."""
    metrics = (("mIoU", "mIoU"), ("boat_iou", "boat IoU"), ("car_iou", "car IoU"),
               ("boat_as_car", "boat pixels\ncalled car"), ("car_as_boat", "car pixels\ncalled boat"))
    fig = _figure(9, 4)
    ax = fig.subplots()
    x = np.arange(len(metrics))
    width = 0.8 / max(len(results), 1)
    bars = {}
    for k, (name, r) in enumerate(results.items()):
        label = "PSPNet (PPM)" if r["use_ppm"] else "same network without PPM"
        values = [float(r[key] or 0.0) for key, _ in metrics]
        ax.bar(x + (k - (len(results) - 1) / 2) * width, values, width, label=label)
        bars[label] = values
    ax.set_xticks(x, labels=[title for _, title in metrics])
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU / fraction of the class's pixels (0-1)")
    ax.set_title("what global context adds (same data, budget and seed)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper right", fontsize="small")
    fig.savefig(path)
    return bars


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig
