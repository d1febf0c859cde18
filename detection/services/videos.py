"""Videos: checking an uploaded video, and running one through the engine frame by frame.

A video's sampled frames are analysed in batches; each batch's frames are stored as they finish (their rows, their
pictures and the progress), so the page shows the timeline growing, and a video stopped part-way (its time limit,
a file damaged further in) keeps the frames it reached and gets its verdict from them, saying so.
"""

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from detection import engine, selectors
from detection.errors import AnalysisFailure, CorruptVideo, FileTooLarge, ModelUnusable, VideoTooLong
from detection.models import Analysis, AnalysisFrame
from detection.services.files import (
    original_local_path,
    picture_size_check,
    pictures_save,
    provenance_findings,
    uploaded_file_sha256,
)
from detection.signals import delete_files_on_commit
from ml.errors import UnreadableVideoError

VIDEO_DESCRIPTION = "MP4, MOV or WebM"
VIDEO_EXTENSIONS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}
SNIFF_BYTES = 64 * 1024
TIMING_FIELDS = ("decode_ms", "faces_ms", "inference_ms", "heatmap_ms")


@dataclass(frozen=True)
class VideoFacts:
    sha256: str
    size: int
    media_type: str
    extension: str
    width: int
    height: int
    duration_s: float
    frame_rate: float
    frames_planned: int
    kind: str = Analysis.Kind.VIDEO


def upload_is_video(file) -> bool:
    """Whether the upload's content is a video of an accepted kind (its name is not trusted)."""
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    file.seek(0)
    return engine.video_sniff(head) is not None


def video_inspect(*, file, name: str) -> VideoFacts:
    """Check that the upload is a whole, decodable video within MAX_VIDEO_SIZE_MB and MAX_VIDEO_SECONDS;
    SubmissionError says why not."""
    if file.size is not None and file.size > settings.MAX_VIDEO_SIZE:
        raise FileTooLarge(
            f"“{name}” is {file.size / (1024 * 1024):.1f} MB; videos up to {settings.MAX_VIDEO_SIZE_MB} MB are "
            "accepted."
        )
    with _upload_local_path(file) as path:
        try:
            info = engine.video_probe(path)
        except UnreadableVideoError as exc:
            raise CorruptVideo(f"“{name}” cannot be used: {exc}") from None
    if info.duration_s > settings.MAX_VIDEO_SECONDS:
        raise VideoTooLong(
            f"“{name}” is {_duration(info.duration_s)} long; videos up to {_duration(settings.MAX_VIDEO_SECONDS)} are "
            "accepted. Cut the part you want checked and upload that."
        )
    picture_size_check(name, info.width, info.height)
    return VideoFacts(
        sha256=uploaded_file_sha256(file),
        size=file.size,
        media_type=info.media_type,
        extension=VIDEO_EXTENSIONS[info.media_type],
        width=info.width,
        height=info.height,
        duration_s=info.duration_s,
        frame_rate=info.fps,
        frames_planned=engine.video_frames_planned(info.duration_s),
    )


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


@contextmanager
def _upload_local_path(file) -> Iterator[Path]:
    """The upload as a local file: Django's own temporary file for a large upload, else a copy of it."""
    if hasattr(file, "temporary_file_path"):
        yield Path(file.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(suffix=".video") as copy:
        file.seek(0)
        for chunk in file.chunks():
            copy.write(chunk)
        copy.flush()
        file.seek(0)
        yield Path(copy.name)


def video_analyse(analysis: Analysis, *, started: float) -> bool:
    """Run the active model on the video's sampled frames, storing them batch by batch, then record the verdict;
    False when the analysis was deleted meanwhile. AnalysisFailure when not one frame could be analysed."""
    detector_model = selectors.detector_model_get_active()
    if detector_model is None:
        raise AnalysisFailure("No detector model is active, so the video could not be analysed.")
    analysis.frames.all().delete()  # an earlier attempt's (a redelivery starts again from the first frame)
    analysis.frames_done = 0
    # Judged from the first frame by the model's threshold and band: the timeline shows verdicts as frames finish.
    analysis.operating_point_keep(detector_model)
    analysis.save(update_fields=["threshold", "uncertain_low", "uncertain_high"])
    timings = dict.fromkeys(TIMING_FIELDS, 0.0)
    best_pictures = {}
    stopped_reason = ""
    with original_local_path(analysis) as path:
        analysis.provenance = provenance_findings(path, media_type=analysis.media_type)
        try:
            for batch in engine.analyze_video(
                detector_model, path, keep_original=analysis.keep_original, display_width=analysis.width or 0
            ):
                if not _frames_store(analysis, batch.frames):
                    return False
                for name in TIMING_FIELDS:
                    timings[name] += batch.timings[name]
                best_pictures = batch.best_pictures or best_pictures
        except ModelUnusable as exc:
            raise AnalysisFailure(str(exc)) from exc
        except AnalysisFailure as exc:
            if not analysis.frames_done:
                raise
            stopped_reason = f"{exc} The verdict rests on the {analysis.frames_done} frames analysed before that."
        except SoftTimeLimitExceeded:
            if not analysis.frames_done:
                raise
            stopped_reason = (
                f"The analysis reached its time limit of {analysis.soft_time_limit} seconds after "
                f"{analysis.frames_done} of {analysis.frames_planned} frames; the verdict rests on those."
            )
    if not analysis.frames_done:
        raise AnalysisFailure("Not one frame of the video could be decoded.")
    pictures_save(analysis, [(getattr(analysis, kind), data, kind) for kind, data in best_pictures.items()])
    probabilities = list(analysis.frames.values_list("probability_fake", flat=True))
    verdict = engine.video_verdict(detector_model, probabilities)
    total_ms = (time.perf_counter() - started) * 1000
    recorded = analysis.record_video_result(
        verdict, detector_model=detector_model, timings=timings, total_ms=total_ms, stopped_reason=stopped_reason
    )
    if not recorded:
        delete_files_on_commit(analysis.own_files())
    return recorded


def _frames_store(analysis: Analysis, frames: list) -> bool:
    """Store a batch of analysed frames (engine.FrameOutcome) with their pictures; False when the analysis is gone."""
    rows = [
        AnalysisFrame(
            analysis=analysis,
            number=frame.number,
            timestamp_s=frame.timestamp_s,
            probability_fake=frame.probability_fake,
            label=frame.label,
            scope=frame.scope,
            faces=frame.faces,
        )
        for frame in frames
    ]
    pictures_save(
        analysis,
        [(row.picture, frame.picture, f"frame{frame.number}") for row, frame in zip(rows, frames, strict=True)],
    )
    try:
        recorded = analysis.frames_record(rows)
    except BaseException:  # the time limit, the database: the rows were rolled back, their pictures must go too
        for row in rows:
            row.picture.delete(save=False)
        raise
    if not recorded:
        delete_files_on_commit([row.picture for row in rows])
    return recorded
