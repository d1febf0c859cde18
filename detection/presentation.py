"""How an analysis is shown and exported: the charts' geometry (probabilities; a video's timeline), the model's
metrics as a table, provenance findings, JSON and CSV rows."""

import csv
from dataclasses import dataclass

from django.conf import settings
from django.http import FileResponse
from django.urls import reverse

from detection.models import Analysis, AnalysisFace, AnalysisFrame

# The metrics worth a row on the result page, in reading order, with the names people know them by.
METRIC_LABELS = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "roc_auc": "ROC-AUC",
    "average_precision": "Average precision",
    "threshold": "Threshold",
    "count": "Images",
}


CHART_TRACK_X = 64  # where the bars start, after their labels
CHART_TRACK_WIDTH = 200  # the length of a bar at probability 1
SPLIT_ORDER = ["validation", "test", "test_photos", "evaluation"]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    y: int
    width: float


@dataclass(frozen=True)
class ProbabilityChart:
    """An inline-SVG bar chart of the two class probabilities, with the model's threshold marked on the fake bar."""

    bars: list[Bar]
    threshold: float
    threshold_x: float
    track_x: int = CHART_TRACK_X
    track_width: int = CHART_TRACK_WIDTH
    value_x: int = CHART_TRACK_X + CHART_TRACK_WIDTH + 8


def probability_chart(analysis: Analysis) -> ProbabilityChart | None:
    if analysis.probability_fake is None:
        return None
    p_fake = analysis.probability_fake
    threshold = analysis.threshold if analysis.threshold is not None else 0.5
    return ProbabilityChart(
        bars=[
            Bar("Real", 1.0 - p_fake, 8, round(CHART_TRACK_WIDTH * (1.0 - p_fake), 1)),
            Bar("Fake", p_fake, 40, round(CHART_TRACK_WIDTH * p_fake, 1)),
        ],
        threshold=threshold,
        threshold_x=round(CHART_TRACK_X + CHART_TRACK_WIDTH * threshold, 1),
    )


TIMELINE_WIDTH, TIMELINE_HEIGHT = 640, 200
TIMELINE_LEFT, TIMELINE_RIGHT, TIMELINE_TOP, TIMELINE_BOTTOM = 40, 12, 10, 28  # room for the axes' labels


@dataclass(frozen=True)
class TimelinePoint:
    number: int
    timestamp_s: float
    probability_fake: float
    verdict: str | None
    x: float
    y: float


@dataclass(frozen=True)
class TimelineChart:
    """A video's P(fake) over time as inline SVG: a point per sampled frame (its most suspicious face, or the whole
    frame), a line per face followed across frames, the threshold as a dashed line."""

    points: list[TimelinePoint]
    tracks: list[tuple[int, str]]  # (track number, SVG polyline points)
    threshold_y: float
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    width: int = TIMELINE_WIDTH
    height: int = TIMELINE_HEIGHT
    left: int = TIMELINE_LEFT
    right_x: int = TIMELINE_WIDTH - TIMELINE_RIGHT
    bottom_y: int = TIMELINE_HEIGHT - TIMELINE_BOTTOM


