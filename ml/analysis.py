"""One picture analysed as the product analyses uploads: whole, or face by face for a face model.

A face model (its card has "faces") is valid on faces framed as in training, not on whole photos. So the faces of
the picture are found (ml.faces), each is framed and all go through the model in one batch, and the verdict rule is:

    the most suspicious face decides: P(fake) of the picture = the largest P(fake) of its faces.

Faces smaller than ml.faces.MIN_FACE_SIDE are too small to judge: counted, not analysed. When no face can be
analysed, the whole picture is (scope NO_FACE), and the result says it lies outside what the model was trained on.
A whole-image model (no "faces" in its card) always sees the whole picture (scope IMAGE).

The picture's heatmap places each face's Grad-CAM map on the face's frame, so one overlay shows every face.
"""

import time
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from ml.detector import Detector, Prediction
from ml.faces import Face, FaceFinder, crop_face, frame_box
from ml.stability import VariantsPlan, stability_of, variants_plan

IMAGE, FACES, NO_FACE = "image", "faces", "no_face"


@dataclass(frozen=True)
class FaceResult:
    face: Face
    frame: tuple[int, int, int, int]  # the crop the model saw: left, top, right, bottom (may reach past the edges)
    crop: Image.Image
    prediction: Prediction


@dataclass(frozen=True)
class PictureAnalysis:
    scope: str  # IMAGE, FACES or NO_FACE
    probability_fake: float
    label: str
    heatmap: np.ndarray  # float32 in [0, 1], the picture's own shape (height, width) scaled to at most max_side
    faces: list[FaceResult]  # largest first; empty unless scope is FACES
    small_faces: int  # faces found but too small to judge
    faces_ms: float  # finding faces
    inference_ms: float
    heatmap_ms: float
    stability: dict | None = None  # the verdict under re-encodings (ml.stability); None when not checked
    probability_raw: float | None = None  # the deciding prediction's, before the model's calibration


@dataclass(frozen=True)
class PicturePlan:
    """What the model must see of one picture: its judged faces' crops, or the whole picture when there are none."""

    found: list[Face]
    judged: list[Face]
    frames: list[tuple[int, int, int, int]]
    inputs: list[Image.Image]
    faces_ms: float
    whole_scope: str  # the scope when no face is judged: NO_FACE for a face model, IMAGE otherwise


def analyze_picture(
    detector: Detector,
    image: Image.Image,
    *,
    finder: FaceFinder | None,
    framing: float | None,
    heatmap_side: int = 1024,
    stability: bool = False,
) -> PictureAnalysis:
    """Analyse `image` whole (finder None) or face by face, as the module's docstring says."""
    (result,) = analyze_pictures(
        detector, [image], finder=finder, framing=framing, heatmap_side=heatmap_side, stability=stability
    )
    return result


def analyze_pictures(
    detector: Detector,
    images: list[Image.Image],
    *,
    finder: FaceFinder | None,
    framing: float | None,
    heatmap_side: int = 1024,
    stability: bool = False,
) -> list[PictureAnalysis]:
    """Analyse several pictures (a video's frames) as analyze_picture does each, with every face of every picture
    in one batch through the model. With stability, each picture's re-encodings (ml.stability) join that batch, cut
    at the faces already found: the faces are searched once."""
    plans = [picture_plan(image, finder=finder, framing=framing) for image in images]
    variants = [
        variants_plan(image, plan.judged, framing=framing, input_size=detector.input_size) if stability else None
        for plan, image in zip(plans, images, strict=True)
    ]
    inputs = [crop for plan in plans for crop in plan.inputs]
    inputs += [crop for plan in variants if plan for crops in plan.inputs.values() for crop in crops]
    predictions = iter(detector.analyze(inputs))
    results = [
        picture_conclude(plan, image, [next(predictions) for _ in plan.inputs], heatmap_side=heatmap_side)
        for plan, image in zip(plans, images, strict=True)
    ]
    return [
        _with_stability(result, plan, predictions, threshold=detector.threshold) if plan else result
        for result, plan in zip(results, variants, strict=True)
    ]


