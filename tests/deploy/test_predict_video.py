"""predict on videos: an overlay video per input, frame masks on request, ownership and bounds (stand-in network)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from src.data.dataset import DataError
from src.data.labels import colorize, voc_palette
from src.deploy import predict as predict_mod
from src.deploy.predict import check_video, collect_inputs, predict_inputs
from src.evaluation.pictures import overlay
from src.evaluation.protocol import Protocol, segment
from src.outputs.errors import OutputExistsError, WriteFailedError
from src.outputs.folder import OutputFolder

FPS, W, H, N = 7.5, 40, 32, 5
PROTOCOL = Protocol(classes=3, crop_h=17, crop_w=17, base_size=40, scales=(1.0,), flip=False, batch_size=2)


class StandIn:
    """Logits from the pixels: class 1 where red is bright, class 2 where blue is; counts its calls."""

    calls = 0

    def __call__(self, x):
        StandIn.calls += 1
        return np.concatenate([np.full_like(x[:, :1], 0.5), x[:, :1], x[:, 2:3]], axis=1)


def make_video(path: Path, codec: str = "MJPG", frames: int = N) -> Path:
    """A real little video: a gradient with a red square moving right and a blue bar, different in each frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), FPS, (W, H))
    assert writer.isOpened()
    for i in range(frames):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 1] = np.linspace(0, 120, W, dtype=np.uint8)[None, :]
        bgr[6:20, 4 + 5 * i:18 + 5 * i, 2] = 250  # red square
        bgr[24:30, :, 0] = 230  # blue bar
        writer.write(bgr)
    writer.release()
    return path


def decoded(path: Path) -> list:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


def run(inputs, out: Path, overwrite: bool = False, video_frames: bool = False):
    with OutputFolder(out, "--out", "predict", overwrite) as folder:
        return predict_inputs(collect_inputs([str(p) for p in inputs]), StandIn(), PROTOCOL, folder, voc_palette(),
                              video_frames)


def test_overlay_video_has_the_inputs_frames_size_rate_and_the_overlays(tmp_path):
    clip = make_video(tmp_path / "clip.avi")
    written = run([clip], tmp_path / "out")
    video = tmp_path / "out" / "clip_overlay.avi"
    assert written == [video] and video.is_file()
    cap = cv2.VideoCapture(str(video))
    assert (cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT),
            cap.get(cv2.CAP_PROP_FPS)) == (N, W, H, FPS)
    cap.release()
    got, src = decoded(video), decoded(clip)
    assert len(got) == len(src) == N
    expected = []
    for frame in src:
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        pred = segment(rgb.astype(np.float32), StandIn(), PROTOCOL)
        assert 0.1 < (pred > 0).mean() < 0.9  # the overlay changes part of each frame
        expected.append(cv2.cvtColor(overlay(rgb, colorize(pred, voc_palette())), cv2.COLOR_RGB2BGR))
    for i, frame in enumerate(got):
        errors = [np.abs(frame.astype(int) - e.astype(int)).mean() for e in expected]
        assert errors[i] < 3 and errors[i] == min(errors)  # its own frame's overlay, within MJPG's loss
        assert np.abs(frame.astype(int) - src[i].astype(int)).mean() > 3 * errors[i] + 5  # not the plain frame
    assert not (tmp_path / "out" / "gray").exists() and not (tmp_path / "out" / "color").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if ".part" in p.name]


