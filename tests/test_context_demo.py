import json

import cv2
import numpy as np

from src.config import load_config
from src.context_demo import boat_car_confusion, run_context_demo


def test_boat_car_confusion_from_matrix():
    m = np.zeros((5, 5), int)
    m[3, 3], m[3, 4] = 6, 2  # 8 boat pixels, 2 called car
    m[4, 4], m[4, 3], m[4, 0] = 3, 1, 1
    c = boat_car_confusion(m)
    assert c["boat_as_car"] == 2 / 8 and c["car_as_boat"] == 1 / 5


def test_context_demo_small_end_to_end(tmp_path):
    cfg = load_config("config/demo_context.yaml")
    small = ["train.epochs", "1", "train.max_steps", "1", "train.batch_size", "2", "train.crop_h", "33",
             "train.crop_w", "41", "eval.base_size", "48", "eval.test_h", "33", "eval.test_w", "41"]
    results = run_context_demo(cfg, str(tmp_path), num=6, size=48, seed=2, overrides=small, examples=2)
    assert set(results) == {"pspnet", "fcn_baseline"}
    assert results["pspnet"]["use_ppm"] and not results["fcn_baseline"]["use_ppm"]
    for r in results.values():
        assert 0 <= r["mIoU"] <= 1 and 0 <= r["boat_as_car"] <= 1 and r["steps"] == 1
    assert json.loads((tmp_path / "results.json").read_text()) == results
    table = (tmp_path / "results.md").read_text().splitlines()
    assert len(table) == 4 and "without PPM" in table[3]
    pic = cv2.imread(str(tmp_path / "predictions.png"))
    assert pic is not None and pic.shape[1] == 4 * 260  # 4 panels of 2.6 in at 100 dpi
    assert (tmp_path / "comparison.png").stat().st_size > 1000


def test_comparison_plot_shows_both_variants_and_every_metric(tmp_path):
    from src.context_demo import comparison_plot

    results = {"pspnet": {"use_ppm": True, "mIoU": 0.8, "boat_iou": 0.7, "car_iou": 0.75, "boat_as_car": 0.05,
                          "car_as_boat": 0.1},
               "fcn_baseline": {"use_ppm": False, "mIoU": 0.6, "boat_iou": 0.4, "car_iou": None,
                                "boat_as_car": 0.4, "car_as_boat": 0.3}}
    bars = comparison_plot(results, tmp_path / "c.png")
    assert bars == {"PSPNet (PPM)": [0.8, 0.7, 0.75, 0.05, 0.1],
                    "same network without PPM": [0.6, 0.4, 0.0, 0.4, 0.3]}
    image = cv2.imread(str(tmp_path / "c.png"))
    assert image.shape == (400, 900, 3)
