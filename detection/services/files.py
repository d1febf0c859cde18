"""An analysis's files: the size rule for pictures, reading its original back, storing its pictures, and what the
original's metadata says. Shared by the image and video paths (analyses, videos)."""

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile

from detection.errors import AnalysisFailure, ImageTooSmall
from detection.models import Analysis

# Below this many pixels on the shorter side, or beyond this ratio of the sides, a picture holds too little for a
# verdict to mean anything (the detector would see a few pixels blown up, or a sliver squeezed into a square).
MIN_IMAGE_SIDE = 32
MAX_ASPECT_RATIO = 10


def picture_size_check(name: str, width: int, height: int) -> None:
    """ImageTooSmall unless an image's (or a video's frames') size leaves something to judge."""
    shorter, longer = sorted((width, height))
    if shorter < MIN_IMAGE_SIDE:
        raise ImageTooSmall(
            f"“{name}” is {width} × {height} pixels: too small to judge. Images and videos need at least "
            f"{MIN_IMAGE_SIDE} pixels on each side."
        )
    if longer > MAX_ASPECT_RATIO * shorter:
        raise ImageTooSmall(
            f"“{name}” is {width} × {height} pixels: too narrow to judge. The longer side may be at most "
            f"{MAX_ASPECT_RATIO} times the shorter one; crop the part you want checked."
        )


def pictures_save(analysis: Analysis, pictures: list[tuple]) -> None:
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
    except Exception as exc:  # any storage backend failure, or the time limit arriving meanwhile
        for field, _, _ in pictures:
            if field:
                field.delete(save=False)
        if isinstance(exc, SoftTimeLimitExceeded):
            raise
        raise AnalysisFailure(
            f"The results could not be stored ({exc.__class__.__name__}: {exc}). Please try again later."
        ) from exc


def uploaded_file_sha256(file) -> str:
    """The SHA-256 of an uploaded file, read in chunks (a video or weights file need not fit in memory)."""
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    file.seek(0)
    return digest.hexdigest()


def original_bytes(analysis: Analysis) -> bytes:
    try:
        with analysis.original.open("rb") as handle:
            return handle.read()
    except Exception as exc:
        raise AnalysisFailure(
            f"The uploaded file could not be read back from storage ({exc.__class__.__name__})."
        ) from exc


@contextmanager
def original_local_path(analysis: Analysis) -> Iterator[Path]:
    """A local file holding the original (a video's decoder reads a file): the stored file itself on local storage,
    else a temporary copy, deleted afterwards."""
    try:
        path = Path(analysis.original.path)
    except NotImplementedError:  # remote storage (S3)
        path = None
    except Exception as exc:
        raise AnalysisFailure(f"The uploaded file could not be found ({exc.__class__.__name__}).") from exc
    if path is not None:
        if not path.exists():
            raise AnalysisFailure("The uploaded file is no longer in storage.")
        yield path
        return
    with tempfile.NamedTemporaryFile(suffix=Path(analysis.original.name).suffix) as copy:
        try:
            with analysis.original.open("rb") as source:
                shutil.copyfileobj(source, copy)
            copy.flush()
        except Exception as exc:
            raise AnalysisFailure(
                f"The uploaded file could not be read back from storage ({exc.__class__.__name__})."
            ) from exc
        yield Path(copy.name)


def provenance_findings(source: bytes | Path, *, media_type: str) -> list[dict]:
    """What the file's metadata says of its origin (detection.provenance), as stored with the analysis. Never
    raises: a reader that fails is itself a finding."""
    from detection.provenance import provenance_read  # c2pa's native library loads in the workers only

    findings = provenance_read(source, media_type=media_type, time_limit=settings.PROVENANCE_TIME_LIMIT)
    return [finding.as_dict() for finding in findings]
