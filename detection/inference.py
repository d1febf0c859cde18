"""The bridge between detector models in the database and the ml engine: one loaded detector per process.

Every analysis asks for the active model's detector; the per-process cache (ml.runtime.DETECTORS) loads it once
and reloads only when another model is activated or the model's settings change.
"""

import logging
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from PIL import Image

from detection.errors import AnalysisFailure
from detection.models import DetectorModel
from ml.analysis import PictureAnalysis, analyze_picture
from ml.detector import Detector
from ml.errors import MLError
from ml.faces import default_finder
from ml.runtime import DETECTORS

logger = logging.getLogger(__name__)


def weights_local_path(model: DetectorModel) -> Path:
    """A local file with the model's weights: the stored file itself, or a copy of a remote one in MODEL_CACHE_DIR."""
    if not model.weights:
        raise AnalysisFailure(f"The detector model “{model}” has no weights file yet.")
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


def detector_load(model: DetectorModel) -> Detector:
    """Load the model's weights into a detector, checking their SHA-256; AnalysisFailure says what went wrong."""
    try:
        return Detector.from_weights(
            weights_local_path(model),
            architecture=model.architecture,
            input_size=model.input_size,
            threshold=model.threshold,
            expected_sha256=model.sha256 or None,
            device=settings.INFERENCE_DEVICE,
            backend=settings.INFERENCE_BACKEND,
            precision=settings.INFERENCE_PRECISION,
        )
    except (MLError, OSError) as exc:
        raise AnalysisFailure(f"The detector model “{model}” could not be loaded: {exc}") from exc


def detector_for(model: DetectorModel) -> Detector:
    """The process's detector for this model, loading it on first use; records load failures on the model."""
    try:
        detector = DETECTORS.get(model.cache_key, lambda: detector_load(model))
    except AnalysisFailure as exc:
        DetectorModel.objects.filter(pk=model.pk).update(load_error=str(exc))
        raise
    if model.load_error:
        DetectorModel.objects.filter(pk=model.pk).update(load_error="")
        model.load_error = ""
    return detector


def analyze(detector_model: DetectorModel, image: Image.Image) -> PictureAnalysis:
    """The model's verdict on a decoded picture: face by face for a face model, else whole (ml.analysis)."""
    detector = detector_for(detector_model)
    finder = default_finder() if detector_model.expects_faces else None
    try:
        return analyze_picture(detector, image, finder=finder, framing=detector_model.face_framing)
    except ImportError as exc:
        raise AnalysisFailure(
            f"The face detector is not installed ({exc}); the administrator must run "
            "`pip install --no-deps -r requirements-no-deps.txt`."
        ) from exc
    except (MLError, OSError) as exc:  # the face detector's model file is damaged
        raise AnalysisFailure(f"The image could not be analysed: {exc}") from exc
