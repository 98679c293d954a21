"""Data sets made as a user makes them, for the tests of src/data/ (the doctor, `prepare check --fix`,
`prepare folders`, the label contract): photos and masks in two folders (real 0/255 PNGs, real RGB colour
masks), their list files and a config over them. Imported as ``from user_masks import ...`` (pytest puts this
folder on sys.path); not a test file."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import yaml
from PIL import Image


def photos(root: Path, masks, name="masks", suffix=".png"):
    """Images and masks as two folders: ``masks`` is a list of (H, W) or (H, W, 3) uint8 arrays."""
    (root / "photos").mkdir(parents=True, exist_ok=True)
    (root / name).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, m in enumerate(masks):
        cv2.imwrite(str(root / "photos" / f"p{i}.jpg"), (rng.random((*m.shape[:2], 3)) * 255).astype(np.uint8))
        Image.fromarray(m).save(root / name / f"p{i}{suffix}")
    return root / "photos", root / name


def binary_masks(n=6, value=255):
    """``n`` (24, 32) masks of 0 and ``value``: a rectangle shifted one pixel to the right per mask."""
    out = []
    for i in range(n):
        m = np.zeros((24, 32), np.uint8)
        m[5:15, 4 + i:20 + i] = value
        out.append(m)
    return out


def config(tmp_path: Path, root: Path, train="train.txt", val="val.txt", **data) -> Path:
    """A config file over ``root`` (a custom data set of 2 classes unless ``data`` says otherwise), named by its
    content."""
    d = {"dataset": "custom", "data_root": str(root), "train_list": train, "val_list": val, "classes": 2, **data}
    path = tmp_path / f"cfg_{hashlib.md5(json.dumps(d).encode()).hexdigest()[:6]}.yaml"
    path.write_text(yaml.safe_dump({"data": d, "train": {"save_dir": str(tmp_path / "run")}}))
    return path


def digests(folder: Path):
    """Each file of ``folder`` by its sha256: what a fix must leave byte for byte."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def listed(root: Path, n: int, split_at: int, name="masks", suffix=".png"):
    """train.txt with the first ``split_at`` of ``n`` photo/mask pairs, val.txt with the rest (tab-separated)."""
    lines = [f"photos/p{i}.jpg\t{name}/p{i}{suffix}" for i in range(n)]
    (root / "train.txt").write_text("\n".join(lines[:split_at]) + "\n")
    (root / "val.txt").write_text("\n".join(lines[split_at:]) + "\n")
