"""Writes: submitting images, running analyses, deleting them, sweeping up stuck work."""

import hashlib
import io
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify
from PIL import Image, UnidentifiedImageError

from accounts.models import User
from detection import selectors
from detection.errors import (
    AnalysisFailure,
    CorruptImage,
    EmptyFile,
    FileTooLarge,
    IdempotencyKeyReused,
    ImageTooLarge,
    ImageTooSmall,
    MissingFile,
    NoActiveModel,
    StorageUnavailable,
    UnsupportedMediaType,
)
from detection.models import Analysis, AnalysisFace, DetectorModel, IdempotencyKey, ModelEvaluation
from detection.signals import delete_files_on_commit
from ml.errors import TooManyPixelsError, UnreadableImageError
from ml.preprocessing import decode_image

logger = logging.getLogger(__name__)

# Pillow's format name → (media type, file extension) for the formats the product accepts.
ACCEPTED_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
ACCEPTED_DESCRIPTION = "JPEG, PNG or WebP"
OVERLAY_MAX_SIDE = 1024
THUMBNAIL_MAX_SIDE = 256
FACE_MAX_SIDE = 320  # a face's own overlay: the framed face the model saw (it sees 160-224 px)
SWEEP_GRACE_SECONDS = 30
# Below this many pixels on the shorter side, or beyond this ratio of the sides, a picture holds too little for a
# verdict to mean anything (the detector would see a few pixels blown up, or a sliver squeezed into a square).
MIN_IMAGE_SIDE = 32
MAX_ASPECT_RATIO = 10


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    size: int
    media_type: str
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class Submission:
    analysis: Analysis
    reused: bool  # an earlier analysis of the same content and model answers this upload
    queued: bool  # False when the queue was unreachable: the sweeper sends it once the queue is back


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _too_many_pixels(name: str, max_pixels: int) -> str:
    return (
        f"“{name}” has more pixels than can be analysed safely: images up to {max_pixels / 1e6:g} megapixels are "
        "accepted. Please resize it and try again."
    )


def image_inspect(*, data: bytes, name: str) -> ImageFacts:
    """Check that the bytes are a complete image of an accepted type and size; SubmissionError says why not."""
    if not data:
        raise EmptyFile(f"“{name}” is empty (0 bytes).")
    if len(data) > settings.MAX_FILE_SIZE:
        raise file_too_large(name, len(data))
    max_pixels = settings.MAX_IMAGE_MEGAPIXELS * 1_000_000
    try:
        with Image.open(io.BytesIO(data)) as probe:
            file_format = probe.format
    except Image.DecompressionBombError:
        raise ImageTooLarge(_too_many_pixels(name, max_pixels)) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise UnsupportedMediaType(
            f"“{name}” is not an image in a supported format ({ACCEPTED_DESCRIPTION})."
        ) from None
    if file_format not in ACCEPTED_FORMATS:
        raise UnsupportedMediaType(
            f"“{name}” is a {file_format} image; only {ACCEPTED_DESCRIPTION} images are accepted."
        )
    try:
        decoded = decode_image(data, max_pixels=max_pixels)
    except TooManyPixelsError:
        raise ImageTooLarge(_too_many_pixels(name, max_pixels)) from None
    except UnreadableImageError as exc:
        raise CorruptImage(f"“{name}” cannot be used: {exc}") from None
    shorter, longer = sorted((decoded.width, decoded.height))
    if shorter < MIN_IMAGE_SIDE:
        raise ImageTooSmall(
            f"“{name}” is {decoded.width} × {decoded.height} pixels: too small to judge. Images need at least "
            f"{MIN_IMAGE_SIDE} pixels on each side."
        )
    if longer > MAX_ASPECT_RATIO * shorter:
        raise ImageTooSmall(
            f"“{name}” is {decoded.width} × {decoded.height} pixels: too narrow to judge. The longer side may be at "
            f"most {MAX_ASPECT_RATIO} times the shorter one; crop the part you want checked."
        )
    media_type, extension = ACCEPTED_FORMATS[file_format]
    return ImageFacts(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        media_type=media_type,
        extension=extension,
        width=decoded.width,
        height=decoded.height,
    )


def file_too_large(name: str, size: int | None) -> FileTooLarge:
    """The refusal of a file over MAX_FILE_SIZE; size None when it was stopped while arriving (its size unknown)."""
    actual = megabytes(size) if size is not None else f"over {settings.MAX_FILE_SIZE_MB} MB"
    return FileTooLarge(f"“{name}” is {actual}; files up to {settings.MAX_FILE_SIZE_MB} MB are accepted.")


