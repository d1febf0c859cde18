"""Batches: several files submitted together, as separate files or as the entries of one ZIP. Each file becomes an
analysis through analysis_create, so every rule of a single upload applies to it; a refused file is listed with its
reason and does not refuse the others.

ZIPs are checked from their headers before anything is extracted (entry count, the total they extract to, each
entry's size, encryption, compression method), then each entry is extracted on its own into a temporary file, never
past the size its header declares: a zip bomb (an entry that inflates past what it declares) is stopped at that size
and refused as damaged. Entry names are never used as paths (extracted files get temporary names, stored originals
their analysis's ID), so names such as "../../etc/passwd" are harmless: only their last part is kept, as the file
name shown to people.
"""

import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile
from django.db import transaction

from accounts.models import User
from detection.errors import (
    ArchiveTooLarge,
    CorruptArchive,
    EncryptedArchive,
    FileTooLarge,
    MissingFile,
    SubmissionError,
    TooManyFiles,
    UnsupportedArchive,
)
from detection.models import Analysis, AnalysisBatch
from detection.services.analyses import Submission, analysis_create, megabytes, upload_size_limit

# Deflate's output can be bounded while it is read (zipfile asks zlib for at most what it needs); bzip2's and LZMA's
# cannot, so a few kilobytes of them could inflate to gigabytes in one read.
BOUNDED_COMPRESSION = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
COPY_CHUNK = 1024 * 1024
# What a damaged or hostile entry makes zipfile (or the decompressor under it) raise while it is read.
EXTRACTION_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError, zlib.error)


@dataclass(frozen=True)
class BatchFile:
    """What became of one file of a batch: its submission, or the reason it was refused."""

    name: str
    submission: Submission | None = None
    error: SubmissionError | None = None

    @property
    def analysis(self) -> Analysis | None:
        return self.submission.analysis if self.submission else None

    @property
    def reused(self) -> bool:
        return bool(self.submission and self.submission.reused)


@dataclass(frozen=True)
class BatchSubmission:
    batch: AnalysisBatch | None  # None when not one file was accepted: no batch is kept
    files: list[BatchFile]


@dataclass(frozen=True)
class _Candidate:
    """A file of the batch before it is submitted: how to open it as an upload, or why it is refused unopened."""

    name: str
    open: Callable[[], AbstractContextManager[UploadedFile]] | None = None
    refusal: SubmissionError | None = None


def _admit_all(name: str) -> None:
    return None


def batch_file_size_limit() -> int:
    """The largest single file a batch request may carry: a video, or the ZIP."""
    return max(upload_size_limit(), settings.MAX_BATCH_UNCOMPRESSED)


def batch_body_limit() -> int:
    """The largest request body a batch may be: its most files at the image limit, one video, or one ZIP."""
    return max(settings.MAX_FILES_PER_BATCH * settings.MAX_FILE_SIZE, batch_file_size_limit())


def batch_too_large(name: str) -> FileTooLarge:
    """The refusal of a file stopped while arriving, past even the largest file a batch takes (its size unknown)."""
    return FileTooLarge(
        f"“{name}” is over {megabytes(batch_file_size_limit())}: images up to {settings.MAX_FILE_SIZE_MB} MB, "
        f"videos up to {settings.MAX_VIDEO_SIZE_MB} MB and ZIPs up to {settings.MAX_BATCH_UNCOMPRESSED_MB} MB are "
        "accepted."
    )


def _count_check(count: int) -> None:
    if count > settings.MAX_FILES_PER_BATCH:
        raise TooManyFiles(
            f"The batch holds {count} files; send at most {settings.MAX_FILES_PER_BATCH} at once.", field="files"
        )


def batch_create(
    *,
    user: User,
    files: list,
    oversized: dict[int, str] | None = None,
    source: str = Analysis.Source.API,
    keep_original: bool | None = None,
    admit: Callable[[str], None] = _admit_all,
) -> BatchSubmission:
    """Submit the uploaded files as one batch, in order. `oversized` are the files stopped while arriving ({position
    among the files: name}), refused as too large; `admit(name)` is asked before each file is checked and may refuse
    it by raising a SubmissionError (the per-user upload limit)."""
    oversized = oversized or {}
    count = len(files) + len(oversized)
    if not count:
        raise MissingFile(
            "No file was sent. Send each file in a field “files” (repeat it), or one ZIP in the field “file”.",
            field="files",
        )
    _count_check(count)
    received = iter(files)
    candidates = [
        _Candidate(oversized[position], refusal=batch_too_large(oversized[position]))
        if position in oversized
        else _uploaded_candidate(next(received))
        for position in range(count)
    ]
    return _batch_submit(user, candidates, source=source, name="", keep_original=keep_original, admit=admit)