def test_an_mp4_stays_mp4_and_a_container_opencv_cannot_write_becomes_mjpg_avi(tmp_path, monkeypatch):
    clip = make_video(tmp_path / "clip.mp4", "mp4v")
    assert run([clip], tmp_path / "a") == [tmp_path / "a" / "clip_overlay.mp4"]
    assert len(decoded(tmp_path / "a" / "clip_overlay.mp4")) == N
    monkeypatch.setitem(predict_mod.WRITER_CODECS, ".mp4", "XXXX")  # no such encoder: the writer does not open
    assert run([clip], tmp_path / "b") == [tmp_path / "b" / "clip_overlay.avi"]
    cap = cv2.VideoCapture(str(tmp_path / "b" / "clip_overlay.avi"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == N and cap.get(cv2.CAP_PROP_FPS) == FPS
    assert int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"MJPG"
    cap.release()
    assert sorted(p.name for p in (tmp_path / "b").iterdir() if not p.name.startswith(".")) == ["clip_overlay.avi"]


def test_video_frames_writes_each_frames_masks_beside_images(tmp_path):
    (tmp_path / "in").mkdir()
    clip = make_video(tmp_path / "in" / "clip.avi")
    image = np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "in" / "photo.png"), image)
    found = collect_inputs([str(tmp_path / "in")])
    assert found.images == [tmp_path / "in" / "photo.png"] and [v.path for v in found.videos] == [clip]
    run([tmp_path / "in"], tmp_path / "out", video_frames=True)
    out = tmp_path / "out"
    assert (out / "color" / "photo.png").is_file() and (out / "clip_overlay.avi").is_file()
    names = sorted(p.name for p in (out / "gray").iterdir())
    assert names == ["clip_f000000.png", "clip_f000001.png", "clip_f000002.png", "clip_f000003.png",
                     "clip_f000004.png", "photo.png"]
    assert sorted(p.name for p in (out / "color").iterdir()) == names
    frame = cv2.cvtColor(decoded(clip)[3], cv2.COLOR_BGR2RGB).astype(np.float32)
    gray = cv2.imread(str(out / "gray" / "clip_f000003.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(gray, segment(frame, StandIn(), PROTOCOL))


def test_a_second_run_needs_overwrite_and_a_users_file_is_never_replaced(tmp_path):
    clip = make_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    run([clip], out)
    first = (out / "clip_overlay.avi").read_bytes()
    with pytest.raises(OutputExistsError, match="earlier result.*clip_overlay.avi.*--overwrite"):
        run([clip], out)
    run([clip], out, overwrite=True)
    assert (out / "clip_overlay.avi").stat().st_size > 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "clip_overlay.avi").write_bytes(b"the user's own video")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    StandIn.calls = 0
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="clip_overlay.avi exists and was not written by this program"):
            run([photo, clip], mine, overwrite=overwrite)
    assert StandIn.calls == 0  # refused before any image or frame was segmented
    assert (mine / "clip_overlay.avi").read_bytes() == b"the user's own video"
    assert sorted(p.name for p in mine.iterdir() if not p.name.startswith(".")) == ["clip_overlay.avi"]
    assert len(first) > 0


def test_a_corrupt_video_is_one_data_error_naming_it(tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
    for given in (bad, tmp_path):
        with pytest.raises(DataError) as info:
            collect_inputs([str(given)])
        assert "holiday.mp4" in str(info.value) and "cannot open it as a video" in str(info.value)
        assert "\n" not in str(info.value)
    notes = tmp_path / "notes.xyz"
    notes.write_bytes(b"neither")
    with pytest.raises(DataError, match="notes.xyz: neither an image .* nor a video"):
        collect_inputs([str(notes)])


def test_videos_beyond_the_cap_or_decoding_to_another_size_are_refused(tmp_path, monkeypatch):
    clip = make_video(tmp_path / "clip.avi")
    assert check_video(clip, N * W * H).frames == N
    with pytest.raises(DataError, match=r"clip.avi: the video declares 5 frames of 40x32"):
        check_video(clip, N * W * H - 1)

    real = predict_mod._capture

    class Shrunk:
        def __init__(self, cap):
            self.cap = cap

        def read(self):
            ok, frame = self.cap.read()
            return ok, (frame[:-2] if ok else frame)

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(predict_mod, "_capture", lambda p: Shrunk(real(p)) if Path(p) == clip else real(p))
    with pytest.raises(DataError, match=r"clip.avi: frame 0 decodes to 40x30 but the video declares 40x32"):
        run([clip], tmp_path / "out")
    assert not [p for p in (tmp_path / "out").iterdir() if not p.name.startswith(".pspnet")]  # nothing placed


def test_a_writer_that_stores_fewer_frames_is_a_failed_write(tmp_path, monkeypatch):
    """VideoWriter.write reports nothing (a full disk): the frames stored are counted before the file is placed."""
    clip = make_video(tmp_path / "clip.avi")
    real = cv2.VideoWriter

    class Dropping:
        def __init__(self, *args):
            self.writer, self.n = real(*args), 0

        def write(self, frame):
            self.n += 1
            if self.n < N:
                self.writer.write(frame)

        def __getattr__(self, name):
            return getattr(self.writer, name)

    monkeypatch.setattr(predict_mod.cv2, "VideoWriter", Dropping)
    with pytest.raises(WriteFailedError, match="stored 4 of 5 frames"):
        run([clip], tmp_path / "out")
    assert not (tmp_path / "out" / "clip_overlay.avi").exists()