def _read_upload(file) -> bytes:
    if file.size is not None and file.size > settings.MAX_FILE_SIZE:
        raise file_too_large(file.name, file.size)
    file.seek(0)
    return file.read(settings.MAX_FILE_SIZE + 1)


def analysis_create(
    *, user: User, file, source: str, keep_original: bool | None = None, idempotency_key: str = ""
) -> Submission:
    """Validate and store an uploaded image, record an analysis and queue it once the row is committed.

    An identical image the user already submitted for the same model version (or still waiting) is answered by that
    analysis, even when both uploads arrive at once. With an idempotency key, a repeat of the same request (same key,
    same file) is answered by the first one's analysis; the same key with another file is refused.
    """
    if file is None:
        raise MissingFile("No file was sent. Choose a JPEG, PNG or WebP image.")
    name = (file.name or "image").rsplit("/", 1)[-1][:255]
    data = _read_upload(file)
    facts = image_inspect(data=data, name=name)
    if idempotency_key:
        earlier = _idempotency_key_answer(user=user, key=idempotency_key, sha256=facts.sha256)
        if earlier is not None:
            return earlier
    submission = _analysis_submit(user, name, data, facts, source=source, keep_original=keep_original)
    if idempotency_key:
        try:
            with transaction.atomic():
                IdempotencyKey.objects.create(
                    owner=user, key=idempotency_key, sha256=facts.sha256, analysis=submission.analysis
                )
        except IntegrityError:  # the same key, at the same moment: the first request's answer stands
            return _idempotency_key_answer(user=user, key=idempotency_key, sha256=facts.sha256) or submission
    return submission


def _idempotency_key_answer(*, user: User, key: str, sha256: str) -> Submission | None:
    earlier = IdempotencyKey.objects.select_related("analysis").filter(owner=user, key=key).first()
    if earlier is None:
        return None
    if earlier.sha256 != sha256:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for another file. Use a new key for each new upload.",
            field="Idempotency-Key",
        )
    return Submission(analysis=earlier.analysis, reused=True, queued=True)


def _analysis_submit(user: User, name: str, data: bytes, facts: ImageFacts, *, source, keep_original) -> Submission:
    detector_model = selectors.detector_model_get_active()
    if detector_model is None:
        raise NoActiveModel("No detector model is active yet, so images cannot be analysed. Please try again later.")
    existing = selectors.analysis_find_reusable(user=user, sha256=facts.sha256, detector_model=detector_model)
    if existing is not None:
        return Submission(analysis=existing, reused=True, queued=True)

    public_id = uuid.uuid4()
    analysis = Analysis(
        public_id=public_id,
        owner=user,
        source=source,
        original_name=name,
        sha256=facts.sha256,
        media_type=facts.media_type,
        file_size=facts.size,
        width=facts.width,
        height=facts.height,
        keep_original=settings.KEEP_ORIGINALS if keep_original is None else keep_original,
    )
    try:
        analysis.original.save(f"{public_id}.{facts.extension}", ContentFile(data), save=False)
    except Exception as exc:  # any storage backend failure: the upload is refused and nothing is kept
        logger.exception("Storing the original of %s failed", public_id)
        raise StorageUnavailable(
            f"The image could not be stored ({exc.__class__.__name__}). Nothing was saved; please try again later."
        ) from exc
    outcome = {}
    try:
        with transaction.atomic():
            analysis.save()
            transaction.on_commit(
                lambda: outcome.setdefault("queued", analysis_enqueue(analysis_id=analysis.pk)), robust=True
            )
    except IntegrityError:
        # The same image by the same user, inserted a moment earlier by a concurrent upload (one unfinished
        # analysis per image: Analysis.Meta.constraints). That one answers this upload too.
        analysis.original.delete(save=False)
        existing = selectors.analysis_find_reusable(user=user, sha256=facts.sha256, detector_model=detector_model)
        if existing is None:
            raise
        return Submission(analysis=existing, reused=True, queued=True)
    except DatabaseError:
        analysis.original.delete(save=False)
        raise
    return Submission(analysis=analysis, reused=False, queued=outcome.get("queued", False))


def analysis_enqueue(*, analysis_id: int) -> bool:
    """Hand the analysis to a worker (or the in-process runner); False when the broker cannot be reached."""
    from detection import tasks

    queued = tasks.analysis_submit(analysis_id=analysis_id)
    if queued:
        Analysis.objects.filter(pk=analysis_id).update(enqueued_at=timezone.now())
    return queued


