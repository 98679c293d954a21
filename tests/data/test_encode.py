"""data.encode: the in-memory encoders the output owner writes (an image by its file's extension, class indices
as a palette PNG or a grayscale index PNG), checked by decoding their bytes again."""
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from src.data.encode import encode_image, index_png, palette_png
from src.data.labels import voc_palette


def test_encode_image_picks_the_format_by_extension_and_png_round_trips_exactly():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    png = encode_image("out/pic.png", image)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), image)
    jpg = encode_image("out/pic.JPG", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert jpg[:2] == b"\xff\xd8" and cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR).shape == (5, 7, 3)


def test_an_encoder_that_reports_failure_is_an_oserror_naming_the_file(monkeypatch):
    monkeypatch.setattr(cv2, "imencode", lambda ext, image, params: (False, None))
    with pytest.raises(OSError, match="OpenCV cannot encode it") as info:
        encode_image("out/pic.png", np.zeros((2, 2, 3), np.uint8))
    assert info.value.filename == "out/pic.png"



@pytest.mark.parametrize("name, image", [("out/pic.nope", np.zeros((2, 2, 3), np.uint8)),  # no such encoder
                                         ("out/pic.png", np.zeros((0, 0, 3), np.uint8)),  # nothing to encode
                                         ("out/pic.jpg", np.zeros((2, 2, 5), np.uint8))])  # 5 channels
def test_opencvs_own_exceptions_are_the_same_oserror_naming_the_file(name, image):
    with pytest.raises(OSError, match="OpenCV cannot encode it") as info:
        encode_image(name, image)
    assert info.value.filename == name and not isinstance(info.value, cv2.error)

def test_palette_png_keeps_the_indices_and_carries_the_palette():
    label = np.array([[0, 1, 15], [20, 255, 7]], np.int64)  # any integer type: written as uint8 indices
    with Image.open(io.BytesIO(palette_png(label, voc_palette()))) as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), label)
        palette = np.array(im.getpalette()[:3 * 256]).reshape(-1, 3)
    np.testing.assert_array_equal(palette[[0, 1, 15, 20]], voc_palette()[[0, 1, 15, 20]])


def test_index_png_is_a_grayscale_png_of_the_indices():
    index = np.array([[0, 3], [149, 255]], np.int32)
    with Image.open(io.BytesIO(index_png(index))) as im:
        assert im.format == "PNG" and im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), index)
