"""A video analysed as the product analyses it: sampled frames, each analysed as a picture is (ml.analysis: face by
face for a face model, the whole frame when no face can be judged), several frames' faces in one batch through the
model, faces followed from frame to frame, and one verdict for the video.

The video's rule, recorded with every result (video_verdict):

    P(fake) of the video = the mean of the TOP_FRACTION most suspicious sampled frames (at least TOP_MIN of them,
    all of them when there are fewer), where a frame's P(fake) is that of its most suspicious face.

So a single odd frame (motion blur, a face half out of the picture) does not decide, while a fake that shows in a
fifth of the video does.

Faces are followed by overlap: a face in a frame continues the track whose last box overlaps it most (intersection
over union at least TRACK_MIN_IOU), seen at most TRACK_MAX_GAP sampled frames earlier; otherwise it starts a track.
"""

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from PIL import Image

from ml.analysis import PictureAnalysis, analyze_pictures
from ml.detector import Detector
from ml.errors import UnreadableVideoError
from ml.faces import FaceFinder

TOP_FRACTION = 0.2
TOP_MIN = 3
TRACK_MIN_IOU = 0.2
TRACK_MAX_GAP = 2
BATCH_FRAMES = 8  # frames whose faces go through the model together


@dataclass(frozen=True)
class FrameAnalysis:
    index: int  # among the sampled frames, from 0
    timestamp_s: float
    image: Image.Image
    picture: PictureAnalysis
    tracks: list[int]  # the track number of each of picture.faces, from 1


@dataclass(frozen=True)
class VideoVerdict:
    probability_fake: float
    label: str
    rule: dict  # what decided: the rule's name, k and the number of frames, the frames that counted


def video_frames_analyze(
    detector: Detector,
    frames: Iterable,
    *,
    finder: FaceFinder | None,
    framing: float | None,
    heatmap_side: int = 640,
    batch_frames: int | None = None,
) -> Iterator[list[FrameAnalysis]]:
    """Analyse ml.video.VideoFrame objects as they are decoded, yielding each batch's results (so the caller can store
    them and report progress); decoding errors propagate after the frames before them were yielded. batch_frames
    defaults to BATCH_FRAMES."""
    tracker = FaceTracker()

    def analysed(batch: list) -> list[FrameAnalysis]:
        return _batch_analyze(detector, batch, tracker, finder=finder, framing=framing, heatmap_side=heatmap_side)

    batch = []
    try:
        for frame in frames:
            batch.append(frame)
            if len(batch) == (batch_frames or BATCH_FRAMES):
                yield analysed(batch)
                batch = []
    except UnreadableVideoError:  # the frames decoded before the damage still count
        if batch:
            yield analysed(batch)
        raise
    if batch:
        yield analysed(batch)


def _batch_analyze(detector, frames, tracker, *, finder, framing, heatmap_side) -> list[FrameAnalysis]:
    pictures = analyze_pictures(
        detector, [frame.image for frame in frames], finder=finder, framing=framing, heatmap_side=heatmap_side
    )
    return [
        FrameAnalysis(
            index=frame.index,
            timestamp_s=frame.timestamp_s,
            image=frame.image,
            picture=picture,
            tracks=tracker.assign(frame.index, [face.face.box for face in picture.faces]),
        )
        for frame, picture in zip(frames, pictures, strict=True)
    ]


def video_verdict(frame_probabilities: list[float], *, threshold: float) -> VideoVerdict:
    """The video's P(fake) from its frames' by the module's rule; ValueError without frames."""
    if not frame_probabilities:
        raise ValueError("a video verdict needs at least one analysed frame")
    ranked = sorted(frame_probabilities, reverse=True)
    k = min(len(ranked), max(TOP_MIN, math.ceil(len(ranked) * TOP_FRACTION)))
    probability = sum(ranked[:k]) / k
    return VideoVerdict(
        probability_fake=probability,
        label="fake" if probability >= threshold else "real",
        rule={
            "rule": f"mean of the top {TOP_FRACTION:.0%} most suspicious frames (at least {TOP_MIN})",
            "k": k,
            "frames": len(ranked),
        },
    )


def frame_picture(frame: FrameAnalysis, *, max_side: int) -> Image.Image:
    """What the product shows of an analysed frame: its heatmap over it and each judged face boxed and labelled with
    its track and P(fake), at most max_side pixels."""
    from ml import rendering

    picture = frame.picture
    shown = rendering.overlay(frame.image, picture.heatmap, max_side=max_side)
    scale = shown.width / frame.image.width
    boxes = [tuple(v * scale for v in face.face.box) for face in picture.faces]
    labels = [
        f"face {track} · {face.prediction.probability_fake:.2f}"
        for track, face in zip(frame.tracks, picture.faces, strict=True)
    ]
    return rendering.draw_boxes(shown, boxes, labels=labels)


class TimedIterator:
    """An iterator that adds up the time spent producing its items (a video's decoding, frame by frame)."""

    def __init__(self, items: Iterable):
        self.items = iter(items)
        self.seconds = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        started = time.perf_counter()
        try:
            return next(self.items)
        finally:
            self.seconds += time.perf_counter() - started

    def take_seconds(self) -> float:
        """The time spent since the last call."""
        spent, self.seconds = self.seconds, 0.0
        return spent


class FaceTracker:
    """Gives each face of successive sampled frames a track number, by overlap with the tracks' last boxes."""

    def __init__(self):
        self.last_seen: dict[int, tuple[int, tuple]] = {}  # track → (frame index, box)
        self.count = 0

    def assign(self, frame_index: int, boxes: list[tuple]) -> list[int]:
        live = {t: box for t, (seen, box) in self.last_seen.items() if frame_index - seen <= TRACK_MAX_GAP}
        pairs = sorted(
            ((iou(box, last), i, track) for i, box in enumerate(boxes) for track, last in live.items()), reverse=True
        )
        tracks: dict[int, int] = {}
        for overlap, i, track in pairs:
            if overlap < TRACK_MIN_IOU:
                break
            if i not in tracks and track not in tracks.values():
                tracks[i] = track
        for i, box in enumerate(boxes):
            if i not in tracks:
                self.count += 1
                tracks[i] = self.count
            self.last_seen[tracks[i]] = (frame_index, box)
        return [tracks[i] for i in range(len(boxes))]


def iou(a: tuple, b: tuple) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
