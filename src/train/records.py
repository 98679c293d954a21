"""Run records: a JSONL metrics file and a PNG plot of the loss, lr and validation curves (matplotlib)."""
from __future__ import annotations

import json
import os
from pathlib import Path
import logging
from typing import Dict, List, Optional, Tuple

from src.outputs.atomic import write_bytes
from src.outputs.folder import OutputFolder
from src.plotting import figure_bytes, label_axes

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


NO_VALIDATION = ("no validation during training\n(train.eval_interval 0):\nthe scores are in eval.py's report.md\n"
                 "(python eval.py --config C --ckpt M)")


def validation_protocol(mode: str, crop_h: int, crop_w: int) -> str:
    """What the validation inside training measures, for its log line, its metrics.jsonl record and its panel:
    ``fast`` scores one center crop of the training crop's size per image, a quick check whose mIoU is not the
    one eval.py reports (sliding windows over the whole image); ``full`` runs eval.py's protocol (``eval.*``)."""
    if mode == "fast":
        return f"center-crop {crop_h}x{crop_w} (fast check, not eval.py's protocol)"
    return "eval.py's protocol"


def validation_due(train_cfg, epoch: int) -> bool:
    """True when the training run validates after ``epoch`` (every ``train.eval_interval`` epochs, and the last)."""
    return bool(train_cfg.eval_interval) and (epoch % train_cfg.eval_interval == 0 or epoch == train_cfg.epochs)


def validation_of(train_cfg) -> Optional[str]:
    """:func:`validation_protocol` of a ``train`` config section, or None with ``train.eval_interval`` 0."""
    t = train_cfg
    return validation_protocol(t.eval_mode, t.crop_h, t.crop_w) if t.eval_interval else None


def plot_curves(records: List[Dict], path: str | os.PathLike, folder: Optional[OutputFolder] = None,
                validation: Optional[str] = None) -> Dict[str, Dict]:
    """Write a PNG of the run so far: losses and learning rates per step, validation scores per epoch.

    ``validation`` is the in-training validation's protocol (:func:`validation_of`; else the last eval
    record's ``protocol``) for the third panel's title; None with no eval record draws the panel as "no
    validation during training", pointing to eval.py.  Drawn with matplotlib's Agg canvas (no display, no
    global backend change).  Returns, per panel, its title, axis labels, each series' label and number of
    points, and the texts drawn on it (``notes``), so callers and tests can check the content.
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
    validation = validation or next((r["protocol"] for r in reversed(evals) if r.get("protocol")), None)
    if validation is None and not evals:
        _label(ax_eval, "validation during training: none", "epoch", "score (0-1)", NO_VALIDATION)
    else:
        protocol = (validation or "protocol not recorded").replace(" (", "\n(")  # two lines fit the panel
        _label(ax_eval, f"validation during training: {protocol}", "epoch", "score (0-1)")
    if folder is not None:
        folder.put_bytes(os.path.relpath(path, folder.root), figure_bytes(fig, path))
    else:
        write_bytes(path, figure_bytes(fig, path))
    return {ax.get_title(): {"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                             "series": {ln.get_label(): len(ln.get_xdata()) for ln in ax.get_lines()},
                             "notes": [t.get_text() for t in ax.texts]}
            for ax in (ax_loss, ax_lr, ax_eval)}


def _label(ax, title: str, xlabel: str, ylabel: str, empty: str = "no data yet") -> None:
    label_axes(ax, xlabel, ylabel, title)
    if not ax.get_lines():
        ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", color="gray")