def _analysis_claim(*, analysis_id: int, task_id: str) -> Analysis | None:
    """Mark the analysis running for this task delivery, or None when there is nothing for it to do.

    Finished analyses are left alone (a duplicate delivery). A running one is taken over only by a redelivery of
    the task that claimed it (its worker died) or once its time limit has passed; otherwise another worker has it.
    """
    with transaction.atomic():
        analysis = Analysis.objects.select_for_update().filter(pk=analysis_id).first()
        if analysis is None or analysis.is_finished:
            return None
        now = timezone.now()
        if (
            analysis.status == Analysis.Status.RUNNING
            and analysis.task_id != task_id
            and analysis.started_at
            and now - analysis.started_at < timedelta(seconds=settings.ANALYSIS_TIME_LIMIT)
        ):
            return None
        analysis.status = Analysis.Status.RUNNING
        analysis.started_at = now
        analysis.attempts += 1
        analysis.task_id = task_id
        analysis.save(update_fields=["status", "started_at", "attempts", "task_id"])
        return analysis


def _analysis_fail(analysis: Analysis, message: str) -> None:
    analysis.status = Analysis.Status.FAILED
    analysis.error_message = message
    analysis.finished_at = timezone.now()
    analysis.save(update_fields=["status", "error_message", "finished_at"])
    if not analysis.keep_original:  # a failed analysis is final: nothing will read the image again
        analysis_original_discard(analysis=analysis)


def _results_save(analysis: Analysis, pictures: list[tuple]) -> None:
    """Store (field, bytes, stem) pictures under names derived from the analysis and the stem; on failure, leave none
    of them behind."""
    try:
        for field, data, stem in pictures:
            extension = "png" if data.startswith(b"\x89PNG") else "webp"
            name = field.field.generate_filename(field.instance, f"{analysis.public_id}-{stem}.{extension}")
            # A run killed half-way may have left this very file: replace it rather than keep a second copy.
            # Storages that overwrite (S3, Cloudinary) replace it anyway, without a round-trip to ask.
            if not getattr(field.storage, "file_overwrite", False) and field.storage.exists(name):
                field.storage.delete(name)
            field.save(name.rsplit("/", 1)[-1], ContentFile(data), save=False)
    except Exception as exc:  # any storage backend failure
        for field, _, _ in pictures:
            if field:
                field.delete(save=False)
        raise AnalysisFailure(
            f"The results could not be stored ({exc.__class__.__name__}: {exc}). Please try again later."
        ) from exc


def _analysis_pictures(analysis: Analysis, image, result, faces: list[AnalysisFace]) -> list[tuple]:
    """The result's pictures as (field, encoded bytes, name stem): thumbnail, heatmap, overlay, one per face."""
    from ml import rendering

    # Without a kept original, no stored picture shows the image larger than its thumbnail.
    overlay_side = OVERLAY_MAX_SIDE if analysis.keep_original else THUMBNAIL_MAX_SIDE
    overlay = rendering.overlay(image, result.heatmap, max_side=overlay_side)
    pictures = [
        (
            analysis.thumbnail,
            rendering.encode(rendering.thumbnail(image, max_side=THUMBNAIL_MAX_SIDE), "webp"),
            "thumbnail",
        ),
        (analysis.heatmap, rendering.encode(rendering.colorize(result.heatmap, overlay.size), "png"), "heatmap"),
        (analysis.overlay, rendering.encode(overlay, "webp"), "overlay"),
    ]
    # Without a kept original, a face is shown no larger than it is in the thumbnail.
    shrink = 1.0 if analysis.keep_original else min(1.0, THUMBNAIL_MAX_SIDE / max(image.size))
    for face, face_result in zip(faces, result.faces, strict=True):
        face_side = max(16, min(FACE_MAX_SIDE, round(face_result.crop.width * shrink)))
        picture = rendering.overlay(face_result.crop, face_result.prediction.heatmap, max_side=face_side)
        pictures.append((face.overlay, rendering.encode(picture, "webp"), f"face{face.number}-overlay"))
    return pictures


def _face_rows(analysis: Analysis, result) -> list[AnalysisFace]:
    rows = []
    for number, face_result in enumerate(result.faces, start=1):
        left, top, right, bottom = face_result.face.box
        x0, y0 = max(0, round(left)), max(0, round(top))
        rows.append(
            AnalysisFace(
                analysis=analysis,
                number=number,
                left=x0,
                top=y0,
                width=max(1, min(analysis.width, round(right)) - x0),
                height=max(1, min(analysis.height, round(bottom)) - y0),
                detection_score=face_result.face.score,
                probability_fake=face_result.prediction.probability_fake,
                label=face_result.prediction.label,
            )
        )
    return rows


