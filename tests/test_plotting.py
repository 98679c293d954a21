"""src.plotting: the one way the project makes a matplotlib figure (new_figure: an off-screen Agg canvas, no
global backend change), the labels, grid and legend every chart carries (label_axes), and a figure rendered as the
bytes of its file's format (figure_bytes)."""
import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg

from src.plotting import figure_bytes, label_axes, new_figure


def test_new_figure_is_off_screen_at_the_asked_size_and_leaves_the_backend_alone():
    backend = matplotlib.get_backend()
    fig = new_figure(3.0, 2.0, dpi=50)
    assert tuple(fig.get_size_inches()) == (3.0, 2.0) and fig.dpi == 50
    assert isinstance(fig.canvas, FigureCanvasAgg)
    assert type(fig.get_layout_engine()).__name__ == "ConstrainedLayoutEngine"
    assert matplotlib.get_backend() == backend
    fig.canvas.draw()
    assert fig.canvas.buffer_rgba().shape == (100, 150, 4)  # height x width in pixels: inches * dpi


def test_label_axes_sets_labels_title_and_grid_and_a_legend_only_for_labelled_lines():
    fig = new_figure(3, 2)
    bare, labelled = fig.subplots(1, 2)
    bare.plot([0, 1], [1, 0])
    label_axes(bare, "epoch", "loss", "training loss", grid_axis="y")
    assert (bare.get_xlabel(), bare.get_ylabel(), bare.get_title()) == ("epoch", "loss", "training loss")
    assert bare.get_legend() is None
    assert any(line.get_visible() for line in bare.yaxis.get_gridlines())
    assert not any(line.get_visible() for line in bare.xaxis.get_gridlines())
    labelled.plot([0, 1], [0, 1], label="mIoU")
    label_axes(labelled, "epoch", "score", "validation", legend_loc="lower right")
    assert [t.get_text() for t in labelled.get_legend().get_texts()] == ["mIoU"]


def test_figure_bytes_follow_the_paths_extension():
    fig = new_figure(1, 1, dpi=20)
    fig.subplots().plot([0, 1], [0, 1])
    assert figure_bytes(fig, "out/curves.png").startswith(b"\x89PNG\r\n\x1a\n")
    assert figure_bytes(fig, "curves.pdf").startswith(b"%PDF")
    assert b"<svg" in figure_bytes(fig, "curves.svg")[:1000]
    assert figure_bytes(fig, "no_extension").startswith(b"\x89PNG")  # png when the name says nothing
