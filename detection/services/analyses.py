"""Analyses: submitting images and videos, running them through the engine, deleting them, sweeping up stuck work.
What is particular to videos (their checks, their frames) is in videos.py."""

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
    MissingFile,
    ModelUnusable,
    NoActiveModel,
    StorageUnavailable,
    UnsupportedMediaType,
)
from detection.models import Analysis, AnalysisBatch, AnalysisFace, IdempotencyKey
from detection.services import videos
from detection.services.files import original_bytes, picture_size_check, pictures_save, provenance_findings
from detection.services.webhooks import webhook_deliveries_queue
from detection.signals import delete_files_on_commit
from ml.errors import TooManyPixelsError, UnreadableImageError

logger = logging.getLogger(__name__)

# Pillow's format name → (media type, file extension) for the formats the product accepts.
ACCEPTED_FORMATS = {"JPEG": ("image/jpeg", "jpg"), "PNG": ("image/png", "png"), "WEBP": ("image/webp", "webp")}
ACCEPTED_DESCRIPTION = "JPEG, PNG or WebP"
ACCEPTED_UPLOADS = f"an image ({ACCEPTED_DESCRIPTION}) or a video ({videos.VIDEO_DESCRIPTION})"
SWEEP_GRACE_SECONDS = 30


@dataclass(frozen=True)
class ImageFacts:
    sha256: str
    size: int
    media_type: str
    extension: str
    width: int
    height: int
    kind: str = Analysis.Kind.IMAGE


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
            f"“{name}” is neither an image ({ACCEPTED_DESCRIPTION}) nor a video ({videos.VIDEO_DESCRIPTION})."
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
    picture_size_check(name, decoded.width, decoded.height)
    media_type, extension = ACCEPTED_FORMATS[file_format]
    return ImageFacts(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        media_type=media_type,
        extension=extension,
        width=decoded.width,
        height=decoded.height,
    )


def upload_size_limit() -> int:
    """The largest file any upload may carry: an image's or a video's limit, whichever is larger."""
    return max(settings.MAX_FILE_SIZE, settings.MAX_VIDEO_SIZE)


def file_too_large(name: str, size: int | None) -> FileTooLarge:
    """The refusal of an image over MAX_FILE_SIZE; size None when a file was stopped while arriving, past even the
    video limit (its size and kind unknown)."""
    if size is None:
        return FileTooLarge(
            f"“{name}” is over {max(settings.MAX_FILE_SIZE_MB, settings.MAX_VIDEO_SIZE_MB)} MB; images up to "
            f"{settings.MAX_FILE_SIZE_MB} MB "
            f"and videos up to {settings.MAX_VIDEO_SIZE_MB} MB are accepted."
        )
    return FileTooLarge(f"“{name}” is {megabytes(size)}; images up to {settings.MAX_FILE_SIZE_MB} MB are accepted.")


def _read_upload(file) -> bytes:
    if file.size is not None and file.size > settings.MAX_FILE_SIZE:
        raise file_too_large(file.name, file.size)
    file.seek(0)
    return file.read(settings.MAX_FILE_SIZE + 1)


def analysis_create(
    *,
    user: User,
    file,
    source: str,
    keep_original: bool | None = None,
    idempotency_key: str = "",
    batch: AnalysisBatch | None = None,
    source_url: str = "",
) -> Submission:
    """Validate and store an uploaded image or video, record an analysis and queue it once the row is committed.
    A new analysis records the batch it came in and the URL it was fetched from, if any (set on the row as it is
    inserted: a worker saving it whole must find them there).

    An identical image the user already submitted for the same model version (or still waiting) is answered by that
    analysis, even when both uploads arrive at once. With an idempotency key, a repeat of the same request (same key,
    same file) is answered by the first one's analysis; the same key with another file is refused.
    """
    if file is None:
        raise MissingFile(f"No file was sent. Choose {ACCEPTED_UPLOADS}.")
    name = (file.name or "upload").rsplit("/", 1)[-1][:255]
    if videos.upload_is_video(file):
        facts = videos.video_inspect(file=file, name=name)
        content = file
    else:
        data = _read_upload(file)
        facts = image_inspect(data=data, name=name)
        content = ContentFile(data)
    if idempotency_key:
        earlier = _idempotency_key_answer(user=user, key=idempotency_key, sha256=facts.sha256)
        if earlier is not None:
            return earlier
    origin = {"source": source, "batch": batch, "source_url": source_url}
    submission = _analysis_submit(user, name, content, facts, keep_original=keep_original, **origin)
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


