"""Video decoders compared: `python -m ml.bench_video [--seconds 30] [--json out.json]`.

PyAV (FFmpeg's libraries through Python) against OpenCV's FFmpeg backend (cv2.VideoCapture), each used the way the
detector would really use it, on videos this script encodes itself in a temporary folder with PyAV: H.264 in MP4 at
1280×720 and 1920×1080 (30 fps, a keyframe every 2 s as phones and cameras write them; and 720p with x264's default
of one every 250 frames), VP9 in WebM, MJPEG in MOV, a phone-style MP4 stored landscape with a 90° display matrix,
and a variable-frame-rate MP4. The pictures pan over a smooth texture with a moving block and a little noise, so
the encoder and decoder do real motion-compensated work (a still or flat picture decodes unrealistically fast).

Speed: wall seconds per second of video when sampling 1 (and 2) frames per second, each picked frame converted to
an RGB Pillow image at full size:
  PyAV sequential     decode every frame, keep the one shown at each sample time (stream.thread_type "AUTO",
                      and once with PyAV's default slice threading for comparison);
  PyAV seek           seek to each sample time (the keyframe before it) and decode forward to it;
  ml.video            video_frames: sequential, seeking only when that skips 5 s or more to a keyframe;
  OpenCV sequential   grab() every frame, retrieve() the ones picked by CAP_PROP_POS_MSEC;
  OpenCV seek         set CAP_PROP_POS_MSEC to each sample time, then read().
Robustness: what each reader gives on odd files (truncated at 60 %, garbage over the middle, audio only, zero
bytes, a text file, the rotated phone video, the VFR video's timestamps).

Prints Markdown tables (docs/performance.md, "Video decoding: PyAV or OpenCV"). One measurement per cell after a
warm-up; run it on an idle machine and read small differences as noise.

`--analyse [--weights models/reference] [--fps 1] [--clips 1280x720 1920x1080 1280x720-noface]` times instead what a
person waits for: a whole video analysis as detection/engine.py analyze_video does it. ml.video.video_frames samples
--fps frames per second (at most 120, decoded at most 1280 px on the longer side), ml.video_analysis analyses them
with the model package's detector (the engine's defaults: automatic backend, fp32) and the default face finder with
the card's framing, and each frame's picture is rendered as the product renders it (heatmap overlay and face boxes
at 640 px, WebP). The clips (H.264, 30 fps, made here with ml.video.video_write) show a real photograph (scikit-image's
coffee) panning slowly, with the astronaut's face moving over it, or the same without the face ("-noface"). Prints
wall seconds per second of video and its split, the fastest of --repeats analyses of each clip (docs/performance.md,
"Whole video analysis: time per video-second").
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ml.errors import UnreadableVideoError
from ml.video import sample_times, silent_audio_write, video_frames, video_probe, video_write

FPS = 30
VFR_TIMES = None  # filled by make_videos


def scene(width: int, height: int, count: int, *, seed: int = 0) -> Iterator[np.ndarray]:
    """Frames panning over a smooth random texture, with a moving block, a frame-number bar and light noise."""
    rng = np.random.default_rng(seed)
    margin = 64
    small = rng.integers(0, 256, size=((height + margin) // 16 + 1, (width + margin) // 16 + 1, 3), dtype=np.uint8)
    texture = np.asarray(
        Image.fromarray(small).resize((width + margin + 16, height + margin + 16), Image.Resampling.BICUBIC)
    )
    noise = rng.integers(-6, 7, size=(height, width, 3), dtype=np.int16)
    for i in range(count):
        dx, dy = (i * 2) % margin, (i // 2) % margin
        frame = texture[dy : dy + height, dx : dx + width].astype(np.int16)
        frame += np.roll(noise, i * 7, axis=1)
        x = (i * 9) % max(1, width - height // 4)
        frame[height // 3 : height // 3 + height // 4, x : x + height // 4] = (240, 40, 40)
        frame[:8, : (i % 100) * width // 100] = 255
        yield np.clip(frame, 0, 255).astype(np.uint8)


def make_videos(folder: Path, seconds: float) -> dict[str, Path]:
    global VFR_TIMES
    n = round(seconds * FPS)
    gop = {"preset": "veryfast", "g": str(2 * FPS), "crf": "23"}
    videos = {
        "H.264 MP4 1280×720": ("h264_720p.mp4", 1280, 720, "h264", gop, {}),
        "H.264 MP4 1920×1080": ("h264_1080p.mp4", 1920, 1080, "h264", gop, {}),
        "H.264 MP4 720p, keyframe every 250": ("h264_720p_gop250.mp4", 1280, 720, "h264", {"preset": "veryfast"}, {}),
        "VP9 WebM 1280×720": (
            "vp9_720p.webm", 1280, 720, "vp9",
            {"deadline": "realtime", "cpu-used": "8", "g": str(2 * FPS), "b": "2500k"}, {},
        ),
        "MJPEG MOV 1280×720": ("mjpeg_720p.mov", 1280, 720, "mjpeg", {"q:v": "5"}, {}),
        "phone MP4 720p, rotate 90": ("phone.mp4", 1280, 720, "h264", gop, {"rotate": 90}),
    }  # fmt: skip
    paths = {}
    for label, (name, width, height, codec, options, metadata) in videos.items():
        path = folder / name
        started = time.perf_counter()
        video_write(
            path, scene(width, height, n), fps=FPS, codec=codec, metadata=metadata, options={**options, "threads": "2"}
        )
        print(f"  encoded {name} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
        paths[label] = path
    # Variable frame rate: 30 fps, then 10 fps, then a 1.5 s still, then 30 fps again (as phones do in low light).
    times, t = [], 0.0
    while t < min(seconds, 10.0):
        times.append(round(t, 4))
        phase = t % 5.0
        t += 1 / 30 if phase < 2.0 else (1 / 10 if phase < 3.5 else 1.5 if phase < 3.6 else 1 / 30)
    VFR_TIMES = times
    video_write(folder / "vfr.mp4", scene(640, 360, len(times)), fps=FPS, timestamps=times, options={"bf": "0"})
    paths["VFR MP4 640×360"] = folder / "vfr.mp4"
    return paths


# --- the readers ------------------------------------------------------------------------------------------------


def pyav_sequential(
    path: Path, times: list[float], thread_type: str | None = "AUTO"
) -> list[tuple[float, Image.Image]]:
    picked = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if thread_type:
            stream.thread_type = thread_type
        pending = list(times)
        shown = None
        for frame in container.decode(stream):
            while pending and frame.time > pending[0] + 1e-6:
                chosen = shown or frame
                picked.append((chosen.time, chosen.to_image()))
                pending.pop(0)
            if not pending:
                break
            shown = frame
        if pending and shown is not None:
            picked.append((shown.time, shown.to_image()))
    return picked


def pyav_seek(path: Path, times: list[float]) -> list[tuple[float, Image.Image]]:
    picked = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for target in times:
            container.seek(int(Fraction(target).limit_denominator(10**6) / stream.time_base), stream=stream)
            shown = None
            for frame in container.decode(stream):
                if frame.time > target + 1e-6:
                    break
                shown = frame
            chosen = shown or frame
            picked.append((chosen.time, chosen.to_image()))
    return picked


def ml_video(path: Path, times: list[float], every_s: float) -> list[tuple[float, Image.Image]]:
    return [(f.timestamp_s, f.image) for f in video_frames(path, every_s=every_s, max_frames=10_000)]


def opencv_sequential(path: Path, times: list[float], window_s: float = 1.5 / FPS) -> list[tuple[float, Image.Image]]:
    import cv2

    picked = []
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        pending = list(times)
        previous = None  # (time, image) of the frame on screen, retrieved only when it may be picked
        while pending and capture.grab():
            now = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000
            while pending and now > pending[0] + 1e-6:
                picked.append(previous if previous is not None else (now, _cv_image(capture.retrieve()[1])))
                pending.pop(0)
            # Whether this frame is the one shown at the next sample time is known only after the next grab, and
            # OpenCV cannot retrieve a frame once the next is grabbed: retrieve it when the sample time is near.
            previous = (now, _cv_image(capture.retrieve()[1])) if pending and pending[0] - now < window_s else None
        if pending and previous is not None:
            picked.append(previous)
    finally:
        capture.release()
    return picked


def opencv_seek(path: Path, times: list[float]) -> list[tuple[float, Image.Image]]:
    import cv2

    picked = []
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        for target in times:
            capture.set(cv2.CAP_PROP_POS_MSEC, target * 1000)
            ok, bgr = capture.read()
            if not ok:
                break
            picked.append((capture.get(cv2.CAP_PROP_POS_MSEC) / 1000, _cv_image(bgr)))
    finally:
        capture.release()
    return picked


def _cv_image(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(bgr[:, :, ::-1].copy())


# --- measuring --------------------------------------------------------------------------------------------------


def speed_rows(paths: dict[str, Path], seconds: float) -> list[dict]:
    readers: dict[str, Callable] = {
        "PyAV sequential, AUTO threads": lambda p, t, e: pyav_sequential(p, t, "AUTO"),
        "PyAV sequential, default threads": lambda p, t, e: pyav_sequential(p, t, None),
        "PyAV seek per sample": lambda p, t, e: pyav_seek(p, t),
        "ml.video.video_frames": ml_video,
        "OpenCV grab/retrieve": lambda p, t, e: opencv_sequential(p, t),
        "OpenCV seek per sample": lambda p, t, e: opencv_seek(p, t),
    }
    rows = []
    for label, path in paths.items():
        if label.startswith("VFR"):
            continue
        duration = video_probe(path, max_pixels=10**8).duration_s
        path.read_bytes()  # warm-up: the file in the page cache (the readers' libraries are loaded by main)
        rates = (1, 2) if label.startswith("H.264 MP4 1") else (1,)
        for rate in rates:
            times = sample_times(duration, every_s=1 / rate, max_frames=10_000)
            row = {"video": label, "sampling": f"{rate} fps"}
            for name, reader in readers.items():
                started = time.perf_counter()
                picked = reader(path, times, 1 / rate)
                elapsed = time.perf_counter() - started
                row[name] = elapsed / duration
                if len(picked) != len(times):
                    row[name + " frames"] = f"{len(picked)}/{len(times)}"
            rows.append(row)
            print(f"  {label} {rate} fps: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float)),
                  file=sys.stderr)  # fmt: skip
    return rows


def odd_files(folder: Path, paths: dict[str, Path]) -> dict[str, Path]:
    normal = paths["H.264 MP4 1280×720"].read_bytes()
    webm = paths["VP9 WebM 1280×720"].read_bytes()
    files = {}

    def write(name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        files[name] = folder / name

    write("truncated 60 % (MP4, index at the end)", normal[: len(normal) * 6 // 10])
    faststart = folder / "faststart.mp4"
    with (
        av.open(str(paths["H.264 MP4 1280×720"])) as source,
        av.open(str(faststart), "w", options={"movflags": "faststart"}) as target,
    ):
        out = target.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                target.mux(packet)
    data = faststart.read_bytes()
    write("truncated 60 % (MP4, index first)", data[: len(data) * 6 // 10])
    write("truncated 60 % (WebM)", webm[: len(webm) * 6 // 10])
    garbage = bytearray(normal)
    middle = len(garbage) // 2
    garbage[middle : middle + len(garbage) // 20] = np.random.default_rng(1).bytes(len(garbage) // 20)
    write("garbage over 5 % in the middle (MP4)", bytes(garbage))
    audio = folder / "audio.mp4"
    silent_audio_write(audio, blocks=40)
    files["audio only (AAC in MP4)"] = audio
    write("zero bytes", b"")
    write("a text file named .mp4", b"This is not a video at all.\n" * 200)
    files["phone video, rotate 90"] = paths["phone MP4 720p, rotate 90"]
    files["variable frame rate"] = paths["VFR MP4 640×360"]
    return files


def outcome_pyav(path: Path) -> str:
    frames = []
    try:
        info = video_probe(path, max_pixels=10**8)
        for frame in video_frames(path, every_s=1.0, max_frames=10_000):
            frames.append(frame)
    except UnreadableVideoError as exc:
        return (
            f"{len(frames)} frames, then UnreadableVideoError: “{exc}”" if frames else f"UnreadableVideoError: “{exc}”"
        )
    size = frames[0].image.size if frames else None
    return f"{len(frames)} frames of {len(sample_times(info.duration_s, every_s=1.0, max_frames=10_000))}, {size}" + (
        f", rotation {info.rotation}" if info.rotation else ""
    )


def outcome_opencv(path: Path) -> str:
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            return "not opened (isOpened() False, no reason given)"
        fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
        duration = count / fps if fps else 0
        times = sample_times(duration, every_s=1.0, max_frames=10_000) if duration else []
        picked = opencv_sequential(path, times)
        if not picked:
            return f"opened, 0 frames (fps {fps:g}, frame count {count:g}), read() just returns False"
        size = picked[0][1].size
        orientation = capture.get(cv2.CAP_PROP_ORIENTATION_META)
        return f"{len(picked)} frames of {len(times)}, {size}, no error" + (
            f", orientation {orientation:g} (auto-rotated)" if orientation else ""
        )
    finally:
        capture.release()


def vfr_check(path: Path) -> dict[str, str]:
    """Which frame each reader says is shown at each second, against the timestamps the file was written with."""
    expected = []
    for target in sample_times(VFR_TIMES[-1], every_s=1.0, max_frames=100):
        expected.append(max(t for t in VFR_TIMES if t <= target + 1e-6))
    results = {}
    readers = {
        "PyAV (ml.video)": lambda: ml_video(path, [], 1.0),
        "OpenCV grab/retrieve": lambda: opencv_sequential(path, expected, window_s=2.0),
    }
    for name, reader in readers.items():
        got = [round(t, 3) for t, _ in reader()]
        right = sum(abs(a - b) < 0.002 for a, b in zip(got, expected, strict=False))
        results[name] = f"{right}/{len(expected)} timestamps right; reported {got[:6]}…"
    results["written"] = f"{[round(t, 3) for t in expected[:6]]}…"
    return results


# --- output -----------------------------------------------------------------------------------------------------


def markdown(rows: list[dict], robustness: dict[str, tuple[str, str]], vfr: dict[str, str], meta: dict) -> str:
    names = [k for k in rows[0] if k not in ("video", "sampling") and not k.endswith(" frames")]
    lines = [
        f"Seconds of wall time per second of video ({meta['seconds']:g} s videos, 30 fps; lower is better). "
        f"PyAV {meta['pyav']}, OpenCV {meta['opencv']}, {meta['cpus']} CPUs, load before: {meta['load']}.",
        "",
        "| video | sampling | " + " | ".join(names) + " |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for row in rows:
        cells = []
        for name in names:
            cell = f"{row[name]:.3f}"
            if name + " frames" in row:
                cell += f" ({row[name + ' frames']} frames)"
            cells.append(cell)
        lines.append(f"| {row['video']} | {row['sampling']} | " + " | ".join(cells) + " |")
    lines += ["", "| odd file | PyAV (ml.video) | OpenCV |", "| --- | --- | --- |"]
    for name, (pyav_result, opencv_result) in robustness.items():
        lines.append(f"| {name} | {pyav_result} | {opencv_result} |")
    lines += ["", "VFR (frame shown at each whole second): " + "; ".join(f"{k}: {v}" for k, v in vfr.items())]
    return "\n".join(lines)


# --- whole video analysis (--analyse) ---------------------------------------------------------------------------

# As detection/engine.py analyze_video with the default settings (VIDEO_MAX_FRAMES, ANALYSED_FRAME_MAX_SIDE,
# FRAME_MAX_SIDE): the ml package cannot import the Django engine.
VIDEO_MAX_FRAMES = 120
ANALYSED_MAX_SIDE = 1280
RENDERED_MAX_SIDE = 640
CLIPS = ("1280x720", "1920x1080", "1280x720-noface")
FACE_SHARE = 0.3  # the pasted face's side, as a share of the clip's height


def face_scene(width: int, height: int, count: int, *, face: bool = True, seed: int = 0) -> Iterator[np.ndarray]:
    """A real photograph (scikit-image's coffee) panning slowly, with light sensor noise and, with face=True, the
    astronaut's face (ml.probe.astronaut_face) drifting over it, so successive frames differ as a filmed scene's do."""
    import skimage.data

    from ml.probe import astronaut_face

    margin = max(16, height // 12)
    background = np.asarray(
        Image.fromarray(skimage.data.coffee()).resize((width + margin, height + margin), Image.Resampling.BICUBIC)
    )
    noise = np.random.default_rng(seed).integers(-4, 5, size=(height, width + 64, 3), dtype=np.int16)
    side = max(16, round(height * FACE_SHARE)) // 2 * 2
    portrait = np.asarray(astronaut_face().resize((side, side), Image.Resampling.LANCZOS))
    for i in range(count):
        phase = i / FPS
        dx = round(margin / 2 * (1 + np.sin(phase / 3)))
        dy = round(margin / 2 * (1 + np.sin(phase / 5)))
        frame = background[dy : dy + height, dx : dx + width].astype(np.int16)
        frame += noise[:, (i * 7) % 64 : (i * 7) % 64 + width]
        if face:
            x = round(width * 0.55 + side * 0.15 * np.sin(phase * 1.3))
            y = round(height * 0.2 + side * 0.1 * np.sin(phase * 0.9))
            frame[y : y + side, x : x + side] = portrait
        yield np.clip(frame, 0, 255).astype(np.uint8)


def clip_spec(text: str) -> tuple[int, int, bool]:
    """ "1280x720" or "1280x720-noface" as (width, height, with a face)."""
    size, _, suffix = text.partition("-")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a clip is WIDTHxHEIGHT or WIDTHxHEIGHT-noface, not {text!r}") from None
    if suffix not in ("", "noface") or width < 16 or height < 16 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"a clip is WIDTHxHEIGHT (even) or WIDTHxHEIGHT-noface, not {text!r}")
    return width, height, not suffix


def make_face_clips(folder: Path, clips: list[str], seconds: float) -> dict[str, Path]:
    """Each clip as an H.264 MP4 (30 fps, a keyframe every 2 s as phones write them)."""
    options = {"preset": "veryfast", "g": str(2 * FPS), "crf": "23", "threads": "2"}
    paths = {}
    for spec in clips:
        width, height, face = clip_spec(spec)
        path = folder / f"{spec}.mp4"
        started = time.perf_counter()
        video_write(path, face_scene(width, height, round(seconds * FPS), face=face), fps=FPS, options=options)
        print(f"  encoded {path.name} ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)  # fmt: skip
        paths[f"H.264 {width}×{height}, {'face' if face else 'no face'}"] = path
    return paths


def render_frame(frame) -> bytes:
    """The picture the product stores for each analysed frame (detection/engine.py), as WebP."""
    from ml import rendering
    from ml.video_analysis import frame_picture

    return rendering.encode(frame_picture(frame, max_side=RENDERED_MAX_SIDE), "webp")


def analyse_video(detector, path: Path, *, fps: float, finder, framing: float | None, max_frames: int) -> dict:
    """One whole analysis of the video; its wall time and where it went, in seconds."""
    from ml.analysis import FACES
    from ml.video_analysis import TimedIterator, video_frames_analyze

    figures = dict.fromkeys(("faces", "inference", "heatmap", "rendering"), 0.0)
    frames = with_face = 0
    started = time.perf_counter()
    decode = TimedIterator(video_frames(path, every_s=1.0 / fps, max_frames=max_frames, max_side=ANALYSED_MAX_SIDE))
    for batch in video_frames_analyze(detector, decode, finder=finder, framing=framing):
        for frame in batch:
            drawing = time.perf_counter()
            render_frame(frame)
            figures["rendering"] += time.perf_counter() - drawing
            figures["faces"] += frame.picture.faces_ms / 1000
            figures["inference"] += frame.picture.inference_ms / 1000
            figures["heatmap"] += frame.picture.heatmap_ms / 1000
            frames += 1
            with_face += frame.picture.scope == FACES
    figures["wall"] = time.perf_counter() - started
    figures["decode"] = decode.seconds
    figures["rest"] = figures["wall"] - sum(
        figures[k] for k in ("decode", "faces", "inference", "heatmap", "rendering")
    )
    return {**figures, "frames": frames, "frames_with_face": with_face}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def load_detector(weights: Path):
    """The model package's detector as the engine builds it (its card's architecture, input size and threshold;
    backend and precision "auto"), with the card's face framing, or None for a whole-image model."""
    from ml.detector import Detector
    from ml.package import load_package

    model, card = load_package(weights)
    detector = Detector(
        model, architecture=card["architecture"], input_size=card["input_size"], threshold=card["threshold"]
    )
    faces = card.get("faces")
    return detector, (faces or {}).get("framing"), bool(faces), card.get("name", str(weights))


