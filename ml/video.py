"""Video decoding for the detector: sniffing uploads, probing them, and sampling frames as upright RGB images.

Decoding uses PyAV (FFmpeg's libraries); `python -m ml.bench_video` compares it with OpenCV's FFmpeg backend, and
docs/performance.md records why PyAV was chosen. Like ml.preprocessing this module needs no PyTorch, so the web
process can check uploads with it.

Hostile files: the container is sniffed from its bytes and FFmpeg is told which demuxer to use (MP4/MOV or WebM
only), so playlists and other formats that open further files are never parsed; the declared picture size is
checked against max_pixels before any frame is decoded, and every decoded frame again; sampling stops at the last
sample time and seeks over long gaps, so a very long (or lying) video costs at most max_frames decodes' worth of
keyframe intervals; only the previous frame is kept in memory.

Timestamps are seconds from the start of the video stream. Rotation is the display matrix (or `rotate` tag) of
phone videos, in degrees clockwise, the convention of FFmpeg's old `rotate` tag and of OpenCV's
CAP_PROP_ORIENTATION_META; frames are returned already turned upright.
"""

import bisect
import math
import os
import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ml.errors import UnreadableVideoError

VIDEO_FORMATS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}  # media type → extension

# Larger videos are refused before a frame is decoded: 4096 × 2304 (DCI 4K width at 16:9) is far beyond what the
# detector looks at, and one frame of it is already 28 MB as RGB.
DEFAULT_MAX_PIXELS = 4096 * 2304

# How many bytes video_sniff wants to see.
SNIFF_BYTES = 64 * 1024

# PyAV decodes with FFmpeg's frame and slice threads: on 2 cores as fast or faster than PyAV's default in 6 of 8
# of ml.bench_video's cases, up to 1.2× on 1080p H.264 (docs/performance.md).
THREAD_TYPE = "AUTO"

# Seeking restarts the decoder (and its frame threads): on H.264 with a keyframe every 2 s, seeking to each 1 fps
# sample was slower than decoding straight through (ml.bench_video), so only gaps of several seconds are skipped.
MIN_SEEK_GAIN_S = 5.0

# When the container has no keyframe index to tell whether seeking would skip work, seek over gaps this long.
SEEK_GAP_S = 10.0

_DEMUXERS = {"video/mp4": "mov", "video/quicktime": "mov", "video/webm": "webm"}
_FORMAT_NAMES = "MP4, MOV or WebM"

# ftyp brands of MP4 video files; image (HEIF, AVIF) and audio-only (M4A) brands are not video.
_MP4_BRANDS = {
    b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"iso7", b"iso8", b"iso9", b"mp41", b"mp42", b"avc1",
    b"dash", b"mmp4", b"M4V ", b"M4VH", b"M4VP", b"f4v ", b"MSNV", b"XAVC", b"3gp4", b"3gp5", b"3gp6", b"3g2a",
    b"hvc1", b"av01", b"cmfc", b"mp71",
}  # fmt: skip
_NOT_VIDEO_BRANDS = {
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis", b"M4A ", b"M4B ",
    b"M4P ", b"crx ", b"jp2 ", b"jpx ",
}  # fmt: skip
# Top-level atoms a QuickTime file without an ftyp atom (older cameras) may start with.
_QT_LEADING_ATOMS = {b"wide", b"free", b"skip", b"pnot", b"junk"}
_QT_MEDIA_ATOMS = {b"moov", b"mdat"}

_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_EBML_DOCTYPE = 0x4282


@dataclass(frozen=True)
class VideoInfo:
    media_type: str
    duration_s: float
    fps: float  # average frame rate
    width: int  # as displayed (after rotation)
    height: int
    frame_count: int  # estimated when the container does not say
    codec: str
    rotation: int  # degrees clockwise, 0/90/180/270


@dataclass(frozen=True)
class VideoFrame:
    index: int  # 0-based number among the sampled frames
    timestamp_s: float  # presentation time of the frame in the video
    image: Image.Image  # RGB, upright (rotation applied)


# --- sniffing ---------------------------------------------------------------------------------------------------