def _analysis_submit(user: User, name: str, content, facts, *, source, batch, source_url, keep_original) -> Submission:
    """facts: ImageFacts or videos.VideoFacts; content: the file's bytes as a Django File."""
    detector_model = selectors.detector_model_get_active()
    if detector_model is None:
        raise NoActiveModel("No detector model is active yet, so nothing can be analysed. Please try again later.")
    existing = selectors.analysis_find_reusable(user=user, sha256=facts.sha256, detector_model=detector_model)
    if existing is not None:
        return Submission(analysis=existing, reused=True, queued=True)

    public_id = uuid.uuid4()
    analysis = Analysis(
        public_id=public_id,
        owner=user,
        source=source,
        batch=batch,
        source_url=source_url,
        original_name=name,
        sha256=facts.sha256,
        media_type=facts.media_type,
        file_size=facts.size,
        width=facts.width,
        height=facts.height,
        kind=facts.kind,
        duration_s=getattr(facts, "duration_s", None),
        frame_rate=getattr(facts, "frame_rate", None),
        frames_planned=getattr(facts, "frames_planned", 0),
        keep_original=settings.KEEP_ORIGINALS if keep_original is None else keep_original,
    )
    try:
        analysis.original.save(f"{public_id}.{facts.extension}", content, save=False)
    except Exception as exc:  # any storage backend failure: the upload is refused and nothing is kept
        logger.exception("Storing the original of %s failed", public_id)
        raise StorageUnavailable(
            f"The file could not be stored ({exc.__class__.__name__}). Nothing was saved; please try again later."
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
    """Hand the analysis to a worker (or the in-process runner); False when the broker cannot be reached. A video
    goes to the video queue, with time limits for its length."""
    analysis = Analysis.objects.filter(pk=analysis_id).only("kind", "frames_planned").first()
    if analysis is None:  # deleted before it could be sent
        return False
    if analysis.kind == Analysis.Kind.VIDEO:
        limits = {"soft_time_limit": analysis.soft_time_limit, "time_limit": analysis.time_limit}
        queued = dispatch.send(dispatch.VIDEO, analysis_id, **limits)
    else:
        queued = dispatch.send(dispatch.ANALYSIS, analysis_id)
    if queued:
        Analysis.objects.filter(pk=analysis_id).update(enqueued_at=timezone.now())
    return queued


def _analysis_fail(analysis: Analysis, message: str) -> None:
    analysis.fail(message)
    if not analysis.keep_original:  # a failed analysis is final: nothing will read the image again
        analysis_original_discard(analysis=analysis)
    webhook_deliveries_queue(analysis_id=analysis.pk)


def _image_analyse(analysis: Analysis, started: float) -> bool:
    """Run the active model on the analysis's image through the engine, store the pictures and record the result;
    False when the analysis was deleted meanwhile. AnalysisFailure says why it could not be analysed."""
    detector_model = selectors.detector_model_get_active()
    if detector_model is None:
        raise AnalysisFailure("No detector model is active, so the image could not be analysed.")
    data = original_bytes(analysis)
    try:
        outcome = engine.analyze(detector_model, data, keep_original=analysis.keep_original)
    except ModelUnusable as exc:
        raise AnalysisFailure(str(exc)) from exc
    analysis.provenance = provenance_findings(data, media_type=analysis.media_type)
    faces = [
        AnalysisFace(analysis=analysis, number=number, **face.box, detection_score=face.detection_score,
                     probability_fake=face.probability_fake, label=face.label)
        for number, face in enumerate(outcome.faces, start=1)
    ]  # fmt: skip
    pictures = [(getattr(analysis, kind), picture, kind) for kind, picture in outcome.pictures.items()]
    pictures += [
        (row.overlay, face.picture, f"face{row.number}-overlay") for row, face in zip(faces, outcome.faces, strict=True)
    ]
    pictures_save(analysis, pictures)
    total_ms = (time.perf_counter() - started) * 1000
    if not analysis.record_result(outcome, detector_model=detector_model, faces=faces, total_ms=total_ms):
        # Deleted while it ran: the pictures just stored belong to nobody.
        delete_files_on_commit(analysis.own_files() + [face.overlay for face in faces])
        return False
    return True


def analysis_run(*, analysis_id: int, task_id: str = "") -> Analysis | None:
    """Claim the analysis, run the active detector on its image (face by face for a face model) or its video's
    sampled frames, and record the verdict, the faces or frames, the pictures and the file's provenance findings.

    Safe to call again for the same analysis (redelivered tasks): finished analyses are left as they are.
    """
    analysis = Analysis.claim(analysis_id=analysis_id, task_id=task_id or f"direct-{uuid.uuid4()}")
    if analysis is None:
        return None
    started = time.perf_counter()
    try:
        if analysis.kind == Analysis.Kind.VIDEO:
            recorded = videos.video_analyse(analysis, started=started)
        else:
            recorded = _image_analyse(analysis, started)
    except AnalysisFailure as exc:
        logger.warning("Analysis %s failed: %s", analysis.public_id, exc)
        _analysis_fail(analysis, str(exc))
        return analysis
    except SoftTimeLimitExceeded:
        _analysis_fail(analysis, f"The analysis took longer than {analysis.soft_time_limit} seconds and was stopped.")
        return analysis
    if not recorded:
        return None
    if not analysis.keep_original:
        analysis_original_discard(analysis=analysis)
    webhook_deliveries_queue(analysis_id=analysis.pk)
    return analysis


def analysis_original_discard(*, analysis: Analysis) -> None:
    """Delete the stored original; the verdict, thumbnail, heatmap, overlay (and a video's frames) stay."""
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
        if now - analysis.started_at < timedelta(seconds=analysis.time_limit + 30):  # a video, still within its own
            continue
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
    """Analyse the image or video again with the active model, replacing the result (the admin log keeps the old
    verdict)."""
    active = selectors.detector_model_get_active()
    if active is None:
        raise ValidationError("No detector model is active, so nothing can be run again.")
    if not analysis.is_finished:
        raise ValidationError(f"“{analysis}” has not finished yet; it will run with the active model anyway.")
    if not analysis.original:
        raise ValidationError(
            f"“{analysis}” cannot run again: its original file was not kept (privacy setting), only its results."
        )
    with transaction.atomic():
        delete_files_on_commit([analysis.heatmap, analysis.overlay])
        analysis.faces.all().delete()  # each face's and frame's picture goes with it (detection.signals)
        analysis.frames.all().delete()
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