def analysis_rows(
    detector, paths: dict[str, Path], *, rates: list[float], finder, framing: float | None, repeats: int = 1
) -> list[dict]:
    """One row per clip and rate: the fastest of `repeats` analyses (taken in turn, so a load that changes slows
    every clip alike), with every run's seconds per video-second."""
    for path in paths.values():  # the decoder, face finder and model (each batch size) loaded once
        warm_up(detector, path, finder=finder, framing=framing)
    durations = {label: video_probe(path, max_pixels=10**8).duration_s for label, path in paths.items()}
    best: dict[tuple[str, float], dict] = {}
    runs: dict[tuple[str, float], list[float]] = {}
    for _ in range(repeats):
        for label, path in paths.items():
            for rate in rates:
                load_before = _load()
                figures = analyse_video(
                    detector, path, fps=rate, finder=finder, framing=framing, max_frames=VIDEO_MAX_FRAMES
                )
                row = {"clip": label, "sampling": f"{rate:g} fps", "duration_s": durations[label], **figures}
                row["load"] = f"{load_before} → {_load()}"
                runs.setdefault((label, rate), []).append(figures["wall"] / durations[label])
                if (label, rate) not in best or figures["wall"] < best[label, rate]["wall"]:
                    best[label, rate] = row
                print(f"  {label} {rate:g} fps: {runs[label, rate][-1]:.3f} s per video-second, "
                      f"{figures['frames']} frames, load {row['load']}", file=sys.stderr)  # fmt: skip
    return [{**row, "runs": runs[key]} for key, row in best.items()]