def video_sniff(head: bytes) -> str | None:
    """The media type of a video file from its first bytes (at least 64 KB given when available), or None.

    MP4 vs MOV by the ftyp major/compatible brands ("qt  " ⇒ video/quicktime); WebM by the EBML header's DocType
    "webm" (a Matroska file that is not WebM ⇒ None). By content only, never by file name.
    """
    head = bytes(head[:SNIFF_BYTES])
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if head[:4] == _EBML_MAGIC:
        return "video/webm" if _ebml_doctype(head) == "webm" else None
    return _sniff_quicktime_without_ftyp(head)


def _sniff_ftyp(head: bytes) -> str | None:
    size = struct.unpack(">I", head[:4])[0]
    if size < 16:
        return None
    box = head[8 : min(size, len(head))]
    brands = [box[0:4]] + [box[i : i + 4] for i in range(8, len(box) - 3, 4)]
    if b"qt  " in brands:
        return "video/quicktime"
    if brands[0] in _NOT_VIDEO_BRANDS:
        return None
    return "video/mp4" if any(brand in _MP4_BRANDS for brand in brands) else None


def _sniff_quicktime_without_ftyp(head: bytes) -> str | None:
    """Old QuickTime files start straight with their atoms: skip the padding ones until moov or mdat."""
    offset = 0
    while offset + 8 <= len(head):
        size, kind = struct.unpack(">I", head[offset : offset + 4])[0], head[offset + 4 : offset + 8]
        if kind in _QT_MEDIA_ATOMS and (size >= 8 or size in (0, 1)):
            return "video/quicktime"
        if kind not in _QT_LEADING_ATOMS or size < 8:
            return None
        offset += size
    return None


def _ebml_doctype(head: bytes) -> str | None:
    """The DocType string of the EBML header ("webm", "matroska"), or None when it cannot be read."""
    try:
        size, offset = _ebml_vint(head, 4)
        end = min(len(head), offset + size)
        while offset < end:
            element, offset = _ebml_id(head, offset)
            length, offset = _ebml_vint(head, offset)
            if element == _EBML_DOCTYPE:
                return head[offset : offset + length].rstrip(b"\0").decode("ascii")
            offset += length
    except (IndexError, ValueError):
        return None
    return None


def _ebml_id(data: bytes, offset: int) -> tuple[int, int]:
    length = _vint_length(data[offset])
    return int.from_bytes(data[offset : offset + length], "big"), offset + length


def _ebml_vint(data: bytes, offset: int) -> tuple[int, int]:
    length = _vint_length(data[offset])
    if offset + length > len(data):
        raise IndexError("EBML size runs past the data")
    value = int.from_bytes(data[offset : offset + length], "big") & ((1 << (7 * length)) - 1)
    return value, offset + length


def _vint_length(first: int) -> int:
    if first == 0:
        raise ValueError("invalid EBML variable-length integer")
    return 9 - first.bit_length()


# --- probing ----------------------------------------------------------------------------------------------------


@dataclass
class _Opened:
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    info: VideoInfo
    start_s: float
    first: av.VideoFrame


def video_probe(path: Path, *, max_pixels: int) -> VideoInfo:
    """Open the file and decode its first frame; UnreadableVideoError with a sentence a person understands when it
    has no video stream, cannot be decoded, has zero duration, or frames above max_pixels."""
    with _open(Path(path), max_pixels=max_pixels) as opened:
        return opened.info


@contextmanager
def _open(path: Path, *, max_pixels: int) -> Iterator[_Opened]:
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as exc:
        raise UnreadableVideoError(f"The video file cannot be read ({exc.strerror or exc}).") from None
    if not head:
        raise UnreadableVideoError("The file is empty.")
    media_type = video_sniff(head)
    if media_type is None:
        raise UnreadableVideoError(f"The file is not a video in a format we can read ({_FORMAT_NAMES}).")
    try:
        container = av.open(
            "file:" + os.fspath(path.absolute()),
            format=_DEMUXERS[media_type],
            options={"protocol_whitelist": "file"},
        )
    except av.FFmpegError as exc:
        raise UnreadableVideoError(
            f"The video is damaged or truncated and cannot be opened ({_reason(exc)})."
        ) from None
    try:
        stream = _video_stream(container)
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_pixels(width, height, max_pixels)
        stream.thread_type = THREAD_TYPE
        first = _first_frame(container, stream)
        _check_pixels(first.width, first.height, max_pixels)
        start_s = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        yield _Opened(container, stream, _info(container, stream, first, media_type), start_s, first)
    finally:
        container.close()