def analysis_run(*, analysis_id: int, task_id: str = "") -> Analysis | None:
    """Run the active detector on the analysis's image (face by face for a face model) and store the verdict, the
    faces, and the heatmap, overlay and thumbnail pictures.

    Safe to call again for the same analysis (redelivered tasks): finished analyses are left as they are.
    """
    from detection import inference

    analysis = _analysis_claim(analysis_id=analysis_id, task_id=task_id or f"direct-{uuid.uuid4()}")
    if analysis is None:
        return None
    started = time.perf_counter()
    try:
        detector_model = selectors.detector_model_get_active()
        if detector_model is None:
            raise AnalysisFailure("No detector model is active, so the image could not be analysed.")

        decode_started = time.perf_counter()
        try:
            with analysis.original.open("rb") as handle:
                data = handle.read()
        except Exception as exc:
            raise AnalysisFailure(
                f"The uploaded image could not be read back from storage ({exc.__class__.__name__})."
            ) from exc
        try:
            image = decode_image(data, max_pixels=settings.MAX_IMAGE_MEGAPIXELS * 1_000_000).image
        except UnreadableImageError as exc:
            raise AnalysisFailure(f"The image could not be decoded: {exc}") from exc
        decode_ms = (time.perf_counter() - decode_started) * 1000

        result = inference.analyze(detector_model, image)

        render_started = time.perf_counter()
        faces = _face_rows(analysis, result)
        pictures = _analysis_pictures(analysis, image, result, faces)
        render_ms = (time.perf_counter() - render_started) * 1000
        _results_save(analysis, pictures)
    except AnalysisFailure as exc:
        logger.warning("Analysis %s failed: %s", analysis.public_id, exc)
        _analysis_fail(analysis, str(exc))
        return analysis
    except SoftTimeLimitExceeded:
        _analysis_fail(
            analysis, f"The analysis took longer than {settings.ANALYSIS_SOFT_TIME_LIMIT} seconds and was stopped."
        )
        return analysis

    analysis.probability_fake = result.probability_fake
    analysis.threshold = detector_model.threshold
    analysis.label = result.label
    analysis.scope = result.scope
    analysis.small_faces = result.small_faces
    analysis.detector_model = detector_model
    analysis.model_version = detector_model.label
    analysis.decode_ms = decode_ms
    analysis.faces_ms = result.faces_ms
    analysis.inference_ms = result.inference_ms
    analysis.heatmap_ms = result.heatmap_ms + render_ms
    analysis.total_ms = (time.perf_counter() - started) * 1000
    analysis.status = Analysis.Status.DONE
    analysis.finished_at = timezone.now()
    analysis.error_message = ""
    with transaction.atomic():
        # The owner may have deleted the analysis, or the account, while it ran: then saving must not bring the
        # row back, and the pictures just stored belong to nobody.
        still_there = Analysis.objects.select_for_update().filter(pk=analysis.pk).exists()
        if still_there:
            analysis.save()
            AnalysisFace.objects.bulk_create(faces)
    if not still_there:
        delete_files_on_commit(analysis.own_files() + [face.overlay for face in faces])
        return None
    if not analysis.keep_original:
        analysis_original_discard(analysis=analysis)
    return analysis


def analysis_original_discard(*, analysis: Analysis) -> None:
    """Delete the stored original; the verdict, thumbnail, heatmap and overlay stay."""
    if analysis.original:
        analysis.original.delete(save=False)
        Analysis.objects.filter(pk=analysis.pk).update(original="")


@dataclass(frozen=True)
class RetentionReport:
    expired: int
    failed: int


