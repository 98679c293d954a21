"""One way to make a matplotlib figure: the Agg canvas, no display and no global backend change."""
from __future__ import annotations

import io
import os
from pathlib import Path


def new_figure(width: float, height: float, dpi: int = 100):
    """A matplotlib Figure of ``width`` x ``height`` inches with a constrained layout, drawable off-screen."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def label_axes(ax, xlabel: str, ylabel: str, title: str, grid_axis: str = "both",
               legend_loc: str = "best") -> None:
    """The labels, a light grid and a small legend every chart of the project carries."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, axis=grid_axis, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=legend_loc, fontsize="small")


def figure_bytes(fig, path: str | os.PathLike) -> bytes:
    """``fig`` rendered in the format of ``path``'s extension, as the bytes the output owner places."""
    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png")
    return buf.getvalue()
