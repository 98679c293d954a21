"""Run records: a JSONL metrics file and a PNG plot of the loss, lr and validation curves (matplotlib)."""
from __future__ import annotations

import json
import os
from pathlib import Path
import logging
from typing import Dict, List, Optional, Tuple

from src.outputs import OutputFolder, write_figure
from src.plotting import label_axes

logger = logging.getLogger(__name__)


class MetricsLog:
    """One JSON object per line in ``path``; written through the run's output folder, whole lines only.

    A last line cut short by a kill is dropped with a warning when read (and by the next rewrite).
    """

    def __init__(self, path: str | os.PathLike, folder: Optional[OutputFolder] = None) -> None:
        self.path = Path(path)
        self.folder = folder
        self.name = os.path.relpath(self.path, folder.root) if folder is not None else self.path.name

    def write(self, record: Dict) -> None:
        if self.folder is None:
            raise ValueError("MetricsLog opened read-only (no output folder)")
        self.folder.append(self.name, json.dumps(record))

    def truncate_after(self, step: int) -> int:
        """Drop records of steps after ``step`` (written by a run that is now resumed from ``step``).

        Returns how many were dropped.  The file is rewritten atomically.
        """
        records, cut = self._read()
        kept = [r for r in records if int(r.get("step", 0)) <= step]
        if (len(kept) != len(records) or cut) and self.folder is not None:
            self.folder.put_text(self.name, "".join(json.dumps(r) + "\n" for r in kept), kind="log")
        return len(records) - len(kept)

    def read(self) -> List[Dict]:
        return self._read()[0]

    def _read(self) -> Tuple[List[Dict], int]:
        """The records, and how many unreadable lines were skipped (a line cut short by a kill)."""
        if not self.path.is_file():
            return [], 0
        records, bad = [], 0
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(rec, dict):
                records.append(rec)
            else:
                bad += 1
        if bad:
            logger.warning("%s: skipped %d unreadable line(s) (a write cut short by a kill?)", self.path, bad)
        return records, bad


def plot_curves(records: List[Dict], path: str | os.PathLike, folder: Optional[OutputFolder] = None) -> Dict[str, Dict]:
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
    if folder is not None:
        folder.put_figure(os.path.relpath(path, folder.root), fig)
    else:
        write_figure(path, fig)
    return {ax.get_title(): {"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                             "series": {ln.get_label(): len(ln.get_xdata()) for ln in ax.get_lines()}}
            for ax in (ax_loss, ax_lr, ax_eval)}


def _label(ax, title: str, xlabel: str, ylabel: str) -> None:
    label_axes(ax, xlabel, ylabel, title)
    if not ax.get_lines():
        ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center", color="gray")