def _with_stability(result: PictureAnalysis, plan: VariantsPlan, predictions, *, threshold: float) -> PictureAnalysis:
    """The result with its stability, from the next predictions (its variants'), whose cost joins its timings."""
    by_variant = {name: [next(predictions) for _ in crops] for name, crops in plan.inputs.items()}
    spent = [prediction for found in by_variant.values() for prediction in found]
    return replace(
        result,
        stability=stability_of(
            result.probability_fake,
            {name: decisive(found).probability_fake for name, found in by_variant.items()},
            threshold=threshold,
        ),
        inference_ms=result.inference_ms + plan.reencode_ms + sum(p.inference_ms for p in spent),
        heatmap_ms=result.heatmap_ms + sum(p.heatmap_ms for p in spent),
    )


def decisive(predictions: list[Prediction]) -> Prediction:
    """The picture's rule: the most suspicious face decides (a single prediction for a whole picture)."""
    return max(predictions, key=lambda p: p.probability_fake)


def picture_plan(image: Image.Image, *, finder: FaceFinder | None, framing: float | None) -> PicturePlan:
    started = time.perf_counter()
    found = finder.find_all(image) if finder is not None else []
    faces_ms = (time.perf_counter() - started) * 1000
    judged = [face for face in found if face.side >= finder.min_face_side] if finder is not None else []
    return PicturePlan(
        found=found,
        judged=judged,
        frames=[frame_box(face, image.size, framing=framing) for face in judged],
        inputs=[crop_face(image, face, framing=framing) for face in judged] or [image],
        faces_ms=faces_ms,
        whole_scope=NO_FACE if finder is not None else IMAGE,
    )


def picture_conclude(
    plan: PicturePlan, image: Image.Image, predictions: list[Prediction], *, heatmap_side: int
) -> PictureAnalysis:
    """The picture's result from the model's predictions for its plan's inputs: the most suspicious face decides."""
    timings = {
        "faces_ms": plan.faces_ms,
        "inference_ms": sum(p.inference_ms for p in predictions),
        "heatmap_ms": sum(p.heatmap_ms for p in predictions),
    }
    if not plan.judged:
        (prediction,) = predictions
        return PictureAnalysis(
            scope=plan.whole_scope,
            probability_fake=prediction.probability_fake,
            probability_raw=prediction.probability_raw,
            label=prediction.label,
            heatmap=_resized(prediction.heatmap, _bounded(image.size, heatmap_side)),
            faces=[],
            small_faces=len(plan.found),
            **timings,
        )
    results = [
        FaceResult(face=face, frame=frame, crop=crop, prediction=prediction)
        for face, frame, crop, prediction in zip(plan.judged, plan.frames, plan.inputs, predictions, strict=True)
    ]
    deciding = decisive(predictions)
    return PictureAnalysis(
        scope=FACES,
        probability_fake=deciding.probability_fake,
        probability_raw=deciding.probability_raw,
        label=deciding.label,
        heatmap=place_heatmaps(results, image.size, heatmap_side),
        faces=results,
        small_faces=len(plan.found) - len(plan.judged),
        **timings,
    )


def _bounded(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _resized(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The [0, 1] map at size (width, height), bilinear."""
    image = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR), dtype=np.float32).clip(0.0, 1.0)


def place_heatmaps(results: list[FaceResult], size: tuple[int, int], max_side: int) -> np.ndarray:
    """A map of the whole picture (at most max_side) holding each face's map on its frame; 0 elsewhere. Where frames
    overlap, the larger value wins."""
    width, height = _bounded(size, max_side)
    scale = width / size[0]
    canvas = np.zeros((height, width), dtype=np.float32)
    for result in results:
        left, top, right, bottom = (round(v * scale) for v in result.frame)
        if right - left < 1 or bottom - top < 1:
            continue
        placed = _resized(result.prediction.heatmap, (right - left, bottom - top))
        x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, width), min(bottom, height)
        if x1 <= x0 or y1 <= y0:
            continue
        region = placed[y0 - top : y1 - top, x0 - left : x1 - left]
        canvas[y0:y1, x0:x1] = np.maximum(canvas[y0:y1, x0:x1], region)
    return canvas