def _uploaded_candidate(file: UploadedFile) -> _Candidate:
    return _Candidate(file.name or "upload", open=lambda: nullcontext(file))


def batch_create_from_zip(
    *,
    user: User,
    archive: UploadedFile,
    source: str = Analysis.Source.API,
    keep_original: bool | None = None,
    admit: Callable[[str], None] = _admit_all,
) -> BatchSubmission:
    """Submit the files of a ZIP as one batch, in the ZIP's order; folders, hidden files and macOS's __MACOSX
    entries are skipped. The whole ZIP is refused when it cannot be read, is encrypted, holds no file or too many,
    or would extract to more than MAX_BATCH_UNCOMPRESSED_MB; an entry that is too large or damaged is refused on its
    own."""
    name = (archive.name or "upload.zip").rsplit("/", 1)[-1]
    if archive.size is not None and archive.size > settings.MAX_BATCH_UNCOMPRESSED:
        raise ArchiveTooLarge(
            f"“{name}” is {megabytes(archive.size)}; ZIPs up to {settings.MAX_BATCH_UNCOMPRESSED_MB} MB are accepted."
        )
    with _zip_open(archive, name) as zip_file:
        entries = _zip_entries_check(zip_file, name)
        candidates = [_zip_candidate(zip_file, entry) for entry in entries]
        return _batch_submit(user, candidates, source=source, name=name, keep_original=keep_original, admit=admit)


# Entries a ZIP may hold in all (folders and hidden files count): zipfile builds an object for every one of them
# before anything else can be checked, so the count is read from the archive's last record first.
ENTRIES_PER_FILE_ALLOWED = 10
END_OF_CENTRAL_DIRECTORY, ZIP64_LOCATOR, ZIP64_END = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"


