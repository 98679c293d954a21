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
    assert pic is not None and pic.shape == (24 + 1 * (36 + 4), 4 * (48 + 4), 3)  # header + one val image