def analysis_originals_expire(*, now=None) -> RetentionReport:
    """Delete the originals of finished analyses older than ORIGINALS_RETENTION_DAYS (0 keeps them for good), and
    any left behind by a finished analysis whose uploader chose not to keep it (its run was cut short).

    Each file is deleted before its row forgets it, so a run stopped at any point leaves no file without a row;
    the next run deletes again what is still named (deleting a missing file succeeds) and carries on. A file the
    storage cannot delete now is logged and left named, for the next run.
    """
    days = settings.ORIGINALS_RETENTION_DAYS
    expiring = Q(keep_original=False)
    if days > 0:
        expiring |= Q(created_at__lt=(now or timezone.now()) - timedelta(days=days))
    storage = Analysis._meta.get_field("original").storage
    # Unfinished analyses still need their image; the sweeper finishes or fails them first.
    due = (
        Analysis.objects.filter(expiring, status__in=[Analysis.Status.DONE, Analysis.Status.FAILED])
        .exclude(original="")
        .values_list("pk", "original")
        .order_by("pk")
    )
    expired = failed = last_pk = 0
    # Batches by primary key rather than one open cursor: the loop writes to the rows it reads.
    while batch := list(due.filter(pk__gt=last_pk)[:500]):
        for pk, name in batch:
            try:
                storage.delete(name)
            except Exception:
                logger.exception("Retention: could not delete the original %s of analysis %s", name, pk)
                failed += 1
                continue
            expired += Analysis.objects.filter(pk=pk, original=name).update(original="")
        last_pk = batch[-1][0]
    return RetentionReport(expired=expired, failed=failed)


def analysis_delete(*, analysis: Analysis) -> None:
    """Delete the analysis and, once that is committed, every file it owns (see detection.signals)."""
    analysis.delete()


@dataclass(frozen=True)
class SweepReport:
    requeued: int
    failed: int


def analysis_sweep(*, now=None) -> SweepReport:
    """Find analyses stuck in queued or running past their limits; queue them again, or fail them for good."""
    now = now or timezone.now()
    failed = 0
    overdue = Analysis.objects.filter(
        status=Analysis.Status.RUNNING, started_at__lt=now - timedelta(seconds=settings.ANALYSIS_TIME_LIMIT + 30)
    )
    for analysis in overdue:
        if analysis.attempts >= settings.ANALYSIS_MAX_ATTEMPTS:
            _analysis_fail(
                analysis,
                f"The analysis did not finish after {analysis.attempts} attempts and was abandoned. "
                "Please upload the image again; if it keeps failing, tell the administrator.",
            )
            failed += 1
        else:
            Analysis.objects.filter(pk=analysis.pk, status=Analysis.Status.RUNNING).update(
                status=Analysis.Status.QUEUED, enqueued_at=None
            )
    # Never reached the queue (the broker was down), or sat there so long that the message must have been lost.
    # The grace period leaves alone uploads whose enqueueing is still under way.
    stuck = Analysis.objects.filter(status=Analysis.Status.QUEUED).filter(
        Q(enqueued_at__isnull=True, created_at__lt=now - timedelta(seconds=SWEEP_GRACE_SECONDS))
        | Q(enqueued_at__lt=now - timedelta(seconds=settings.ANALYSIS_QUEUE_TIMEOUT))
    )
    requeued = sum(analysis_enqueue(analysis_id=pk) for pk in stuck.values_list("pk", flat=True))
    return SweepReport(requeued=requeued, failed=failed)


# --- Detector models --------------------------------------------------------------------------------------------


def _probe_image() -> Image.Image:
    """A small deterministic picture to run a freshly loaded model on."""
    gradient = Image.linear_gradient("L").resize((160, 120))
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90).resize((160, 120)), gradient))


def detector_model_store_weights(*, detector_model: DetectorModel, path: Path) -> None:
    """Copy a weights file into storage, where every worker can reach it, and record its SHA-256.

    When the model already names an expected SHA-256 (typed in by an administrator), the file must match it.
    """
    from ml.weights import sha256_of

    if not path.is_file():
        raise AnalysisFailure(f"There is no file at {path}.")
    actual = sha256_of(path)
    expected = detector_model.sha256.strip().lower()
    if expected and expected != actual:
        raise AnalysisFailure(
            f"The weights file has SHA-256 {actual}, but {expected} was expected: it is not the file that was meant. "
            "Check the source, or clear the expected checksum."
        )
    with path.open("rb") as handle:
        detector_model.weights.save(
            f"{slugify(detector_model.name)}-{slugify(detector_model.version)}-{actual[:12]}{path.suffix}",
            File(handle),
            save=False,
        )
    detector_model.sha256 = actual