def _declared_entries(archive: UploadedFile) -> int | None:
    """How many entries the ZIP's end-of-central-directory record (or its ZIP64 record) declares; None when there
    is none to read (not a ZIP: zipfile then says so)."""
    archive.seek(max(0, archive.size - (22 + 0xFFFF)))  # the record, and a comment of at most 65,535 bytes
    tail = archive.read()
    at = tail.rfind(END_OF_CENTRAL_DIRECTORY)
    if at < 0 or len(tail) < at + 22:
        return None
    (entries,) = struct.unpack("<H", tail[at + 10 : at + 12])
    if entries != 0xFFFF:
        return entries
    locator = tail.rfind(ZIP64_LOCATOR, 0, at)
    if locator < 0 or len(tail) < locator + 16:
        return None
    (offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
    archive.seek(offset)
    record = archive.read(56)
    return struct.unpack("<Q", record[32:40])[0] if record[:4] == ZIP64_END and len(record) == 56 else None


def _entries_check(count: int, name: str) -> None:
    allowed = ENTRIES_PER_FILE_ALLOWED * settings.MAX_FILES_PER_BATCH
    if count > allowed:
        raise TooManyFiles(
            f"“{name}” holds {count:,} entries; a ZIP may hold at most {allowed:,} (files, folders and hidden files "
            "together).",
            field="file",
        )


@contextmanager
def _zip_open(archive: UploadedFile, name: str) -> Iterator[zipfile.ZipFile]:
    declared = _declared_entries(archive)
    if declared is not None:
        _entries_check(declared, name)
    archive.seek(0)
    try:
        zip_file = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise CorruptArchive(
            f"“{name}” is not a ZIP archive, or a damaged one ({exc}). Send a ZIP in the field “file”, or the files "
            "themselves in the field “files”."
        ) from None
    with zip_file:
        yield zip_file


def _entry_skipped(entry: zipfile.ZipInfo) -> bool:
    """Folders, hidden files (".DS_Store", "._photo.jpg") and macOS's resource forks (__MACOSX/) hold no picture."""
    parts = entry.filename.replace("\\", "/").split("/")
    hidden = any(part.startswith(".") and part not in {".", ".."} for part in parts)
    return entry.is_dir() or hidden or "__MACOSX" in parts


def _zip_entries_check(zip_file: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    """The ZIP's entries to analyse, once its headers show that it may be extracted."""
    _entries_check(len(zip_file.infolist()), name)  # a record that understated them
    entries = [entry for entry in zip_file.infolist() if not _entry_skipped(entry)]
    if not entries:
        raise MissingFile(
            f"“{name}” holds no file to analyse (folders, hidden files and __MACOSX entries are skipped).",
        )
    _count_check(len(entries))
    if any(entry.flag_bits & 0x1 for entry in entries):  # bit 0 of the general purpose flags: encrypted
        raise EncryptedArchive(f"“{name}” is password-protected. Send a ZIP without a password.")
    total = sum(entry.file_size for entry in entries)
    if total > settings.MAX_BATCH_UNCOMPRESSED:
        raise ArchiveTooLarge(
            f"“{name}” would extract to {megabytes(total)}; the files of a ZIP may add up to "
            f"{settings.MAX_BATCH_UNCOMPRESSED_MB} MB."
        )
    return entries


def _zip_candidate(zip_file: zipfile.ZipFile, entry: zipfile.ZipInfo) -> _Candidate:
    name = entry.filename.replace("\\", "/").rsplit("/", 1)[-1]
    if entry.compress_type not in BOUNDED_COMPRESSION:
        return _Candidate(
            name,
            refusal=UnsupportedArchive(
                f"“{name}” is compressed with a method other than deflate (bzip2 or LZMA, say). Zip it again with "
                "the usual settings."
            ),
        )
    if entry.file_size > upload_size_limit():
        return _Candidate(name, refusal=_entry_too_large(name, entry.file_size))
    return _Candidate(name, open=lambda: _zip_entry_extracted(zip_file, entry, name))


def _entry_too_large(name: str, size: int) -> FileTooLarge:
    return FileTooLarge(
        f"“{name}” is {megabytes(size)} once extracted; images up to {settings.MAX_FILE_SIZE_MB} MB and videos up to "
        f"{settings.MAX_VIDEO_SIZE_MB} MB are accepted."
    )


@contextmanager
def _zip_entry_extracted(zip_file: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str) -> Iterator[UploadedFile]:
    """The entry as an upload in a temporary file (deleted afterwards), holding at most the size it declares."""
    with TemporaryUploadedFile(name, "application/octet-stream", entry.file_size, None) as copy:
        try:
            with zip_file.open(entry) as source:
                _copy_bounded(source, copy, limit=entry.file_size, name=name)
        except EXTRACTION_ERRORS as exc:
            raise CorruptArchive(
                f"“{name}” cannot be extracted: its content does not match the ZIP's header ({exc}). The ZIP is "
                "damaged, or built to inflate far past the size it declares."
            ) from None
        copy.seek(0)
        yield copy


def _copy_bounded(source, target, *, limit: int, name: str) -> None:
    copied = 0
    while chunk := source.read(COPY_CHUNK):
        copied += len(chunk)
        # zipfile already stops at the declared size; this guard does not rely on that.
        if copied > limit:
            raise CorruptArchive(f"“{name}” inflates past the {limit} bytes its header declares: refused.")
        target.write(chunk)


def _batch_submit(
    user: User, candidates: list[_Candidate], *, source: str, name: str, keep_original, admit
) -> BatchSubmission:
    batch = AnalysisBatch.objects.create(owner=user, source=source, name=name[:255])
    files = [
        _batch_file_submit(batch, candidate, user=user, source=source, keep_original=keep_original, admit=admit)
        for candidate in candidates
    ]
    if not any(file.submission for file in files):
        batch.delete()
        return BatchSubmission(batch=None, files=files)
    return BatchSubmission(batch=batch, files=files)


def _batch_file_submit(batch: AnalysisBatch, candidate: _Candidate, *, user, source, keep_original, admit) -> BatchFile:
    try:
        if candidate.refusal is not None:
            raise candidate.refusal
        admit(candidate.name)
        with candidate.open() as file:
            submission = analysis_create(user=user, file=file, source=source, keep_original=keep_original, batch=batch)
    except SubmissionError as exc:
        return BatchFile(candidate.name, error=exc)
    return BatchFile(candidate.name, submission=submission)


@transaction.atomic
def batch_delete(*, batch: AnalysisBatch) -> int:
    """Delete the batch and its analyses; their files go once that is committed (detection.signals). How many
    analyses were deleted."""
    deleted = batch.analyses.all().delete()[1].get(Analysis._meta.label, 0)
    batch.delete()
    return deleted