def warm_up(detector, path: Path, *, finder, framing: float | None) -> None:
    """A short analysis (a full batch and a lone frame) of the clip, its pictures rendered."""
    from ml.video_analysis import BATCH_FRAMES, video_frames_analyze

    frames = video_frames(path, every_s=1.0, max_frames=BATCH_FRAMES + 1, max_side=ANALYSED_MAX_SIDE)
    for batch in video_frames_analyze(detector, frames, finder=finder, framing=framing):
        for frame in batch:
            render_frame(frame)


def analysis_markdown(rows: list[dict], meta: dict) -> str:
    def per_second(row: dict, *keys: str, digits: int = 4) -> str:
        return f"{sum(row[k] for k in keys) / row['duration_s']:.{digits}f}"

    def spread(row: dict) -> str:
        return f" (runs {', '.join(f'{run:.3f}' for run in row['runs'])})" if len(row["runs"]) > 1 else ""

    lines = [
        f"Whole video analysis, seconds of wall time per second of video ({meta['seconds']:g} s clips, 30 fps, "
        f"sampled frames decoded at most {ANALYSED_MAX_SIDE} px; lower is better). Model: {meta['model']}, "
        f"{meta['engine']}; faces: {meta['finder']}; {meta['cpus']} CPUs, torch {meta['torch_threads']} threads"
        f"{', OpenVINO ' + meta['openvino'] if meta.get('openvino') else ''}.",
        "",
        "| clip | sampling | frames (with a face) | **wall**"
        + (f" (fastest of {meta['repeats']})" if meta["repeats"] > 1 else "")
        + " | ms per frame | decode | finding faces | inference + Grad-CAM | picture (WebP 640 px) | rest "
        "| load before → after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['clip']} | {row['sampling']} | {row['frames']} ({row['frames_with_face']}) "
            f"| **{per_second(row, 'wall', digits=3)}**{spread(row)} "
            f"| {row['wall'] * 1000 / max(1, row['frames']):.0f} "
            f"| {per_second(row, 'decode')} | {per_second(row, 'faces')} "
            f"| {per_second(row, 'inference', 'heatmap')} ({per_second(row, 'inference')} + "
            f"{per_second(row, 'heatmap')}) | {per_second(row, 'rendering')} | {per_second(row, 'rest')} "
            f"| {row['load']} |"
        )
    lines += [
        "",
        "decode: the wall time of ml.video.video_frames' iterator; finding faces, inference (backbone + head) and "
        "Grad-CAM: the PictureAnalysis timings; picture: ml.rendering overlay + draw_boxes + WebP of every frame; "
        "rest: wall minus those (cropping and resizing the faces for the model, placing the heatmaps, tracking).",
    ]
    return "\n".join(lines)


