import json

import cv2
import numpy as np
import pytest

from helpers import TINY, TINY_DEPTH
from src.config import load_config
from src.tools.context_demo import boat_car_confusion, run_context_demo

pytestmark = pytest.mark.slow  # trains two variants end to end


def test_boat_car_confusion_from_matrix():
    m = np.zeros((5, 5), int)
    m[3, 3], m[3, 4] = 6, 2  # 8 boat pixels, 2 called car
    m[4, 4], m[4, 3], m[4, 0] = 3, 1, 1
    c = boat_car_confusion(m)
    assert c["boat_as_car"] == 2 / 8 and c["car_as_boat"] == 1 / 5


def test_context_demo_small_end_to_end(tmp_path):
    cfg = load_config("config/demo_context.yaml")
    small = ["train.epochs", "1", "train.max_steps", "1", "train.batch_size", "2", "train.crop_h", "33",
             "train.crop_w", "41", "eval.base_size", "48", "eval.test_h", "33", "eval.test_w", "41",
             "model.width_divisor", str(TINY), "model.layers", str(TINY_DEPTH)]
    results = run_context_demo(cfg, str(tmp_path), num=6, size=48, seed=2, overrides=small, examples=2,
                               task="context_far", train_seeds=(0, 1))
    runs = results["runs"]
    assert [(r["variant"], r["seed"]) for r in runs] == [("pspnet", 0), ("fcn_baseline", 0), ("pspnet", 1),
                                                         ("fcn_baseline", 1)]
    for r in runs:
        assert 0 <= r["mIoU"] <= 1 and 0 <= r["boat_as_car"] <= 1 and r["steps"] == 1
        assert ("erf" in r) == (not r["use_ppm"])
    for r in (r for r in runs if "erf" in r):
        assert 0 <= r["erf"]["r50"] <= r["erf"]["r95"] and r["erf"]["hull_to_cue"] > 0
    mean = results["mean"]["pspnet"]
    assert mean["seeds"] == 2 and mean["mIoU"] == np.mean([r["mIoU"] for r in runs if r["use_ppm"]])
    assert json.loads((tmp_path / "results.json").read_text()) == results
    table = (tmp_path / "results.md").read_text().splitlines()
    assert len(table) == 2 + 4 + 2 + 2 + 2 and "without PPM, mean of 2" in table[7]
    assert "ambiguous classes" in table[9] and "seed 0" in table[9] and "seed 1" in table[9]
    assert "Effective receptive" in table[11]
    assert set(results["ambiguous_gain"]["per_seed"]) == {"0", "1"}
    pic = cv2.imread(str(tmp_path / "predictions.png"))
    assert pic is not None and pic.shape[1] == 4 * 260  # 4 panels of 2.6 in at 100 dpi
    # one row (the one val image) as tall as its 48x18 panels + a title, not a square row with white bands
    assert abs(pic.shape[0] - 100 * ((2.6 * 18 / 48 + 0.35) * 1 + 0.4)) <= 1
    assert (tmp_path / "comparison.png").stat().st_size > 1000


def test_ambiguous_gain_per_seed_and_mean():
    from src.tools.context_demo import ambiguous_gain

    def run(variant, seed, boat, car):
        return {"variant": variant, "seed": seed, "boat_iou": boat, "car_iou": car}

    runs = [run("pspnet", 0, 0.6, 0.7), run("fcn_baseline", 0, 0.0, 0.3), run("pspnet", 4, 0.5, None),
            run("fcn_baseline", 4, 0.1, 0.2), run("pspnet", 9, 0.9, 0.9)]  # seed 9 has no baseline: left out
    gain = ambiguous_gain(runs)
    assert set(gain["per_seed"]) == {"0", "4"}
    assert np.isclose(gain["per_seed"]["0"], 50.0) and np.isclose(gain["per_seed"]["4"], 10.0)  # None counts 0
    assert np.isclose(gain["mean"], 30.0)
    assert ambiguous_gain([run("pspnet", 0, 0.5, 0.5)]) == {"per_seed": {}, "mean": None}


def test_effective_receptive_field_of_a_known_stack():
    """Two 3x3 convolutions see a 5x5 window: the whole gradient lies within radius 2*sqrt(2)."""
    import mindspore as ms
    from mindspore import nn

    from src.tools.context_demo import effective_receptive_field

    ms.set_seed(0)
    net = nn.SequentialCell([nn.Conv2d(3, 4, 3, pad_mode="same"), nn.Conv2d(4, 2, 3, pad_mode="same")])
    image = np.random.default_rng(0).standard_normal((1, 3, 15, 15)).astype(np.float32)
    erf = effective_receptive_field(net, image, (7, 7))
    assert 0 < erf["r50"] <= erf["r95"] <= np.hypot(2, 2) + 1e-6
    erf_edge = effective_receptive_field(nn.Conv2d(3, 2, 1), image, (0, 0))
    assert erf_edge == {"r50": 0.0, "r95": 0.0}


def test_context_far_puts_the_cue_far_from_every_hull(tmp_path):
    from PIL import Image

    from src.data.synthetic import generate

    info = generate(tmp_path, "context_far", num=12, size=96, seed=3)
    assert (info["height"], info["width"]) == (36, 96)
    for name in sorted((tmp_path / "SegmentationClassAug").glob("*.png")):
        label = np.array(Image.open(name))
        cue, hull = np.argwhere((label == 1) | (label == 2)), np.argwhere(label >= 3)
        assert cue.size and hull.size and set(np.unique(label[label >= 3])) <= {3, 4}
        assert (label == 1).any() == (label == 3).any()  # boats with water, cars with road
        gap = np.abs(cue[:, 1][:, None] - hull[:, 1][None, :]).min()
        assert gap >= 0.4 * 96


def test_comparison_plot_shows_both_variants_and_every_metric(tmp_path):
    from src.tools.context_demo import comparison_plot, comparison_title

    results = {"pspnet": {"use_ppm": True, "mIoU": 0.8, "boat_iou": 0.7, "car_iou": 0.75, "boat_as_car": 0.05,
                          "car_as_boat": 0.1},
               "fcn_baseline": {"use_ppm": False, "mIoU": 0.6, "boat_iou": 0.4, "car_iou": None,
                                "boat_as_car": 0.4, "car_as_boat": 0.3}}
    bars = comparison_plot(results, tmp_path / "c.png")
    assert bars == {"PSPNet (PPM)": [0.8, 0.7, 0.75, 0.05, 0.1],
                    "same network without PPM": [0.6, 0.4, 0.0, 0.4, 0.3]}
    image = cv2.imread(str(tmp_path / "c.png"))
    assert image.shape == (400, 900, 3)
    assert comparison_title(results).endswith("(same data and budget; one seed)")
    results["pspnet"]["seeds"] = results["fcn_baseline"]["seeds"] = 3
    assert comparison_title(results).endswith("(same data and budget; mean of 3 seeds)")
