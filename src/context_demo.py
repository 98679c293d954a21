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

import cv2
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
    """Generate the data, train and evaluate both variants, write ``results.json``, ``results.md``, ``predictions.png``."""
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
    """Rows of image | ground truth | PSPNet | baseline for the first val images."""
    names = [Path(l.split()[0]).stem for l in (data_root / "val.txt").read_text().splitlines() if l.strip()]
    palette = voc_palette()
    rows = []
    for name in names[:examples]:
        image = cv2.imread(str(data_root / "JPEGImages" / f"{name}.jpg"))
        gt = np.array(Image.open(data_root / "SegmentationClassAug" / f"{name}.png"))
        cells = [image, cv2.cvtColor(colorize(gt, palette), cv2.COLOR_RGB2BGR)]
        for variant, _ in VARIANTS:
            pred = cv2.imread(str(out / variant / "eval" / "gray" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
            cells.append(cv2.cvtColor(colorize(pred, palette), cv2.COLOR_RGB2BGR))
        rows.append(np.concatenate([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=255) for c in cells], 1))
    if not rows:
        return None
    grid = np.concatenate(rows, 0)
    header = np.full((24, grid.shape[1], 3), 255, np.uint8)
    w = grid.shape[1] // 4
    for i, title in enumerate(("image", "ground truth", "PSPNet", "no PPM")):
        cv2.putText(header, title, (i * w + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path = out / "predictions.png"
    cv2.imwrite(str(path), np.concatenate([header, grid], 0))
    return path