def analysis_main(args: argparse.Namespace, detector=None, framing: float | None = 1.25) -> int:
    import torch

    from ml.faces import default_finder

    if detector is None:
        detector, framing, expects_faces, model = load_detector(args.weights)
    else:
        expects_faces, model = framing is not None, "given by the caller"
    finder = default_finder() if expects_faces else None
    meta = {
        "seconds": args.seconds,
        "model": model,
        "engine": detector.describe(),
        "finder": f"ml.faces.default_finder(), framing {framing}" if finder else "none (a whole-image model)",
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
    }
    if detector.backend == "openvino":
        import openvino

        meta["openvino"] = openvino.get_version()
    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        paths = make_face_clips(Path(folder), args.clips, args.seconds)
        meta["load before"] = _load()
        rows = analysis_rows(detector, paths, rates=args.fps, finder=finder, framing=framing, repeats=args.repeats)
    meta["load after"] = _load()
    print(analysis_markdown(rows, meta))
    print(f"\nLoad average before: {meta['load before']}, after: {meta['load after']}.")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "analysis": rows}, indent=2))
    return 0


def main(argv: list[str] | None = None, *, detector=None, framing: float | None = 1.25) -> int:
    """detector (with framing: None for a whole-image model) replaces --weights in --analyse mode (tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the test videos (default 30)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--analyse", action="store_true", help="time whole video analyses instead of decoders")
    parser.add_argument(
        "--weights", type=Path, default=Path("models/reference"), help="--analyse: the model package (a folder)"
    )
    parser.add_argument("--fps", type=float, nargs="+", default=[1.0], help="--analyse: sampling rates (default 1)")
    parser.add_argument(
        "--clips", nargs="+", default=list(CLIPS), help=f"--analyse: WxH[-noface] (default {' '.join(CLIPS)})"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="--analyse: analyses of each clip, the fastest reported (default 1)"
    )
    args = parser.parse_args(argv)
    if args.analyse:
        for spec in args.clips:
            try:
                clip_spec(spec)
            except argparse.ArgumentTypeError as exc:
                parser.error(str(exc))
        if min(args.fps) <= 0 or args.seconds <= 0 or args.repeats < 1:
            parser.error("--fps and --seconds must be positive, --repeats at least 1")
        return analysis_main(args, detector, framing)

    import cv2

    meta = {
        "seconds": args.seconds,
        "pyav": av.__version__,
        "opencv": cv2.__version__,
        "cpus": os.cpu_count(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        paths = make_videos(Path(folder), args.seconds)
        for path in paths.values():  # load the decoders once before anything is timed
            opencv_seek(path, [0.0])
            pyav_seek(path, [0.0])
        meta["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = speed_rows(paths, args.seconds)
        files = odd_files(Path(folder), paths)
        robustness = {name: (outcome_pyav(path), outcome_opencv(path)) for name, path in files.items()}
        vfr = vfr_check(paths["VFR MP4 640×360"])
    meta["load after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(markdown(rows, robustness, vfr, meta))
    print(f"\nLoad average after: {meta['load after']}.")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "speed": rows, "robustness": robustness, "vfr": vfr}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
