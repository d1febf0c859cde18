"""Analyses: submitting images, running them through the engine, deleting them, sweeping up stuck work."""

import hashlib
import io
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image, UnidentifiedImageError

from accounts.models import User
from detection import dispatch, engine, selectors
from detection.errors import (
    AnalysisFailure,
    CorruptImage,
    EmptyFile,
    FileTooLarge,
    IdempotencyKeyReused,
    ImageTooLarge,
    ImageTooSmall,
    MissingFile,
    ModelUnusable,
    NoActiveModel,
    StorageUnavailable,
    UnsupportedMediaType,
)
from detection.models import Analysis, AnalysisFace, IdempotencyKey
from detection.signals import delete_files_on_commit
from ml.errors import TooManyPixelsError, UnreadableImageError

logger = logging.getLogger(__name__)

# Pillow's format name → (media type, file extension) for the formats the product accepts.
ACCEPTED_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
ACCEPTED_DESCRIPTION = "JPEG, PNG or WebP"
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
        decoded = engine.decode(data, max_pixels=max_pixels, check_only=True)
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
    try:
        with transaction.atomic():
            analysis.save()
            transaction.on_commit(lambda: analysis_enqueue(analysis_id=analysis.pk), robust=True)
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
    return Submission(analysis=analysis, reused=False, queued=_sent(analysis))


def _sent(analysis: Analysis) -> bool:
    """Whether the new analysis went to the queue: it records when it did (analysis_enqueue). Inside a caller's
    transaction it goes when that commits, and a failure then is the sweeper's to mend: count it as sent."""
    if transaction.get_connection().in_atomic_block:
        return True
    return Analysis.objects.filter(pk=analysis.pk, enqueued_at__isnull=False).exists()


def analysis_enqueue(*, analysis_id: int) -> bool:
    """Hand the analysis to a worker (or the in-process runner); False when the broker cannot be reached."""
    queued = dispatch.send(dispatch.ANALYSIS, analysis_id)
    if queued:
        Analysis.objects.filter(pk=analysis_id).update(enqueued_at=timezone.now())
    return queued


def _analysis_fail(analysis: Analysis, message: str) -> None:
    analysis.fail(message)
    if not analysis.keep_original:  # a failed analysis is final: nothing will read the image again
        analysis_original_discard(analysis=analysis)


def _pictures_save(analysis: Analysis, pictures: list[tuple]) -> None:
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


def _original_bytes(analysis: Analysis) -> bytes:
    try:
        with analysis.original.open("rb") as handle:
            return handle.read()
    except Exception as exc:
        raise AnalysisFailure(
            f"The uploaded image could not be read back from storage ({exc.__class__.__name__})."
        ) from exc


def _analyse(analysis: Analysis) -> tuple:
    """Run the active model on the analysis's image through the engine and store the pictures; the model, the
    outcome and the faces' rows to record. AnalysisFailure says why not."""
    detector_model = selectors.detector_model_get_active()
    if detector_model is None:
        raise AnalysisFailure("No detector model is active, so the image could not be analysed.")
    try:
        outcome = engine.analyze(detector_model, _original_bytes(analysis), keep_original=analysis.keep_original)
    except ModelUnusable as exc:
        raise AnalysisFailure(str(exc)) from exc
    faces = [
        AnalysisFace(analysis=analysis, number=number, **face.box, detection_score=face.detection_score,
                     probability_fake=face.probability_fake, label=face.label)
        for number, face in enumerate(outcome.faces, start=1)
    ]  # fmt: skip
    pictures = [(getattr(analysis, kind), data, kind) for kind, data in outcome.pictures.items()]
    pictures += [
        (row.overlay, face.picture, f"face{row.number}-overlay") for row, face in zip(faces, outcome.faces, strict=True)
    ]
    _pictures_save(analysis, pictures)
    return detector_model, outcome, faces


def analysis_run(*, analysis_id: int, task_id: str = "") -> Analysis | None:
    """Claim the analysis, run the active detector on its image (face by face for a face model) and record the
    verdict, the faces and the pictures.

    Safe to call again for the same analysis (redelivered tasks): finished analyses are left as they are.
    """
    analysis = Analysis.claim(analysis_id=analysis_id, task_id=task_id or f"direct-{uuid.uuid4()}")
    if analysis is None:
        return None
    started = time.perf_counter()
    try:
        detector_model, outcome, faces = _analyse(analysis)
    except AnalysisFailure as exc:
        logger.warning("Analysis %s failed: %s", analysis.public_id, exc)
        _analysis_fail(analysis, str(exc))
        return analysis
    except SoftTimeLimitExceeded:
        _analysis_fail(
            analysis, f"The analysis took longer than {settings.ANALYSIS_SOFT_TIME_LIMIT} seconds and was stopped."
        )
        return analysis
    total_ms = (time.perf_counter() - started) * 1000
    if not analysis.record_result(outcome, detector_model=detector_model, faces=faces, total_ms=total_ms):
        # Deleted while it ran: the pictures just stored belong to nobody.
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


def analysis_pictures_read(*, analysis: Analysis):
    """Each picture of the analysis still stored, as (kind, file extension, bytes); one already gone (retention,
    meanwhile) is skipped. StorageUnavailable when the storage cannot be read."""
    for kind in Analysis.PICTURES:
        field = getattr(analysis, kind)
        if not field:
            continue
        try:
            with field.storage.open(field.name, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            continue
        except Exception as exc:
            raise StorageUnavailable(f"The file storage did not answer ({exc.__class__.__name__}).") from exc
        yield kind, field.name.rsplit(".", 1)[-1].lower(), data


def analysis_files_delete(*, user: User) -> None:
    """Delete every file of every analysis of the user, each deletion safe to repeat; the rows stay. A storage that
    cannot delete raises StorageUnavailable, with the files before it gone."""
    for analysis in Analysis.objects.filter(owner=user).iterator(chunk_size=200):
        for file in analysis.owned_files():
            try:
                file.storage.delete(file.name)
            except Exception as exc:
                raise StorageUnavailable(f"The file storage did not answer ({exc.__class__.__name__}).") from exc


@transaction.atomic
def analysis_delete_many(*, analyses: list[Analysis]) -> int:
    """Delete several analyses at once (all or none) with their files; how many."""
    for analysis in analyses:
        analysis.delete()
    return len(analyses)


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
    with transaction.atomic():
        delete_files_on_commit([analysis.heatmap, analysis.overlay])
        analysis.faces.all().delete()  # each face's picture goes with it (detection.signals)
        analysis.requeue()
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