def timeline_chart(analysis: Analysis, frames: list[AnalysisFrame]) -> TimelineChart | None:
    if not frames:
        return None
    duration = max(analysis.duration_s or 0.0, max(frame.timestamp_s for frame in frames), 1e-6)
    plot_width = TIMELINE_WIDTH - TIMELINE_LEFT - TIMELINE_RIGHT
    plot_height = TIMELINE_HEIGHT - TIMELINE_TOP - TIMELINE_BOTTOM

    def x(seconds: float) -> float:
        return round(TIMELINE_LEFT + plot_width * seconds / duration, 1)

    def y(probability: float) -> float:
        return round(TIMELINE_TOP + plot_height * (1.0 - probability), 1)

    tracks: dict[int, list[str]] = {}
    for frame in frames:
        for face in frame.faces:
            tracks.setdefault(face["track"], []).append(f"{x(frame.timestamp_s)},{y(face['probability_fake'])}")
    step = _tick_step(duration)
    return TimelineChart(
        points=[
            TimelinePoint(
                f.number, f.timestamp_s, f.probability_fake, f.verdict, x(f.timestamp_s), y(f.probability_fake)
            )
            for f in frames
        ],
        tracks=[
            (track, " ".join(coordinates)) for track, coordinates in sorted(tracks.items()) if len(coordinates) > 1
        ],
        threshold_y=y(analysis.threshold if analysis.threshold is not None else 0.5),
        x_ticks=[(x(t * step), f"{t * step:g} s") for t in range(int(duration // step) + 1)],
        y_ticks=[(y(p), f"{p:.0%}") for p in (0.0, 0.5, 1.0)],
    )


def _tick_step(duration: float) -> float:
    """A round number of seconds between time labels: about six of them whatever the length."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800):
        if duration / step <= 8:
            return step
    return 3600


def metrics_table(metrics: dict) -> tuple[list[str], list[tuple[str, list]]]:
    """(column names, rows) for a model's metrics, whether they come per split ({"validation": {...}}) or flat."""
    if not isinstance(metrics, dict) or not metrics:
        return [], []
    splits = {name: values for name, values in metrics.items() if isinstance(values, dict)}
    if not splits:
        splits = {"validation": metrics}
    # PostgreSQL's jsonb does not keep key order: put the usual splits in reading order, any others after them.
    columns = sorted(splits, key=lambda name: SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER))
    keys = [key for key in METRIC_LABELS if any(key in values for values in splits.values())]
    rows = [(METRIC_LABELS[key], [splits[column].get(key) for column in columns]) for key in keys]
    return [column.replace("_", " ").capitalize() for column in columns], rows


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


# How the verdict came about, by what the model looked at (ml.analysis).
SCOPE_RULES = {
    Analysis.Scope.FACES: "Each face was analysed; the most suspicious face decides the verdict.",
    Analysis.Scope.IMAGE: "The model looked at the whole image.",
    Analysis.Scope.NO_FACE: "No face large enough to judge was found, so the model looked at the whole image: this "
    "model was trained on faces, so the verdict is outside what it was trained and validated on.",
}


def analysis_export(analysis: Analysis, *, request=None) -> dict:
    """Everything the result page says about an analysis, as plain data: for the JSON download (with request, the
    links to it and its pictures) and for "download all my data" (without: the pictures travel with it)."""
    detector_model = analysis.detector_model

    def link(path: str) -> str | None:
        return request.build_absolute_uri(path) if request is not None else None

    images = {
        kind: link(reverse("detection:analysis_image", args=[analysis.public_id, kind]))
        for kind in Analysis.PICTURES
        if getattr(analysis, kind)
    }
    frames = [_frame_export(analysis, frame, link) for frame in analysis.frames.all()]
    if frames:
        images["frames"] = [frame["image"] for frame in frames]
    return {
        "id": str(analysis.public_id),
        "url": link(analysis.get_absolute_url()),
        "kind": analysis.kind,
        "file_name": analysis.original_name,
        "status": analysis.status,
        "progress": analysis.progress,
        "error": analysis.error_message or None,
        "source": analysis.source,
        "created_at": _iso(analysis.created_at),
        "started_at": _iso(analysis.started_at),
        "finished_at": _iso(analysis.finished_at),
        "result": None
        if analysis.probability_fake is None
        else {
            "verdict": analysis.verdict,
            "label": analysis.label,
            "probability_fake": analysis.probability_fake,
            "probability_real": 1.0 - analysis.probability_fake,
            "confidence": analysis.confidence,
            "threshold": analysis.threshold,
            "uncertain_margin": settings.UNCERTAIN_MARGIN,
            "uncertain_band": list(analysis.uncertain_band) if analysis.uncertain_band else None,
            "probability_raw": analysis.probability_raw,
            "scope": analysis.scope or None,
            "verdict_rule": VIDEO_RULE if analysis.kind == Analysis.Kind.VIDEO else SCOPE_RULES.get(analysis.scope),
            "small_faces": analysis.small_faces,
        },
        "video": None
        if analysis.kind != Analysis.Kind.VIDEO
        else {
            "duration_s": analysis.duration_s,
            "frame_rate": analysis.frame_rate,
            "frames_planned": analysis.frames_planned,
            "frames_done": analysis.frames_done,
            "aggregation": analysis.verdict_rule or None,
            "stopped_reason": analysis.stopped_reason or None,
        },
        "frames": frames,
        "timeline": [{"t": frame["timestamp_s"], "probability_fake": frame["probability_fake"]} for frame in frames],
        "provenance": analysis.provenance,
        "stability": analysis.stability or None,
        "faces": [
            {
                "number": face.number,
                "box": face.box,
                "detection_score": face.detection_score,
                "probability_fake": face.probability_fake,
                "label": face.label,
                "verdict": face.verdict,
                "image": link(reverse("detection:analysis_face_image", args=[analysis.public_id, face.number])),
            }
            for face in analysis.faces.all()
        ],
        "model": None
        if not analysis.model_version
        else {
            "version": analysis.model_version,
            "name": detector_model.name if detector_model else None,
            "architecture": detector_model.architecture if detector_model else None,
            "input_size": detector_model.input_size if detector_model else None,
            "sha256": detector_model.sha256 if detector_model else None,
            "metrics": detector_model.metrics if detector_model else None,
        },
        "timings_ms": {
            "decode": analysis.decode_ms,
            "faces": analysis.faces_ms,
            "inference": analysis.inference_ms,
            "heatmap": analysis.heatmap_ms,
            "total": analysis.total_ms,
        },
        "image": {
            "media_type": analysis.media_type,
            "width": analysis.width,
            "height": analysis.height,
            "file_size": analysis.file_size,
            "sha256": analysis.sha256,
            "keep_original": analysis.keep_original,
            "original_kept": bool(analysis.original),
        },
        "images": images if request is not None else None,
    }


VIDEO_RULE = (
    "Sampled frames were analysed (each face, or the whole frame without one); the video's probability is the mean "
    "of its most suspicious frames, so one odd frame does not decide."
)


def _frame_export(analysis: Analysis, frame: AnalysisFrame, link) -> dict:
    return {
        "number": frame.number,
        "timestamp_s": frame.timestamp_s,
        "probability_fake": frame.probability_fake,
        "label": frame.label,
        "verdict": analysis.verdict_for(frame.probability_fake),
        "scope": frame.scope,
        "faces": frame.faces,
        "image": link(reverse("detection:analysis_frame_image", args=[analysis.public_id, frame.number])),
    }


def provenance_summary(findings: list) -> str:
    """The findings in one line, for a CSV cell: "warning: …; info: …"."""
    return "; ".join(f"{finding.get('severity')}: {finding.get('message')}" for finding in findings or [])


CSV_COLUMNS = [
    "id",
    "created_at",
    "kind",
    "file_name",
    "status",
    "verdict",
    "probability_fake",
    "threshold",
    "scope",
    "faces",
    "stable",
    "model_version",
    "media_type",
    "width",
    "height",
    "file_size",
    "duration_s",
    "sha256",
    "total_ms",
    "source",
    "provenance",
    "error",
]


# The "stable" column: yes or no under re-encoding (ml.stability), empty when it was not checked (videos).
STABLE_CELLS = {True: "yes", False: "no"}


def _cell(value) -> str:
    """A CSV cell that a spreadsheet shows as text: file names are user input and may look like formulas."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def analyses_write_csv(analyses, out) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for analysis in analyses.iterator(chunk_size=500):
        writer.writerow(
            _cell(value)
            for value in (
                analysis.public_id,
                analysis.created_at.isoformat(),
                analysis.kind,
                analysis.original_name,
                analysis.status,
                analysis.verdict or "",
                f"{analysis.probability_fake:.6f}" if analysis.probability_fake is not None else "",
                analysis.threshold,
                analysis.scope,
                len(analysis.faces.all()),
                STABLE_CELLS.get(analysis.stability.get("stable")),
                analysis.model_version,
                analysis.media_type,
                analysis.width,
                analysis.height,
                analysis.file_size,
                f"{analysis.duration_s:.2f}" if analysis.duration_s is not None else "",
                analysis.sha256,
                f"{analysis.total_ms:.1f}" if analysis.total_ms is not None else "",
                analysis.source,
                provenance_summary(analysis.provenance),
                analysis.error_message,
            )
        )


PICTURE_TYPES = {"png": "image/png", "webp": "image/webp", "jpg": "image/jpeg", "jpeg": "image/jpeg"}


class PictureMissing(LookupError):
    """No such picture: an unknown kind, one not stored (yet), or one the storage no longer has. The message says
    which; each view turns it into its own 404."""


def picture_response(field, *, filename: str, content_type: str | None = None) -> FileResponse:
    """A stored picture, streamed from storage, never kept in a cache (gone after a deletion or a sign-out).
    content_type defaults to the one its stored extension says."""
    try:
        handle = field.open("rb")
    except OSError:
        raise PictureMissing("The picture is no longer stored.") from None
    extension = field.name.rsplit(".", 1)[-1].lower()
    response = FileResponse(handle, content_type=content_type or PICTURE_TYPES.get(extension, "image/png"))
    response["Cache-Control"] = "private, no-store"
    response["Content-Disposition"] = f'inline; filename="{filename}.{extension}"'
    return response


def analysis_picture_response(analysis: Analysis, kind: str) -> FileResponse:
    """One of the analysis's pictures (Analysis.PICTURES), whoever may see it having been checked by the caller."""
    if kind not in Analysis.PICTURES:
        raise PictureMissing(f"There is no picture called “{kind}”; ask for one of: {', '.join(Analysis.PICTURES)}.")
    field = getattr(analysis, kind)
    if not field:
        raise PictureMissing(f"This analysis has no {kind} picture{'' if analysis.is_finished else ' yet'}.")
    return picture_response(
        field,
        filename=f"{analysis.public_id}-{kind}",
        content_type=analysis.media_type if kind == "original" else None,
    )


def face_picture_response(face: AnalysisFace) -> FileResponse:
    if not face.overlay:
        raise PictureMissing(f"Face {face.number} has no picture.")
    return picture_response(face.overlay, filename=f"{face.analysis.public_id}-face{face.number}")


def frame_picture_response(frame: AnalysisFrame) -> FileResponse:
    if not frame.picture:
        raise PictureMissing(f"Frame {frame.number} has no picture.")
    return picture_response(frame.picture, filename=f"{frame.analysis.public_id}-frame{frame.number}")
