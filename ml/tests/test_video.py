"""Video sniffing, probing and frame sampling, on small videos encoded here with known frames."""

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import image_bytes
from ml.errors import MLError, UnreadableVideoError
from ml.video import (
    VIDEO_FORMATS,
    sample_times,
    silent_audio_write,
    video_frames,
    video_probe,
    video_sniff,
    video_write,
)

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT, FPS, COUNT = 160, 120, 25, 75  # 3 seconds
MAX_PIXELS = 1920 * 1080


def numbered(i: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame i as a solid colour that survives lossy coding: red and green steps of 25 spell its two digits."""
    return np.full((height, width, 3), (10 + 25 * (i % 10), 10 + 25 * (i // 10 % 10), 128), np.uint8)


def number_of(image: Image.Image) -> int:
    red, green, _ = image.getpixel((image.width // 2, image.height // 2))
    return round((red - 10) / 25) + 10 * round((green - 10) / 25)


def halves(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2 :] = (0, 0, 255)
    return pixels


def colour(image: Image.Image, x: int, y: int) -> str:
    r, g, b = image.getpixel((x, y))
    return "red" if r > 200 and b < 60 else "blue" if b > 200 and r < 60 else f"{(r, g, b)}"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """3-second 160×120 25 fps clips whose frame i shows the number i, in each container and codec."""
    folder = tmp_path_factory.mktemp("clips")
    made = {}
    for name, codec in (("clip.mp4", "h264"), ("clip.mov", "h264"), ("mjpeg.mov", "mjpeg"), ("clip.webm", "vp9")):
        video_write(folder / name, (numbered(i) for i in range(COUNT)), fps=FPS, codec=codec)
        made[name] = folder / name
    return made


def damaged(path: Path, target: Path, change) -> Path:
    data = bytearray(path.read_bytes())
    target.write_bytes(bytes(change(data)))
    return target


# --- sniffing ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("clip.mp4", "video/mp4"), ("clip.mov", "video/quicktime"), ("mjpeg.mov", "video/quicktime"),
     ("clip.webm", "video/webm")],
)  # fmt: skip
def test_sniffing_tells_mp4_mov_and_webm_apart_by_content(clips, name, media_type):
    head = clips[name].read_bytes()[:65536]

    assert video_sniff(head) == media_type
    assert media_type in VIDEO_FORMATS


def test_sniffing_ignores_the_file_name(clips, tmp_path):
    renamed = tmp_path / "holiday.webm"
    renamed.write_bytes(clips["clip.mov"].read_bytes())

    assert video_sniff(renamed.read_bytes()[:65536]) == "video/quicktime"


def test_ftyp_brands_decide_between_mp4_mov_and_not_a_video():
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\0\0\0\0" + b"".join(compatible)
        return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\0\0\0\x08free"

    assert video_sniff(ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41")) == "video/mp4"
    assert video_sniff(ftyp(b"mp42", b"mp42", b"isom")) == "video/mp4"
    assert video_sniff(ftyp(b"qt  ", b"qt  ")) == "video/quicktime"
    assert video_sniff(ftyp(b"heic", b"mif1", b"heic")) is None  # a HEIF photo
    assert video_sniff(ftyp(b"M4A ", b"M4A ", b"mp42", b"isom")) is None  # audio only
    assert video_sniff(ftyp(b"abcd", b"wxyz")) is None


def test_matroska_that_is_not_webm_and_other_bytes_are_not_sniffed_as_video(tmp_path):
    video_write(tmp_path / "clip.mkv", (numbered(i) for i in range(5)), codec="h264")
    ebml_matroska = bytes.fromhex("1a45dfa3") + bytes([0x80 | 15]) + bytes.fromhex("4282") + b"\x88matroska" + b"\0" * 4

    assert video_sniff((tmp_path / "clip.mkv").read_bytes()[:65536]) is None
    assert video_sniff(ebml_matroska) is None
    assert video_sniff(image_bytes(64, 48, fmt="PNG")) is None
    assert video_sniff(b"") is None
    assert video_sniff(b"\x1a\x45\xdf\xa3") is None
    assert video_sniff(np.random.default_rng(0).bytes(4096)) is None


# --- probing ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "media_type", "codec"),
    [("clip.mp4", "video/mp4", "h264"), ("mjpeg.mov", "video/quicktime", "mjpeg"), ("clip.webm", "video/webm", "vp9")],
)
def test_probe_reports_size_rate_duration_and_codec(clips, name, media_type, codec):
    info = video_probe(clips[name], max_pixels=MAX_PIXELS)

    assert (info.media_type, info.codec, info.width, info.height, info.rotation) == (media_type, codec, 160, 120, 0)
    assert info.fps == pytest.approx(25)
    assert info.duration_s == pytest.approx(3.0, abs=0.05)
    assert info.frame_count == pytest.approx(COUNT, abs=1)


@pytest.mark.parametrize(
    ("rotate", "size", "top_left", "bottom_right"),
    [
        (90, (120, 160), "red", "blue"),  # turned clockwise: the left half ends on top
        (270, (120, 160), "blue", "red"),  # counter-clockwise: the right half ends on top
        (180, (160, 120), "blue", "red"),
        (0, (160, 120), "red", "blue"),
    ],
)
def test_the_rotation_of_phone_videos_is_honoured(tmp_path, rotate, size, top_left, bottom_right):
    path = tmp_path / "phone.mp4"
    video_write(path, [halves()] * 10, metadata={"rotate": rotate})

    info = video_probe(path, max_pixels=MAX_PIXELS)
    [frame] = video_frames(path, every_s=1.0, max_frames=1)

    assert (info.rotation, (info.width, info.height)) == (rotate, size)
    assert frame.image.size == size
    assert colour(frame.image, 5, 5) == top_left
    assert colour(frame.image, size[0] - 6, size[1] - 6) == bottom_right


def test_a_video_with_more_pixels_than_allowed_is_refused_before_decoding(clips):
    with pytest.raises(
        UnreadableVideoError, match=r"160 × 120 pixels \(0\.0192 megapixels a frame\); videos up to 0\.0192 megapixels"
    ):
        video_probe(clips["clip.mp4"], max_pixels=160 * 120 - 1)
    with pytest.raises(UnreadableVideoError, match="megapixels"):
        next(video_frames(clips["clip.mp4"], every_s=1.0, max_frames=3, max_pixels=1000))


def test_an_audio_only_file_has_no_video(tmp_path):
    path = tmp_path / "sound.mp4"
    silent_audio_write(path)

    with pytest.raises(UnreadableVideoError, match="no video stream"):
        video_probe(path, max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (np.random.default_rng(1).bytes(50_000), "not a video"),
        (b"This is a text file.\n" * 100, "not a video"),
        (image_bytes(64, 48, fmt="PNG"), "not a video"),
        # An MP4 signature followed by noise: sniffed as MP4, then FFmpeg cannot read it.
        (b"\0\0\0\x18ftypisom\0\0\0\0isomavc1" + np.random.default_rng(2).bytes(50_000), "damaged"),
    ],
)
def test_files_that_are_not_videos_are_refused_with_a_reason(tmp_path, data, message):
    path = tmp_path / "upload.mp4"
    path.write_bytes(data)

    with pytest.raises(UnreadableVideoError, match=message) as error:
        video_probe(path, max_pixels=MAX_PIXELS)
    assert isinstance(error.value, MLError)
    with pytest.raises(UnreadableVideoError):
        list(video_frames(path, every_s=1.0, max_frames=3))


def test_a_missing_file_is_an_unreadable_video(tmp_path):
    with pytest.raises(UnreadableVideoError, match="cannot be read"):
        video_probe(tmp_path / "nowhere.mp4", max_pixels=MAX_PIXELS)


# --- sample times -----------------------------------------------------------------------------------------------


def test_sample_times_every_interval_from_zero():
    assert sample_times(10.0, every_s=1.0, max_frames=100) == [float(i) for i in range(10)]
    assert sample_times(3.0, every_s=0.5, max_frames=100) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert sample_times(10.5, every_s=2.0, max_frames=100) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def test_sample_times_spread_over_the_whole_video_when_capped():
    assert sample_times(100.0, every_s=1.0, max_frames=4) == [0.0, 25.0, 50.0, 75.0]
    assert sample_times(100.0, every_s=1.0, max_frames=1) == [50.0]
    for duration in (0.1, 0.99, 1.0, 7.3, 59.9, 3600.0, 86_400.0 * 365):
        for cap in (1, 2, 5, 32):
            times = sample_times(duration, every_s=1.0, max_frames=cap)
            assert 1 <= len(times) <= cap
            assert times == sorted(times) and all(0 <= t < duration for t in times)


def test_a_video_shorter_than_the_interval_gets_its_start_and_middle():
    assert sample_times(0.6, every_s=1.0, max_frames=10) == [0.0, 0.3]
    assert sample_times(0.6, every_s=1.0, max_frames=1) == [0.3]


def test_sample_times_of_nothing():
    assert sample_times(0.0, every_s=1.0, max_frames=10) == []
    assert sample_times(5.0, every_s=1.0, max_frames=0) == []
    with pytest.raises(ValueError, match="every_s"):
        sample_times(5.0, every_s=0, max_frames=10)


# --- frames -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clip.mp4", "clip.mov", "mjpeg.mov", "clip.webm"])
def test_each_sample_is_the_frame_shown_at_its_time(clips, name):
    frames = list(video_frames(clips[name], every_s=0.5, max_frames=100))

    # The frame on screen at t is the last one that started at or before t: frame floor(t × 25).
    shown = [int(t * FPS + 1e-9) for t in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)]
    assert [f.index for f in frames] == list(range(6))
    assert [number_of(f.image) for f in frames] == shown
    assert [f.timestamp_s for f in frames] == pytest.approx([i / FPS for i in shown])
    assert all(f.image.mode == "RGB" and f.image.size == (160, 120) for f in frames)


def test_capped_sampling_spreads_the_frames_over_the_video(clips):
    frames = list(video_frames(clips["clip.mp4"], every_s=0.04, max_frames=5))

    assert [number_of(f.image) for f in frames] == [0, 15, 30, 45, 60]


def test_long_gaps_between_samples_are_skipped_by_seeking_to_the_right_frame(tmp_path):
    path = tmp_path / "long.mp4"
    video_write(path, (numbered(i, 64, 48) for i in range(100)), fps=4, options={"g": "8", "bf": "2"})  # 25 s

    frames = list(video_frames(path, every_s=1.0, max_frames=3))

    assert [(f.timestamp_s, number_of(f.image)) for f in frames] == [(0.0, 0), (8.25, 33), (16.5, 66)]


def test_frames_are_scaled_down_to_max_side(clips, tmp_path):
    path = tmp_path / "phone.mp4"
    video_write(path, [halves(320, 240)] * 5, metadata={"rotate": 90})

    assert {f.image.size for f in video_frames(clips["clip.mp4"], every_s=1.0, max_frames=3, max_side=80)} == {(80, 60)}
    assert [f.image.size for f in video_frames(path, every_s=1.0, max_frames=1, max_side=100)] == [(75, 100)]
    assert {f.image.size for f in video_frames(clips["clip.mp4"], every_s=1.0, max_frames=3, max_side=1000)} == {
        (160, 120)
    }


def test_variable_frame_rate_timestamps_are_followed(tmp_path):
    times = [0.0, 0.1, 0.5, 0.6, 2.0, 2.1, 2.9, 3.3]
    path = tmp_path / "vfr.mp4"
    video_write(path, (numbered(i) for i in range(len(times))), timestamps=times, options={"bf": "0"})

    frames = list(video_frames(path, every_s=1.0, max_frames=10))

    # At 1 s the frame from 0.6 s is still on screen; at 2 s the one from 2.0 s; at 3 s the one from 2.9 s.
    assert [(f.timestamp_s, number_of(f.image)) for f in frames] == [(0.0, 0), (0.6, 3), (2.0, 4), (2.9, 6)]


def test_a_truncated_webm_gives_its_first_frames_then_says_how_far_it_got(clips, tmp_path):
    path = damaged(clips["clip.webm"], tmp_path / "cut.webm", lambda data: data[: len(data) * 6 // 10])
    frames = []

    with pytest.raises(UnreadableVideoError, match=r"ends after 1\.\d s .* lasts 3\.0 s.* 4 of 6 sampled frames"):
        for frame in video_frames(path, every_s=0.5, max_frames=100):
            frames.append(frame)

    assert [number_of(f.image) for f in frames] == [0, 12, 25, 37]


def test_an_mp4_truncated_before_its_index_cannot_be_opened(clips, tmp_path):
    path = damaged(clips["clip.mp4"], tmp_path / "cut.mp4", lambda data: data[: len(data) * 6 // 10])

    with pytest.raises(UnreadableVideoError, match="damaged or truncated"):
        video_probe(path, max_pixels=MAX_PIXELS)


def test_garbage_in_the_middle_gives_the_frames_before_it_then_an_error(clips, tmp_path):
    def scribble(data: bytearray) -> bytearray:
        middle = len(data) // 2
        data[middle : middle + len(data) // 10] = np.random.default_rng(3).bytes(len(data) // 10)
        return data

    path = damaged(clips["clip.mp4"], tmp_path / "scribbled.mp4", scribble)
    frames = []

    with pytest.raises(UnreadableVideoError, match=r"damaged after \d\.\d s of 3\.0 s .* sampled frames were read"):
        for frame in video_frames(path, every_s=0.25, max_frames=100):
            frames.append(frame)

    assert 1 <= len(frames) < 12
    assert [number_of(f.image) for f in frames] == [int(i * 0.25 * FPS + 1e-9) for i in range(len(frames))]


def test_a_duration_that_lies_stops_at_the_real_end(clips, tmp_path):
    def longer(data: bytearray) -> bytearray:
        # The WebM Segment Info's Duration element (ID 0x4489, an 8-byte float, in milliseconds): 3 s → 300 s.
        at = bytes(data).index(b"\x44\x89\x88") + 3
        data[at : at + 8] = struct.pack(">d", 300_000.0)
        return data

    path = damaged(clips["clip.webm"], tmp_path / "liar.webm", longer)
    frames = []

    assert video_probe(path, max_pixels=MAX_PIXELS).duration_s == pytest.approx(300)
    with pytest.raises(UnreadableVideoError, match=r"ends after 3\.0 s although it says it lasts 300\.0 s"):
        for frame in video_frames(path, every_s=1.0, max_frames=1000):
            frames.append(frame)
    assert [number_of(f.image) for f in frames] == [0, 25, 50]


def test_video_write_checks_codec_and_container():
    with pytest.raises(ValueError, match="cannot hold vp9"):
        video_write(Path("x.mp4"), [halves()], codec="vp9")
    with pytest.raises(ValueError, match="Unknown codec"):
        video_write(Path("x.mp4"), [halves()], codec="h265")


def test_the_video_module_does_not_import_torch():
    code = "import sys, ml.video; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]


def test_the_whole_analysis_benchmark_tables_each_clip(resnet18, capsys):
    from ml.bench_video import main
    from ml.detector import Detector

    detector = Detector(resnet18, architecture="resnet18", input_size=64, backend="torch", precision="fp32")
    argv = ["--analyse", "--seconds", "2", "--fps", "1", "2", "--clips", "320x240", "320x240-noface"]
    assert main(argv, detector=detector, framing=1.25) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith("| H.264")]
    assert [(row[0], row[1]) for row in rows] == [
        ("| H.264 320×240, face", "1 fps"),
        ("| H.264 320×240, face", "2 fps"),
        ("| H.264 320×240, no face", "1 fps"),
        ("| H.264 320×240, no face", "2 fps"),
    ]
    assert [row[2] for row in rows] == ["2 (2)", "4 (4)", "2 (0)", "4 (0)"]  # frames sampled (with a face found)
    assert all(float(row[3].strip("*")) > 0 for row in rows)  # seconds of wall time per video-second
