"""Small builders shared by the tests."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

from src.config import Config, config_from_dict
from src.data.synthetic import generate


TINY = 16  # the tests' model.width_divisor: 1/16 of every channel count (test-only setting)
TINY_DEPTH = 14  # the tests' model.layers: one bottleneck per stage (test-only setting)


def tiny_config(root: Path, save_dir: Path, train: Dict = None, data: Dict = None, model: Dict = None,
                eval_: Dict = None) -> Config:
    """A tiny PSPNet config (one bottleneck per stage, every channel count / 16) on a synthetic 'shapes' set with
    small crops and no augmentation: the real network's code paths and name patterns at a fraction of its time."""
    t = {"epochs": 2, "batch_size": 2, "crop_h": 33, "crop_w": 41, "scale_min": 1.0, "scale_max": 1.0,
         "rotate_prob": 0.0, "blur_prob": 0.0, "flip_prob": 0.0, "base_lr": 0.01, "save_dir": str(save_dir),
         "log_every": 1, "eval_interval": 0, "seed": 3}
    d = {"dataset": "synthetic", "data_root": str(root), "classes": 6, "train_list": "train.txt",
         "val_list": "val.txt", "workers": 1}
    e = {"base_size": 48, "test_h": 33, "test_w": 33, "batch_size": 2}
    return config_from_dict({"train": {**t, **(train or {})}, "data": {**d, **(data or {})},
                             "model": {"dropout": 0.0, "width_divisor": TINY, "layers": TINY_DEPTH, **(model or {})}, "eval": {**e, **(eval_ or {})}}, "test")


def make_shapes(root: Path, num: int = 6, size: int = 48, seed: int = 0) -> Path:
    generate(root, "shapes", num=num, size=size, seed=seed)
    return root


# Tests that train a step or two only to have weights: which classes a handful of images holds does not matter
# there, so training's refusal of classes without a pixel is waived for every class of the 'shapes' set.
ANY_CLASS_MAY_BE_ABSENT = {"allow_absent_classes": [f"class_{i}" for i in range(6)]}


def make_two_classes(root: Path, num: int = 6, size: int = 48, seed: int = 0) -> Path:
    """A 'shapes' set relabelled as background (0) and object (1), the ignored outlines kept."""
    import numpy as np
    from PIL import Image

    make_shapes(root, num, size, seed)
    for png in sorted((root / "SegmentationClassAug").glob("*.png")):
        label = np.asarray(Image.open(png))
        Image.fromarray(np.where((label > 0) & (label != 255), 1, label).astype(np.uint8)).save(png)
    return root


def save_config(cfg: Config, path: Path) -> Path:
    """Write ``cfg`` as a YAML file a command can be given (the resolved form train.py writes)."""
    from src.config import config_yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_yaml(cfg))
    return path


def full_disk_at(monkeypatch, *names: str) -> None:
    """Every write of a file named one of ``names`` fails as on a full disk (ENOSPC), through the output owner's
    own temporary-file path: the real failure, without a real full disk."""
    import errno
    from contextlib import contextmanager

    from src.outputs import atomic, folder, writers

    real = atomic.atomic_path

    @contextmanager
    def failing(path, suffix=atomic.PART):
        with real(path, suffix) as tmp:
            yield tmp
            if Path(path).name in names:
                raise OSError(errno.ENOSPC, "No space left on device")

    for module in (atomic, writers):  # the modules that look it up
        monkeypatch.setattr(module, "atomic_path", failing)
    real_staged = folder.OutputFolder._staged

    @contextmanager
    def failing_staged(self, name, *args, **kwargs):  # an output folder's own temporary file, before it is placed
        with real_staged(self, name, *args, **kwargs) as tmp:
            yield tmp
            if Path(name).name in names:
                raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(folder.OutputFolder, "_staged", failing_staged)


def gray_masks(results_dir) -> dict:
    """The gray prediction masks an evaluation wrote: {file name: array}."""
    import numpy as np
    from PIL import Image

    return {p.name: np.array(Image.open(p)) for p in sorted(Path(results_dir, "gray").glob("*.png"))}
