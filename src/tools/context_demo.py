"""What global context adds: PSPNet vs the same network without the pyramid pooling module.

On the synthetic ``context`` set (identical hulls: *boat* on water, *car* on
road, with the water/road band far from the hulls) both variants train with
the same budget; the report gives both mIoUs and the boat/car confusion, and
a picture of predictions side by side.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from src.config import Config, apply_overrides
from src.data.labels import colorize, voc_palette
from src.data.synthetic import generate
from src.evaluation.evaluate import run_eval
from src.plotting import figure_bytes, label_axes, new_figure
from src.train.loop import Trainer
from src.outputs.atomic import write_bytes, write_json, write_text

logger = logging.getLogger(__name__)

BOAT, CAR = 3, 4
VARIANTS = (("pspnet", True), ("fcn_baseline", False))


def boat_car_confusion(matrix: np.ndarray) -> Dict[str, float]:
    """Share of boat pixels predicted car, and of car pixels predicted boat."""
    m = np.asarray(matrix, dtype=np.float64)
    return {"boat_as_car": float(m[BOAT, CAR] / max(m[BOAT].sum(), 1)),
            "car_as_boat": float(m[CAR, BOAT] / max(m[CAR].sum(), 1))}


def run_context_demo(cfg: Config, out_dir: str, num: int = 120, size: int = 128, seed: int = 0,
                     overrides: Sequence[str] = (), examples: int = 4, task: str = "context",
                     train_seeds: Sequence[int] = (0,)) -> Dict:
    """Generate the data, train and evaluate both variants once per training seed.

    Writes ``results.json`` (every run, the mean per variant, and the no-PPM
    network's effective receptive field at a hull beside the hull-to-cue
    distance), ``results.md``, ``predictions.png`` and ``comparison.png``.
    """
    out = Path(out_dir)
    data_root = out / "data"
    if not (data_root / "info.json").is_file():
        generate(data_root, task, num=num, size=size, seed=seed)
    runs: List[Dict] = []
    for train_seed in train_seeds:
        for name, use_ppm in VARIANTS:
            run_dir = out / f"{name}_seed{train_seed}"
            c = copy.deepcopy(cfg)
            apply_overrides(c, ["data.data_root", str(data_root), "train.save_dir", str(run_dir),
                                "model.use_ppm", str(use_ppm).lower(), "eval.save_images", "true",
                                "train.seed", str(train_seed), *overrides])
            logger.info("==> training %s (use_ppm %s), seed %d", name, use_ppm, train_seed)
            summary = Trainer(c).run()
            ckpt = sorted((run_dir / "checkpoints").glob("epoch_*.ckpt"))[-1]
            res = run_eval(c, str(ckpt), "ms", overwrite=True, results_dir=str(run_dir / "eval"))
            per_class = {p["class"]: p["iou"] for p in res["per_class"]}
            row = {"variant": name, "use_ppm": use_ppm, "seed": train_seed, "mIoU": res["mIoU"],
                   "boat_iou": per_class["boat"], "car_iou": per_class["car"],
                   **boat_car_confusion(np.array(res["confusion_matrix"])), "steps": summary["step"]}
            if not use_ppm:
                row["erf"] = hull_receptive_field(c, str(ckpt), data_root)
            runs.append(row)
    results = {"task": task, "seeds": list(train_seeds), "runs": runs, "mean": mean_per_variant(runs),
               "ambiguous_gain": ambiguous_gain(runs)}
    write_json(out / "results.json", results)
    write_text(out / "results.md", markdown_table(results))
    picture(out, data_root, examples, train_seeds[0])
    comparison_plot(results["mean"], out / "comparison.png")
    return results


METRICS = ("mIoU", "boat_iou", "car_iou", "boat_as_car", "car_as_boat")


def mean_per_variant(runs: Sequence[Dict]) -> Dict[str, Dict]:
    """Per variant, the mean (and min/max) of each metric over the seeds."""
    out: Dict[str, Dict] = {}
    for name, use_ppm in VARIANTS:
        rows = [r for r in runs if r["variant"] == name]
        if not rows:
            continue
        entry: Dict = {"use_ppm": use_ppm, "seeds": len(rows)}
        for key in METRICS:
            values = [float(r[key] or 0.0) for r in rows]
            entry[key] = float(np.mean(values))
            entry[f"{key}_range"] = [min(values), max(values)]
        out[name] = entry
    return out


def ambiguous_gain(runs: Sequence[Dict]) -> Dict[str, object]:
    """PSPNet's lead over the no-PPM network on the ambiguous classes (mean of boat and car IoU), in
    mIoU points, for each seed both variants ran with, and the mean over those seeds."""
    (with_ppm, _), (without_ppm, _) = VARIANTS
    amb = {(r["variant"], r["seed"]): 50.0 * (float(r["boat_iou"] or 0.0) + float(r["car_iou"] or 0.0))
           for r in runs}
    per_seed = {seed: amb[(with_ppm, seed)] - amb[(without_ppm, seed)]
                for seed in sorted({seed for _, seed in amb}) if (with_ppm, seed) in amb and (without_ppm, seed) in amb}
    return {"per_seed": {str(k): v for k, v in per_seed.items()},
            "mean": float(np.mean(list(per_seed.values()))) if per_seed else None}


def hull_receptive_field(cfg: Config, ckpt: str, data_root: Path) -> Dict[str, float]:
    """The trained network's effective receptive field at the centre of the first val hull, and how far
    that pixel is from the nearest water/road pixel."""
    from src.data.dataset import read_image
    from src.data.transforms import normalize
    from src.runtime.backends import load_eval_network

    net = load_eval_network(cfg.model, cfg.data.classes, ckpt)
    for line in (data_root / "val.txt").read_text().splitlines():
        image_rel, label_rel = line.split()[:2]
        label = np.array(Image.open(data_root / label_rel))
        hull = np.argwhere((label == BOAT) | (label == CAR))
        if hull.size:
            break
    else:
        return {}
    point = tuple(int(v) for v in np.round(hull.mean(axis=0)))
    cue = np.argwhere((label == 1) | (label == 2))
    image = normalize(read_image(str(data_root / image_rel)), cfg.data.mean, cfg.data.std)
    erf = effective_receptive_field(net, image[None], point)
    erf["hull_to_cue"] = float(np.hypot(*(cue - np.array(point)).T).min()) if cue.size else float("nan")
    return erf


def effective_receptive_field(net, image: np.ndarray, point: Tuple[int, int], mass: float = 0.95) -> Dict[str, float]:
    """How far the input pixels lie that move one output pixel of ``net`` (eval mode).

    The gradient of the summed logits at ``point`` with respect to the
    normalized input ``image`` (1, 3, H, W), in absolute value summed over
    channels, is the effective receptive field (Luo et al., 2016).  Returns the
    radii (pixels, Euclidean from ``point``) holding 50% and ``mass`` of it.
    """
    import mindspore as ms

    net.set_train(False)
    y, x = point

    def at_point(inp):
        return net(inp)[0, :, y, x].sum()

    grad = np.abs(ms.grad(at_point)(ms.Tensor(image.astype(np.float32))).asnumpy()[0]).sum(axis=0)
    yy, xx = np.mgrid[0:grad.shape[0], 0:grad.shape[1]]
    dist = np.hypot(yy - y, xx - x).reshape(-1)
    order = np.argsort(dist)
    share = np.cumsum(grad.reshape(-1)[order]) / max(float(grad.sum()), 1e-30)
    return {"r50": float(dist[order][np.searchsorted(share, 0.5)]),
            f"r{int(round(mass * 100))}": float(dist[order][min(np.searchsorted(share, mass), dist.size - 1)])}


def markdown_table(results: Dict) -> str:
    """Every run, then the mean per variant."""
    lines = ["| model | seed | mIoU | boat IoU | car IoU | boat pixels called car | car pixels called boat | steps |",
             "|---|---|---|---|---|---|---|---|"]
    label = {True: "PSPNet (PPM)", False: "same network without PPM"}
    for r in results["runs"]:
        lines.append(f"| {label[r['use_ppm']]} | {r['seed']} | {r['mIoU']:.4f} | {r['boat_iou'] or 0:.4f} | "
                     f"{r['car_iou'] or 0:.4f} | {r['boat_as_car']:.1%} | {r['car_as_boat']:.1%} | {r['steps']} |")
    for m in results["mean"].values():
        lines.append(f"| **{label[m['use_ppm']]}, mean of {m['seeds']}** | | {m['mIoU']:.4f} | {m['boat_iou']:.4f} | "
                     f"{m['car_iou']:.4f} | {m['boat_as_car']:.1%} | {m['car_as_boat']:.1%} | |")
    gain = results.get("ambiguous_gain") or {}
    if gain.get("per_seed"):
        lines += ["", "PSPNet's lead on the ambiguous classes (mean of boat and car IoU), in points: " +
                  ", ".join(f"seed {k} {v:+.1f}" for k, v in gain["per_seed"].items()) +
                  f"; mean {gain['mean']:+.1f}."]
    erf = [r["erf"] for r in results["runs"] if r.get("erf")]
    if erf:
        lines += ["", "Effective receptive field of the network without PPM at a hull (radius holding 50% / 95% of "
                  "the input gradient) vs the hull's distance to the nearest water/road pixel: " +
                  "; ".join(f"{e['r50']:.0f} / {e['r95']:.0f} px vs {e['hull_to_cue']:.0f} px" for e in erf) + "."]
    return "\n".join(lines) + "\n"


def picture(out: Path, data_root: Path, examples: int, train_seed: int = 0) -> Optional[Path]:
    """``predictions.png``: rows of image | ground truth | PSPNet | no PPM for the first val images."""
    names = [Path(line.split()[0]).stem for line in (data_root / "val.txt").read_text().splitlines() if line.strip()]
    names = names[:examples]
    if not names:
        return None
    palette = voc_palette()
    titles = ("image", "ground truth", "PSPNet", "no PPM")
    gts = [np.array(Image.open(data_root / "SegmentationClassAug" / f"{name}.png")) for name in names]
    aspect = gts[0].shape[0] / gts[0].shape[1]  # rows as tall as the panels (wide context_far images)
    fig = new_figure(2.6 * len(titles), (2.6 * aspect + 0.35) * len(names) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(names), len(titles)))
    for name, gt, row in zip(names, gts, axes):
        cells = [np.array(Image.open(data_root / "JPEGImages" / f"{name}.jpg").convert("RGB")), colorize(gt, palette)]
        for variant, _ in VARIANTS:
            gray = out / f"{variant}_seed{train_seed}" / "eval" / "gray" / f"{name}.png"
            cells.append(colorize(np.array(Image.open(gray)), palette))
        for ax, cell, title in zip(row, cells, titles):
            ax.imshow(cell)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{title} ({name})" if title == "image" else title, fontsize="small")
    fig.suptitle("boat (on water) vs car (on road): predictions of both variants")
    path = out / "predictions.png"
    write_bytes(path, figure_bytes(fig, path))
    return path


def comparison_title(results: Dict[str, Dict]) -> str:
    """The comparison chart's title: how many training seeds each bar averages."""
    seeds = max((int(r.get("seeds", 1)) for r in results.values()), default=1)
    return "what global context adds (same data and budget; " + ("one seed)" if seeds == 1 else
                                                                 f"mean of {seeds} seeds)")


def comparison_plot(results: Dict[str, Dict], path: Path) -> Dict[str, list]:
    """``comparison.png``: IoUs and the boat/car confusion of both variants side by side; returns the bars."""
    metrics = (("mIoU", "mIoU"), ("boat_iou", "boat IoU"), ("car_iou", "car IoU"),
               ("boat_as_car", "boat pixels\ncalled car"), ("car_as_boat", "car pixels\ncalled boat"))
    fig = new_figure(9, 4)
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
    label_axes(ax, "", "IoU / fraction of the class's pixels (0-1)", comparison_title(results), "y", "upper right")
    write_bytes(path, figure_bytes(fig, path))
    return bars