def detector_model_prepare(*, detector_model_id: int) -> DetectorModel:
    """Fetch the model's weights if they are elsewhere, then load them into the architecture and run a probe image.

    The outcome is recorded on the model: READY with what the probe gave, or FAILED with the reason. Only READY
    models can be activated.
    """
    from detection import inference
    from ml.errors import MLError
    from ml.weights import download_from_hub

    detector_model = DetectorModel.objects.get(pk=detector_model_id)
    try:
        if not detector_model.weights:
            if detector_model.source == DetectorModel.Source.HUB:
                path = download_from_hub(
                    repo_id=detector_model.hub_repo,
                    filename=detector_model.hub_filename,
                    revision=detector_model.hub_revision or None,
                    token=settings.HUGGINGFACE_TOKEN or None,
                    endpoint=settings.HUGGINGFACE_ENDPOINT or None,
                )
            elif detector_model.source == DetectorModel.Source.PATH:
                path = Path(detector_model.server_path)
            else:
                raise AnalysisFailure("The model has no weights file.")
            detector_model_store_weights(detector_model=detector_model, path=path)
        detector = inference.detector_load(detector_model)
        (probe,) = detector.analyze([_probe_image()])
        if not 0.0 <= probe.probability_fake <= 1.0:
            raise AnalysisFailure(f"The model answered {probe.probability_fake} for a probe image, not a probability.")
        if detector_model.expects_faces:  # the face detector must be there too, or every analysis would fail
            inference.analyze(detector_model, _probe_image())
    except (AnalysisFailure, MLError, OSError) as exc:
        detector_model.status = DetectorModel.Status.FAILED
        detector_model.status_message = str(exc)
    else:
        detector_model.status = DetectorModel.Status.READY
        detector_model.status_message = (
            f"Loaded into {detector_model.architecture} at {detector_model.input_size} px; a probe image gave "
            f"p(fake) = {probe.probability_fake:.3f} in {probe.inference_ms + probe.heatmap_ms:.0f} ms."
        )
    detector_model.save()
    return detector_model


def detector_model_register(
    *,
    name: str,
    version: str,
    architecture: str,
    weights_path: Path,
    input_size: int = 224,
    threshold: float = 0.5,
    source: str = DetectorModel.Source.UPLOAD,
    metrics: dict | None = None,
    card: dict | None = None,
    description: str = "",
    face_framing: float | None = None,
    activate: bool = False,
) -> DetectorModel:
    """Register a model from a local weights file: store the weights, validate them, and activate if asked."""
    if DetectorModel.objects.filter(name=name, version=version).exists():
        raise ValidationError({"version": f"A model named “{name}” with version “{version}” already exists."})
    detector_model = DetectorModel(
        name=name,
        version=version,
        architecture=architecture,
        input_size=input_size,
        threshold=threshold,
        source=source,
        metrics=metrics or {},
        card=card or {},
        description=description,
        face_framing=face_framing,
    )
    detector_model.full_clean(exclude=["weights"])
    try:
        detector_model_store_weights(detector_model=detector_model, path=Path(weights_path))
    except AnalysisFailure as exc:
        raise ValidationError({"weights": str(exc)}) from None
    detector_model.save()
    detector_model = detector_model_prepare(detector_model_id=detector_model.pk)
    if activate:
        detector_model_activate(detector_model=detector_model)
    return detector_model


def detector_model_activate(*, detector_model: DetectorModel) -> DetectorModel:
    """Make this the one active model; workers switch to it at their next task. Only validated models qualify."""
    if detector_model.status != DetectorModel.Status.READY:
        reason = detector_model.status_message or "it has not been validated yet"
        raise ValidationError(f"“{detector_model}” cannot be activated: {reason}")
    with transaction.atomic():
        DetectorModel.objects.select_for_update().filter(is_active=True).exclude(pk=detector_model.pk).update(
            is_active=False
        )
        detector_model.is_active = True
        detector_model.activated_at = timezone.now()
        detector_model.save(update_fields=["is_active", "activated_at"])
    return detector_model


# --- Detector models in the admin -------------------------------------------------------------------------------


def uploaded_file_sha256(file) -> str:
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def detector_model_add(*, detector_model: DetectorModel, upload=None) -> DetectorModel:
    """Save a model added in the admin, pending, and have a worker fetch and check its weights once committed.

    An uploaded weights file is stored now, under a name that carries its SHA-256 (taken as it arrives). Hub and
    server-path weights are fetched by the worker, which also loads them and runs the probe (detector_model_prepare).
    """
    if upload is not None:
        sha256 = uploaded_file_sha256(upload)
        suffix = Path(upload.name).suffix.lower()
        detector_model.source = DetectorModel.Source.UPLOAD
        detector_model.weights.save(
            f"{slugify(detector_model.name)}-{slugify(detector_model.version)}-{sha256[:12]}{suffix}",
            upload,
            save=False,
        )
        detector_model.sha256 = sha256
    detector_model.status = DetectorModel.Status.PENDING
    detector_model.status_message = "Waiting for a worker to fetch and check the weights."
    detector_model.is_active = False
    try:
        with transaction.atomic():
            detector_model.save()
            transaction.on_commit(
                lambda: detector_model_prepare_enqueue(detector_model_id=detector_model.pk), robust=True
            )
    except DatabaseError:
        if detector_model.weights:
            detector_model.weights.delete(save=False)
        raise
    return detector_model


