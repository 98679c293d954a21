"""Hostile images: sizes that lie, formats no size check knows, thin strips and phone JPEGs.

Every size attack is refused from the header, before any decoder allocates the
image: checked in a child process whose peak memory is measured.
"""
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from src.data.dataset import DataError, SegDataset, Sample, read_image, read_label
from src.data.labels import dataset_spec
from src.data.transforms import rand_scale
from src.evaluation.protocol import Protocol, segment

ROOT = Path(__file__).resolve().parents[2]


def _png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bomb_png(path, side=20000):
    """A valid grayscale PNG of side x side zeros: a few hundred KB that decode to side**2 bytes (x3 in color)."""
    comp = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte + pixels
    idat = bytearray()
    for _ in range(side // 1000):
        idat += comp.compress(row * 1000)
    idat += comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", bytes(idat))
                     + _png_chunk(b"IEND", b""))
    return path


def _in_child(call, path):
    """Run ``call`` (read_image / read_label) on ``path`` in a new process; (error text, peak RSS in MB)."""
    code = f"""
import json, sys
from src.data.dataset import DataError, read_image, read_label
from src.data.labels import dataset_spec
error = ""
try:
    {call}({str(path)!r}{", dataset_spec('synthetic', 6)" if call == "read_label" else ""})
except DataError as exc:
    error = str(exc)
# VmHWM: this process image's own peak (ru_maxrss would include the parent's size at fork)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({{"error": error, "peak_mb": peak_kb / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["error"], got["peak_mb"]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return _bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.mark.parametrize("call", ["read_image", "read_label"])
def test_png_of_400_megapixels_is_refused_from_its_header(bomb, call):
    assert bomb.stat().st_size < 2**20
    error, peak_mb = _in_child(call, bomb)
    assert str(bomb) in error and ("20000x20000" in error or "too many pixels" in error), error
    assert peak_mb < 600, f"{peak_mb:.0f} MB used: the image was decoded"  # decoding needs 400-1200 MB


def test_bomb_is_a_named_skip_in_skip_mode(bomb, tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((8, 8, 3), 50, np.uint8))
    label = tmp_path / "good_label.png"
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(label)
    samples = [Sample(str(bomb), str(label), "list.txt", 1), Sample(str(good), str(label), "list.txt", 2)]
    ds = SegDataset(samples, dataset_spec("synthetic", 6), 6, on_bad_sample="skip")
    image, _ = ds[0]
    assert image.shape == (8, 8, 3) and ds.bad_count == 1


@pytest.mark.parametrize("fmt,offsets", [("BMP", (18, 22)), ("TIFF", None)])
def test_other_formats_whose_header_lies_are_refused_before_decoding(tmp_path, fmt, offsets):
    path = tmp_path / f"liar.{fmt.lower()}"
    if offsets:  # BMP: patch width/height in the info header
        Image.new("RGB", (4, 4)).save(path, format=fmt)
        raw = bytearray(path.read_bytes())
        struct.pack_into("<ii", raw, offsets[0], 30000, 30000)
        path.write_bytes(bytes(raw))
    else:  # TIFF: ImageWidth / ImageLength tags of 30000
        Image.new("L", (4, 4)).save(path, format=fmt, compression="raw")
        raw = bytearray(path.read_bytes())
        ifd = struct.unpack_from("<I", raw, 4)[0]
        for i in range(struct.unpack_from("<H", raw, ifd)[0]):
            tag, typ = struct.unpack_from("<HH", raw, ifd + 2 + 12 * i)
            if tag in (256, 257):
                fmt_code = "<H" if typ == 3 else "<I"
                struct.pack_into(fmt_code, raw, ifd + 2 + 12 * i + 8, 30000)
        path.write_bytes(bytes(raw))
    error, peak_mb = _in_child("read_image", path)
    assert str(path) in error and ("30000x30000" in error or "too many pixels" in error), error
    assert peak_mb < 600


def test_format_only_opencv_knows_is_refused_unread(tmp_path):
    path = tmp_path / "huge.pfm"  # OpenCV would allocate 20000 x 20000 x 3 floats (4.8 GB) for this header
    path.write_bytes(b"PF\n20000 20000\n-1.0\n" + bytes(64))
    error, peak_mb = _in_child("read_image", path)
    assert str(path) in error, error
    assert peak_mb < 600


def test_special_file_is_refused_without_blocking(tmp_path):
    import os
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        read_image(str(fifo))
    with pytest.raises(DataError, match="not a regular file"):
        read_label(str(fifo), dataset_spec("synthetic", 6))


def test_thin_strips_are_evaluated_and_augmented(tmp_path):
    strip = np.random.default_rng(0).uniform(0, 255, (1, 20000, 3)).astype(np.float32)
    p = Protocol(classes=3, crop_h=17, crop_w=17, base_size=32, scales=(1.0,), flip=False, stride_rate=2 / 3,
                 batch_size=4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))

    def predict(batch):
        return np.ones((batch.shape[0], 3, batch.shape[2], batch.shape[3]), np.float32)

    assert segment(strip, predict, p).shape == (1, 20000)
    assert segment(strip.transpose(1, 0, 2).copy(), predict, p).shape == (20000, 1)
    image, label = rand_scale(strip[:, :50], np.zeros((1, 50), np.uint8), np.random.default_rng(1), 0.5, 0.5)
    assert image.shape[:2] == label.shape == (1, 25)


def _jpeg_bytes(h=40, w=56):
    ok, buf = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))
    return buf.tobytes()


def test_motion_photo_jpeg_with_a_video_after_its_end_is_read(tmp_path):
    path = tmp_path / "motion.jpg"
    path.write_bytes(_jpeg_bytes() + b"\x00\x00\x00\x18ftypmp42" + np.random.default_rng(1).bytes(2**20))
    assert read_image(str(path)).shape == (40, 56, 3)


def test_truncated_jpeg_with_a_complete_thumbnail_is_still_truncated(tmp_path):
    main, thumb = _jpeg_bytes(), _jpeg_bytes(8, 8)
    app1 = b"\xff\xe1" + struct.pack(">H", len(thumb) + 8) + b"Exif\x00\x00" + thumb  # thumbnail ends in FFD9
    whole = main[:2] + app1 + main[2:]
    path = tmp_path / "thumb.jpg"
    path.write_bytes(whole)
    assert read_image(str(path)).shape == (40, 56, 3)
    path.write_bytes(whole[: len(whole) - len(main) // 2])
    with pytest.raises(DataError, match="truncated JPEG"):
        read_image(str(path))


def test_a_jpeg_repeating_one_scan_is_refused_before_decoding(tmp_path):
    """A progressive JPEG whose scans repeat (2 MB, 95 s to decode at 20,000 scans): counted, not decoded."""
    import time

    import cv2

    from src.data.dataset import DataError, jpeg_scans, read_image

    ok, enc = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    data = enc.tobytes()
    first = data.find(b"\xff\xda")
    assert ok and 1 < jpeg_scans(data) <= 12  # a normal progressive JPEG
    nxt = data.find(b"\xff\xc4", first)  # the next segment after the first scan (a DHT or the next SOS)
    nxt = data.find(b"\xff\xda", first + 2) if nxt < 0 else min(nxt, data.find(b"\xff\xda", first + 2))
    scan = data[first:nxt]
    hostile = data[:nxt] + scan * 5000 + data[nxt:]
    (tmp_path / "scans.jpg").write_bytes(hostile)
    start = time.monotonic()
    with pytest.raises(DataError, match=r"scans.jpg is a JPEG of \d+ scans"):
        read_image(str(tmp_path / "scans.jpg"))
    assert time.monotonic() - start < 2
    (tmp_path / "normal.jpg").write_bytes(data)
    assert read_image(str(tmp_path / "normal.jpg")).shape == (64, 64, 3)


def test_an_image_whose_probability_maps_exceed_the_budget_is_refused_before_work():
    """A 16 KB all-black 4096x4096 PNG with 21 classes made predict peak at 3.4 GB: refused from its size."""
    import dataclasses
    import time

    from src.evaluation.protocol import Protocol, WorkingSetError, segment, working_set_bytes

    calls = []
    p = Protocol(classes=21, crop_h=33, crop_w=33, base_size=48, batch_size=2)
    image = np.zeros((4096, 4096, 3), np.float32)
    start = time.monotonic()
    with pytest.raises(WorkingSetError, match=r"photo.png \(4096x4096\) needs about [\d.]+ GB .*eval.max_image_gb 2"):
        segment(image, calls.append, p, "image photo.png")
    assert not calls and time.monotonic() - start < 1  # nothing predicted, nothing allocated
    assert working_set_bytes(375, 500, p) < 50e6  # a VOC image is far below it
    roomy = dataclasses.replace(p, max_image_gb=8.0)
    assert working_set_bytes(4096, 4096, roomy) < 8e9


def test_a_training_sample_too_large_to_augment_is_a_named_bad_sample(tmp_path):
    """Scale 2.0 of a large image is pixels x 4 x float32 copies: refused by the train.max_image_gb budget."""
    from helpers import make_shapes, tiny_config
    from src.data.dataset import DataError
    from src.data.pipeline import make_dataset
    from src.data.transforms import train_transform_from_config

    root = make_shapes(tmp_path / "d", num=3, size=128)  # 128x96: ~1.8 MB to augment at scale 2
    cfg = tiny_config(root, tmp_path / "run", train={"scale_max": 2.0, "max_image_gb": 0.001})
    ds = make_dataset(cfg.data, cfg.data.train_list, train_transform_from_config(cfg.data, cfg.train), 0)
    with pytest.raises(DataError, match=r"needs about 0\.0 GB to augment \(scale up to 2\); the budget is "
                                        r"train.max_image_gb 0.001"):
        ds[0]
    roomy = tiny_config(root, tmp_path / "run", train={"scale_max": 2.0})
    ok = make_dataset(roomy.data, roomy.data.train_list, train_transform_from_config(roomy.data, roomy.train), 0)
    image, label = ok[0]
    assert image.shape[0] == 3 and label.shape == image.shape[1:]