def _video_stream(container) -> "av.video.stream.VideoStream":
    streams = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        what = "only audio" if container.streams.audio else "no picture"
        raise UnreadableVideoError(f"The file has no video stream ({what}): there is nothing to analyse.")
    return streams[0]


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UnreadableVideoError(
            f"The video is {width} × {height} pixels ({width * height / 1e6:.3g} megapixels a frame); videos up to "
            f"{max_pixels / 1e6:.3g} megapixels a frame are accepted. Please scale it down and try again."
        )


def _first_frame(container, stream) -> av.VideoFrame:
    try:
        for packet in container.demux(stream):
            for frame in packet.decode():
                return frame
    except av.FFmpegError as exc:
        raise UnreadableVideoError(
            f"The video is damaged and its first frame cannot be decoded ({_reason(exc)})."
        ) from None
    raise UnreadableVideoError("The video has no frame that can be decoded: it is empty or damaged.")


def _info(container, stream, first: av.VideoFrame, media_type: str) -> VideoInfo:
    duration = None
    if stream.duration:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    if not duration or duration <= 0 or not math.isfinite(duration):
        raise UnreadableVideoError("The video has no duration (a single picture, or a live stream that never ends).")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not 0 < fps <= 1000:
        fps = (stream.frames / duration) if stream.frames else 25.0
    frame_count = stream.frames or max(1, round(duration * fps))
    rotation = _rotation(first, stream)
    width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
    return VideoInfo(
        media_type=media_type,
        duration_s=duration,
        fps=fps,
        width=width,
        height=height,
        frame_count=frame_count,
        codec=stream.codec_context.name,
        rotation=rotation,
    )


def _rotation(frame: av.VideoFrame, stream) -> int:
    """Degrees clockwise that turn the stored picture upright, from the display matrix or the old `rotate` tag."""
    counter_clockwise = frame.rotation
    if not counter_clockwise:
        try:
            counter_clockwise = -float(stream.metadata.get("rotate", 0))
        except ValueError:
            counter_clockwise = 0
    return round(-counter_clockwise / 90.0) * 90 % 360


def _reason(exc: Exception) -> str:
    message = getattr(exc, "strerror", None) or str(exc)
    return message.rstrip(".").lower() if message else type(exc).__name__


# --- sampling ---------------------------------------------------------------------------------------------------


def sample_times(duration_s: float, *, every_s: float, max_frames: int) -> list[float]:
    """The timestamps to sample: every `every_s` seconds from 0 (plus the middle of the video if only one), spread
    evenly over the whole video when that would exceed max_frames (never more than max_frames)."""
    if every_s <= 0:
        raise ValueError(f"every_s must be positive, not {every_s}.")
    if max_frames < 1 or not duration_s > 0:
        return []
    count = math.ceil(round(duration_s / every_s, 9))
    if count > max_frames:
        if max_frames == 1:
            return [round(duration_s / 2, 6)]
        return [round(duration_s * i / max_frames, 6) for i in range(max_frames)]
    if count == 1:
        return [0.0, round(duration_s / 2, 6)] if max_frames > 1 else [round(duration_s / 2, 6)]
    return [round(every_s * i, 6) for i in range(count)]