def detector_model_prepare_enqueue(*, detector_model_id: int) -> bool:
    """Ask a worker to (re)check the model; when the queue is unreachable, the model says so and stays pending."""
    from detection import tasks

    queued = tasks.detector_model_prepare_submit(detector_model_id=detector_model_id)
    if not queued:
        DetectorModel.objects.filter(pk=detector_model_id, status=DetectorModel.Status.PENDING).update(
            status_message="The task queue could not be reached, so no worker is checking these weights. "
            "Use “Check the weights again” once the queue is back."
        )
    return queued


def detector_model_recheck(*, detector_model: DetectorModel) -> DetectorModel:
    """Mark the model pending and have a worker load it and run the probe again (after a failure or a change)."""
    if detector_model.is_active:
        raise ValidationError(
            f"“{detector_model}” is the active model; activate another model before checking this one again."
        )
    with transaction.atomic():
        detector_model.status = DetectorModel.Status.PENDING
        detector_model.status_message = "Waiting for a worker to check the weights again."
        detector_model.save(update_fields=["status", "status_message"])
        transaction.on_commit(lambda: detector_model_prepare_enqueue(detector_model_id=detector_model.pk), robust=True)
    return detector_model


def detector_model_verify_weights(*, detector_model: DetectorModel) -> None:
    """Check the stored weights still have the SHA-256 recorded when they arrived; on a mismatch the model is marked
    failed and ValidationError says so."""
    from detection import inference
    from ml.errors import WeightsError
    from ml.weights import verify_sha256

    try:
        verify_sha256(inference.weights_local_path(detector_model), detector_model.sha256)
    except (AnalysisFailure, WeightsError, OSError) as exc:
        detector_model.status = DetectorModel.Status.FAILED
        detector_model.status_message = str(exc)
        detector_model.save(update_fields=["status", "status_message"])
        raise ValidationError(f"“{detector_model}” cannot be used: {exc}") from None


def detector_model_activate_checked(*, detector_model: DetectorModel) -> DetectorModel:
    """Activate a validated model after checking its stored weights are still the ones that were validated."""
    if detector_model.status == DetectorModel.Status.READY:
        detector_model_verify_weights(detector_model=detector_model)
    return detector_model_activate(detector_model=detector_model)  # refuses unvalidated models, with the reason


def detector_model_deactivate(*, detector_model: DetectorModel) -> None:
    """Refused for the active model: analyses always need one, so another model is activated in its place."""
    if detector_model.is_active:
        raise ValidationError(
            f"“{detector_model}” is the only active model and analyses need one. Activate another model instead: "
            "it replaces this one in a single step."
        )


def detector_model_delete(*, detector_model: DetectorModel) -> None:
    """Delete an inactive model and (once committed) its weights; its analyses keep their results and its name."""
    if detector_model.is_active:
        raise ValidationError(
            f"“{detector_model}” is the only active model and cannot be deleted. Activate another model first."
        )
    detector_model.delete()


def detector_model_evaluation_start(*, detector_model: DetectorModel, dataset_path: str) -> ModelEvaluation:
    """Record an evaluation of the model on a folder with real/ and fake/ and queue it for a worker."""
    if detector_model.status != DetectorModel.Status.READY:
        raise ValidationError(f"“{detector_model}” cannot be evaluated before its weights have been checked.")
    with transaction.atomic():
        evaluation = ModelEvaluation.objects.create(detector_model=detector_model, dataset_path=dataset_path)
        transaction.on_commit(lambda: detector_model_evaluation_enqueue(evaluation_id=evaluation.pk), robust=True)
    return evaluation


def detector_model_evaluation_enqueue(*, evaluation_id: int) -> bool:
    from detection import tasks

    queued = tasks.detector_model_evaluate_submit(evaluation_id=evaluation_id)
    if not queued:
        ModelEvaluation.objects.filter(pk=evaluation_id, status=ModelEvaluation.Status.QUEUED).update(
            status=ModelEvaluation.Status.FAILED,
            error_message="The task queue could not be reached; start the evaluation again once it is back.",
            finished_at=timezone.now(),
        )
    return queued


