"""deploy.predict: masks of each image's size with the palette, special files skipped, a full disk."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import full_disk_at
from src.data.dataset import DataError
from src.data.labels import voc_palette
from src.deploy.predict import collect_images, predict_images
from src.evaluation.protocol import protocol_from_config


def test_predict_writes_masks_of_image_size_with_palette(trained, tmp_path):
    cfg, ckpt, tmp = trained
    from src.runtime.backends import make_predict

    protocol = protocol_from_config(cfg.data, cfg.eval)
    predict = make_predict("ms", str(ckpt), cfg.model, 6, protocol.batch_size, (33, 33))
    img = np.random.default_rng(0).integers(0, 255, (70, 25, 3), np.uint8)
    Image.fromarray(img).save(tmp_path / "odd.png")
    paths = collect_images([str(tmp_path)])
    written = predict_images(paths, predict, protocol, tmp_path / "out", voc_palette())
    mask = Image.open(written[0])
    assert mask.size == (25, 70) and mask.mode == "P"
    assert mask.getpalette()[: 3 * 6] == voc_palette()[:6].reshape(-1).tolist()
    with pytest.raises(DataError, match="input not found"):
        collect_images([str(tmp_path / "nope.jpg")])


def test_predict_skips_special_files_and_keeps_every_output_apart(trained, tmp_path):
    import os

    from src.evaluation.pictures import output_names

    cfg, ckpt, _ = trained
    from src.runtime.backends import make_predict

    img = np.random.default_rng(0).integers(0, 255, (40, 30, 3), np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(img).save(tmp_path / "in" / "a.jpg")
    Image.fromarray(img[::-1]).save(tmp_path / "in" / "a.png")
    os.mkfifo(tmp_path / "in" / "pipe.png")  # opening it would wait forever for a writer
    paths = collect_images([str(tmp_path / "in")])
    assert [p.name for p in paths] == ["a.jpg", "a.png"]
    protocol = protocol_from_config(cfg.data, cfg.eval)
    predict = make_predict("ms", str(ckpt), cfg.model, 6, protocol.batch_size, (33, 33))
    written = predict_images(paths, predict, protocol, tmp_path / "out", voc_palette())
    assert [p.name for p in written] == ["a_jpg.png", "a_png.png"] and all(p.is_file() for p in written)
    assert output_names([Path("x/a.jpg"), Path("y/a.jpg"), Path("b.png")]) == ["a_jpg_1", "a_jpg_2", "b"]


def test_full_disk_while_predict_writes_masks(trained, tmp_path, monkeypatch):
    from src.outputs.errors import OutputPathError

    cfg, ckpt, tmp = trained
    images = sorted((tmp / "data" / "JPEGImages").glob("*.jpg"))[:2]
    out = tmp_path / "pred"
    full_disk_at(monkeypatch, f"{images[1].stem}.png")
    protocol = protocol_from_config(cfg.data, cfg.eval)
    from src.runtime.backends import make_predict
    predict = make_predict("ms", str(ckpt), cfg.model, cfg.data.classes, protocol.batch_size, (33, 33))
    with pytest.raises(OutputPathError, match=r"No space left on device.*the masks of the 1 images before it are "
                                              r"complete"):
        predict_images(images, predict, protocol, out, voc_palette())
    assert (out / "color" / f"{images[0].stem}.png").stat().st_size > 0
