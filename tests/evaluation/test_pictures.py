"""src.evaluation.pictures: the overlay blend, one distinct picture name per input image, and the gray / color /
overlay pictures written for a prediction."""
import cv2
import numpy as np
import pytest
from PIL import Image

from src.data.labels import voc_palette
from src.evaluation.pictures import output_names, save_prediction


def test_overlay_blends_classes_and_keeps_background():
    from src.evaluation.pictures import overlay

    img = np.full((2, 2, 3), 100, np.uint8)
    color = np.zeros((2, 2, 3), np.uint8)
    color[0, 0] = (200, 0, 0)
    out = overlay(img, color)
    assert out[1, 1].tolist() == [100, 100, 100]
    assert out[0, 0].tolist() == [150, 50, 50]


def test_output_names_are_one_distinct_name_per_input():
    assert output_names(["a/x.jpg", "b/y.png", "z.jpg"]) == ["x", "y", "z"]  # unique stems are kept as they are
    assert output_names(["a/x.jpg", "a/x.png", "y.jpg"]) == ["x_jpg", "x_png", "y"]  # stems collide: add the type
    assert output_names(["a/x.jpg", "b/x.jpg"]) == ["x_jpg_1", "x_jpg_2"]  # the same name twice: count
    many = output_names([f"{d}/{n}" for d in "abc" for n in ("x.jpg", "x.png", "x_jpg.jpg", "x_jpg_1.jpg")])
    assert len(many) == 12 and len(set(many)) == 12


def test_save_prediction_writes_gray_palette_and_overlay_pictures_once_per_name(tmp_path):
    from src.outputs.errors import OutputExistsError
    from src.outputs.folder import OutputFolder

    pred = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = np.full((2, 3, 3), 200, np.uint8)
    palette = voc_palette()
    with OutputFolder(tmp_path, "results folder", "eval", overwrite=True, lock=False) as folder:
        save_prediction(pred, image, "p", folder, palette)
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "gray" / "p.png"), cv2.IMREAD_UNCHANGED), pred)
        with Image.open(tmp_path / "color" / "p.png") as color:
            assert color.mode == "P"
            np.testing.assert_array_equal(np.array(color), pred)
            assert np.reshape(color.getpalette()[:9], (3, 3)).tolist() == palette[:3].tolist()
        assert cv2.imread(str(tmp_path / "overlay" / "p.jpg")).shape == (2, 3, 3)
        with pytest.raises(OutputExistsError, match="two outputs named"):  # a second image named p would replace it
            save_prediction(pred, image, "p", folder, palette)