def _evaluation_device() -> str:
    import torch

    if settings.INFERENCE_DEVICE == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return settings.INFERENCE_DEVICE


def detector_model_evaluate(*, evaluation_id: int) -> ModelEvaluation | None:
    """Measure the model on the evaluation's folder; store the report, the ROC and PR curves, and the headline
    metrics on the model (under metrics["evaluation"], next to the training's own)."""
    import tempfile

    from detection import inference
    from ml.errors import MLError
    from ml.evaluate import evaluate_package
    from ml.weights import verify_sha256

    with transaction.atomic():
        evaluation = (
            ModelEvaluation.objects.select_for_update()
            .select_related("detector_model")
            .filter(pk=evaluation_id, status=ModelEvaluation.Status.QUEUED)
            .first()
        )
        if evaluation is None:  # gone, or another delivery already took it
            return None
        evaluation.status = ModelEvaluation.Status.RUNNING
        evaluation.save(update_fields=["status"])
    detector_model = evaluation.detector_model
    try:
        with tempfile.TemporaryDirectory(prefix="evaluation-") as output:
            weights = inference.weights_local_path(detector_model)
            verify_sha256(weights, detector_model.sha256)
            report = evaluate_package(
                None,
                evaluation.dataset_path,
                output_dir=output,
                weights=weights,
                architecture=detector_model.architecture,
                input_size=detector_model.input_size,
                threshold=detector_model.threshold,
                batch_size=16,
                device=_evaluation_device(),
                progress=False,
            )
            for field, name in ((evaluation.roc_curve, "roc.png"), (evaluation.pr_curve, "pr.png")):
                curve = Path(output) / name
                if curve.exists():
                    field.save(f"evaluation-{evaluation.pk}-{name}", ContentFile(curve.read_bytes()), save=False)
    except (AnalysisFailure, MLError, OSError, ValueError) as exc:
        logger.warning("Evaluation %s failed: %s", evaluation_id, exc)
        evaluation.status = ModelEvaluation.Status.FAILED
        evaluation.error_message = str(exc)
        evaluation.finished_at = timezone.now()
        evaluation.save(update_fields=["status", "error_message", "finished_at"])
        return evaluation
    evaluation.report = report
    evaluation.status = ModelEvaluation.Status.DONE
    evaluation.error_message = ""
    evaluation.finished_at = timezone.now()
    with transaction.atomic():
        evaluation.save()
        detector_model = DetectorModel.objects.select_for_update().get(pk=detector_model.pk)
        detector_model.metrics = {
            **detector_model.metrics,
            "evaluation": {
                **report["metrics"],
                "dataset": evaluation.dataset_path,
                "evaluated_at": evaluation.finished_at.isoformat(),
                "evaluation_id": evaluation.pk,
            },
        }
        detector_model.save(update_fields=["metrics"])
    return evaluation


def analysis_rerun(*, analysis: Analysis) -> Analysis:
    """Analyse the image again with the active model, replacing the result (the admin log keeps the old verdict)."""
    active = selectors.detector_model_get_active()
    if active is None:
        raise ValidationError("No detector model is active, so nothing can be run again.")
    if not analysis.is_finished:
        raise ValidationError(f"“{analysis}” has not finished yet; it will run with the active model anyway.")
    if not analysis.original:
        raise ValidationError(
            f"“{analysis}” cannot run again: its original image was not kept (privacy setting), only its results."
        )
    from detection.signals import delete_files_on_commit

    with transaction.atomic():
        delete_files_on_commit([analysis.heatmap, analysis.overlay])
        analysis.faces.all().delete()  # each face's picture goes with it (detection.signals)
        for name in ("probability_fake", "label", "threshold", "detector_model", "started_at", "finished_at"):
            setattr(analysis, name, None if name != "label" else "")
        for name in ("decode_ms", "faces_ms", "inference_ms", "heatmap_ms", "total_ms", "enqueued_at"):
            setattr(analysis, name, None)
        analysis.scope, analysis.small_faces = "", 0
        analysis.heatmap = analysis.overlay = ""
        analysis.model_version = analysis.error_message = analysis.task_id = ""
        analysis.attempts = 0
        analysis.status = Analysis.Status.QUEUED
        try:
            with transaction.atomic():
                analysis.save()
        except IntegrityError:
            raise ValidationError(
                f"“{analysis}” cannot run again now: another analysis of the same image by the same user is still "
                "waiting or running."
            ) from None
        transaction.on_commit(lambda: analysis_enqueue(analysis_id=analysis.pk), robust=True)
    return analysis
