"""Run records: a JSONL metrics file and a PNG plot of the loss, lr and validation curves (matplotlib)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List

from src.plotting import label_axes


class MetricsLog:
    """Appends one JSON object per line to ``path``; ``read()`` returns them."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: Dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_after(self, step: int) -> int:
        """Drop records of steps after ``step`` (written by a run that is now resumed from ``step``).

        Returns how many were dropped.  The file is rewritten atomically.
        """
        records = self.read()
        kept = [r for r in records if int(r.get("step", 0)) <= step]
        if len(kept) != len(records):
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
            os.replace(tmp, self.path)
        return len(records) - len(kept)

    def read(self) -> List[Dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(records: List[Dict], path: str | os.PathLike) -> Dict[str, Dict]:
    """Write a PNG of the run so far: losses and learning rates per step, validation scores per epoch.

    Drawn with matplotlib's Agg canvas (no display, no global backend
    change).  Returns, per panel, its title, axis labels and each series'
    label and number of points, so callers and tests can check the content.
    """
    from matplotlib.ticker import MaxNLocator

    from src.plotting import new_figure

    steps = [r for r in records if r.get("kind") == "step"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig = new_figure(15, 4.2)
    ax_loss, ax_lr, ax_eval = fig.subplots(1, 3)
    x = [r["step"] for r in steps]
    for key, label in (("loss", "total"), ("main", "main"), ("aux", "aux")):
        if steps and key in steps[0]:
            ax_loss.plot(x, [r[key] for r in steps], label=label, linewidth=1.5 if key == "loss" else 1.0)
    _label(ax_loss, "training loss (logged steps)", "global step", "cross-entropy")
    for key, label in (("lr", "backbone lr"), ("head_lr", "head lr (ppm/cls/aux)")):
        if steps and key in steps[0]:
            ax_lr.plot(x, [r[key] for r in steps], label=label)
    if steps and min(min(r.get("lr", 1.0), r.get("head_lr", 1.0)) for r in steps) > 0:
        ax_lr.set_yscale("log")
    _label(ax_lr, "learning rate (poly schedule)", "global step", "learning rate")
    epochs = [r["epoch"] for r in evals]
    for key, label in (("miou", "mIoU"), ("macc", "mAcc"), ("allacc", "allAcc")):
        if evals:
            ax_eval.plot(epochs, [r[key] for r in evals], marker="o", label=label)
    ax_eval.set_ylim(0.0, 1.0)
    for ax in (ax_loss, ax_lr, ax_eval):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _label(ax_eval, "validation (whole val set)", "epoch", "score (0-1)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return {ax.get_title(): {"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                             "series": {ln.get_label(): len(ln.get_xdata()) for ln in ax.get_lines()}}
            for ax in (ax_loss, ax_lr, ax_eval)}


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    label_axes(ax, xlabel, ylabel, title)
    if not ax.get_lines():
        ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center", color="gray")