def video_frames(
    path: Path, *, every_s: float, max_frames: int, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Iterator[VideoFrame]:
    """Decode and yield the frame shown at each sample time, in order, scaled down so its longer side is at most
    max_side (None: as is). A file damaged part-way yields the frames before the damage and then raises
    UnreadableVideoError saying how far it got (the caller keeps the frames it has). Never loads the whole video
    into memory."""
    with _open(Path(path), max_pixels=max_pixels) as opened:
        info, stream, container = opened.info, opened.stream, opened.container
        targets = deque(sample_times(info.duration_s, every_s=every_s, max_frames=max_frames))
        total = len(targets)
        frame_s = 1.0 / info.fps
        shown: tuple[float, av.VideoFrame] | None = None  # the last decoded frame: the one on screen until the next
        reached_s = 0.0  # the time of the last frame decoded, for the error message
        keyframes, seeked_for = _keyframes(stream), -1
        index = 0

        def sampled(time_s: float, frame: av.VideoFrame) -> VideoFrame:
            _check_pixels(frame.width, frame.height, max_pixels)
            return VideoFrame(index, time_s, _picture(frame, info.rotation, max_side))

        frames = _decoded(container, stream, opened.first)
        while targets:
            seek = None
            if shown is not None and seeked_for != total - len(targets):  # at most one seek per sample time
                seek = _seek_target(keyframes, stream, shown[0], targets[0], opened.start_s)
            if seek is not None:
                container.seek(seek, stream=stream, backward=True)
                frames, shown, seeked_for = _decoded(container, stream), None, total - len(targets)
            try:
                frame = next(frames, None)
            except av.FFmpegError as exc:
                raise UnreadableVideoError(
                    f"The video is damaged after {reached_s:.1f} s of {info.duration_s:.1f} s and cannot be decoded "
                    f"further ({_reason(exc)}); {index} of {total} sampled frames were read."
                ) from None
            if frame is None:
                break
            time_s = _time(frame, shown, frame_s) - opened.start_s
            while targets and time_s > targets[0] + 1e-6:
                target_frame = shown if shown is not None else (time_s, frame)
                yield sampled(*target_frame)
                index += 1
                targets.popleft()
            shown, reached_s = (time_s, frame), max(reached_s, time_s)
        # The end of the file: the last frame is still on screen until it has lasted its duration.
        while targets and shown is not None and targets[0] < shown[0] + _duration(shown[1], frame_s) - 1e-6:
            yield sampled(*shown)
            index += 1
            targets.popleft()
        if targets:
            reached = shown[0] + _duration(shown[1], frame_s) if shown else 0.0
            raise UnreadableVideoError(
                f"The video ends after {reached:.1f} s although it says it lasts {info.duration_s:.1f} s: it is "
                f"truncated or damaged; {index} of {total} sampled frames were read."
            )


def _decoded(container, stream, first: av.VideoFrame | None = None) -> Iterator[av.VideoFrame]:
    """Every frame of the stream from the current position (after `first`, already decoded), then the decoder's
    delayed frames. FFmpeg errors propagate: the caller says how far it got."""
    if first is not None:
        yield first
    for packet in container.demux(stream):
        yield from packet.decode()


def _keyframes(stream) -> list[int] | None:
    """The decode timestamps of the stream's keyframes from the container's index (MP4/MOV have every sample in
    it; WebM's cues are often one entry), or None when there is no useful index."""
    entries = stream.index_entries
    if len(entries) < 2:
        return None
    return sorted(entry.timestamp for entry in entries if entry.is_keyframe) or None


def _seek_target(keyframes: list[int] | None, stream, shown_s: float, target_s: float, start_s: float) -> int | None:
    """Where to seek for the next sample time, or None to keep decoding: to the last keyframe at or before it, when
    that lies well after the frame on screen (decoding restarts there instead of decoding everything between).
    Keyframe times are decode times, shifted by the first one's reordering delay to estimate their display time.
    Without an index, seek over gaps longer than SEEK_GAP_S."""
    if target_s <= shown_s:
        return None
    if keyframes is None:
        return _pts(target_s + start_s, stream) if target_s - shown_s > SEEK_GAP_S else None
    delay = max(0, _pts(start_s, stream) - keyframes[0])
    i = bisect.bisect_right(keyframes, _pts(target_s + start_s, stream) - delay) - 1
    if i < 0:
        return None
    keyframe_s = float((keyframes[i] + delay) * stream.time_base) - start_s
    return keyframes[i] if keyframe_s > shown_s + MIN_SEEK_GAIN_S else None


def _pts(seconds: float, stream) -> int:
    return math.floor(Fraction(seconds).limit_denominator(1_000_000) / stream.time_base)


def _time(frame: av.VideoFrame, shown: tuple[float, av.VideoFrame] | None, frame_s: float) -> float:
    if frame.time is not None:
        return float(frame.time)
    return shown[0] + frame_s if shown else 0.0


def _duration(frame: av.VideoFrame, frame_s: float) -> float:
    if frame.duration and frame.time_base:
        return float(frame.duration * frame.time_base)
    return frame_s


def _picture(frame: av.VideoFrame, rotation: int, max_side: int | None) -> Image.Image:
    """The frame as an upright RGB image, scaled by FFmpeg (area averaging) while it converts from YUV."""
    width, height = frame.width, frame.height
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if (width, height) == (frame.width, frame.height):
        image = frame.to_image()
    else:
        image = frame.to_image(width=width, height=height, interpolation="AREA")
    if rotation:
        # Pillow's ROTATE_* turn counter-clockwise; the rotation is clockwise.
        image = image.transpose(
            {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}[rotation]
        )
    return image


# --- writing ----------------------------------------------------------------------------------------------------

_ENCODERS = {"h264": "libx264", "vp9": "libvpx-vp9", "mjpeg": "mjpeg"}
_MUXERS = {".mp4": "mp4", ".mov": "mov", ".webm": "webm", ".mkv": "matroska", ".avi": "avi"}
_CODECS_BY_SUFFIX = {
    ".mp4": {"h264", "mjpeg"},
    ".mov": {"h264", "mjpeg"},
    ".webm": {"vp9"},
    ".mkv": {"h264", "vp9", "mjpeg"},
    ".avi": {"mjpeg", "h264"},
}


def video_write(
    path: Path,
    frames: Iterable[Image.Image | np.ndarray],
    *,
    fps: float = 25,
    codec: str = "h264",
    metadata: dict | None = None,
    timestamps: Sequence[float] | None = None,
    options: dict[str, str] | None = None,
) -> None:
    """Encode frames into a video file with PyAV (h264 → MP4/MOV by suffix, vp9 → WebM, mjpeg). Used by tests,
    the benchmark and the demo clips.

    Frames are RGB Pillow images or (height, width, 3) uint8 arrays, all of the first one's size (even width and
    height for h264 and vp9). metadata: container tags, except "rotate" (degrees clockwise), written as the display
    matrix phones write. timestamps: each frame's presentation time in seconds, for a variable frame rate (fps is
    then only the nominal rate). options: encoder options (libx264: preset, crf, g…).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if codec not in _ENCODERS:
        raise ValueError(f"Unknown codec {codec!r}: use one of {', '.join(_ENCODERS)}.")
    if codec not in _CODECS_BY_SUFFIX.get(suffix, set()):
        raise ValueError(
            f"A {suffix or 'suffix-less'} file cannot hold {codec}; use .mp4/.mov for h264, .webm for vp9."
        )
    metadata = dict(metadata or {})
    rotate = int(metadata.pop("rotate", 0)) % 360
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(os.fspath(path), "w", format=_MUXERS[suffix]) as container:
        for key, value in metadata.items():
            container.metadata[str(key)] = str(value)
        stream = None
        for i, item in enumerate(frames):
            pixels = np.asarray(item.convert("RGB") if isinstance(item, Image.Image) else item, dtype=np.uint8)
            if pixels.ndim == 2:
                pixels = np.repeat(pixels[:, :, None], 3, axis=2)
            if stream is None:
                stream = container.add_stream(_ENCODERS[codec], rate=rate, options=dict(options or {}))
                stream.height, stream.width = pixels.shape[:2]
                stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
                if timestamps is not None:
                    stream.codec_context.time_base = Fraction(1, 90_000)
                    stream.time_base = Fraction(1, 90_000)
                if rotate:
                    stream.set_display_rotation(-rotate)  # PyAV takes degrees counter-clockwise
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels[:, :, :3]), format="rgb24")
            if timestamps is not None:
                frame.pts, frame.time_base = round(timestamps[i] * 90_000), Fraction(1, 90_000)
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise ValueError("No frames to write.")
        for packet in stream.encode():
            container.mux(packet)


def silent_audio_write(path: Path, *, blocks: int = 20) -> None:
    """An MP4 holding only silent AAC audio (blocks of 1,024 samples at 44.1 kHz): a file with no video stream, for
    tests and the benchmark's odd files."""
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for i in range(blocks):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
