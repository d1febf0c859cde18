"""Problems with a submission that the person who sent it can understand and act on.

Each carries a stable `code` for the API, the HTTP status that fits, and a message written for people. The web
pages show the message next to the file; the API returns {"error": {"code", "message", "field"}}.
"""


class SubmissionError(Exception):
    code = "invalid"
    status = 400

    def __init__(self, message: str, *, field: str | None = "file"):
        super().__init__(message)
        self.message = message
        self.field = field


class MissingFile(SubmissionError):
    code = "missing_file"


class EmptyFile(SubmissionError):
    code = "empty_file"


class CorruptImage(SubmissionError):
    code = "corrupt_image"


class CorruptVideo(SubmissionError):
    code = "corrupt_video"


class VideoTooLong(SubmissionError):
    """Longer than MAX_VIDEO_SECONDS."""

    code = "video_too_long"


class ImageTooSmall(SubmissionError):
    """Too few pixels, or too elongated, for any verdict to mean something."""

    code = "image_too_small"


class ImageTooLarge(SubmissionError):
    """More pixels than may be decoded (MAX_IMAGE_MEGAPIXELS), whatever the file's size: e.g. a decompression bomb."""

    code = "image_too_large"


class FileTooLarge(SubmissionError):
    code = "file_too_large"
    status = 413


class UnsupportedMediaType(SubmissionError):
    code = "unsupported_media_type"
    status = 415


class TooManyUploads(SubmissionError):
    """Over the per-user upload limit (UPLOAD_THROTTLE_RATE)."""

    code = "throttled"
    status = 429


class IdempotencyKeyReused(SubmissionError):
    """An Idempotency-Key sent again with another file than the first time."""

    code = "idempotency_key_reused"
    status = 422


class TooManyFiles(SubmissionError):
    """More files in one batch (or entries in its ZIP) than MAX_FILES_PER_BATCH."""

    code = "too_many_files"


class CorruptArchive(SubmissionError):
    """A ZIP that cannot be read, or an entry whose content does not match its header (damaged, or a zip bomb)."""

    code = "corrupt_archive"


class EncryptedArchive(SubmissionError):
    code = "encrypted_archive"


class UnsupportedArchive(SubmissionError):
    """A ZIP entry compressed with a method other than deflate or none (bzip2, LZMA…), whose output cannot be bounded
    as it is read."""

    code = "unsupported_archive"


class ArchiveTooLarge(SubmissionError):
    """A ZIP whose entries add up to more than MAX_BATCH_UNCOMPRESSED_MB once extracted, or itself larger."""

    code = "archive_too_large"
    status = 413


class ServiceUnavailable(SubmissionError):
    """The product cannot take the work right now; nothing is wrong with the file."""

    code = "service_unavailable"
    status = 503

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, field=field)


class NoActiveModel(ServiceUnavailable):
    code = "no_active_model"


class StorageUnavailable(ServiceUnavailable):
    code = "storage_unavailable"


class ModelUnusable(Exception):
    """A detector model whose weights cannot be had, checked or loaded: the message says why, and is recorded on
    the model (its status or its last load error)."""


class AnalysisFailure(Exception):
    """An analysis that cannot succeed: the message is stored on it and shown to its owner."""


class UnsafeSourceURL(SubmissionError):
    """A URL to analyse that may not be fetched: not http(s), or leading to a private network."""

    code = "unsafe_url"

    def __init__(self, message: str, *, field: str | None = "url"):
        super().__init__(message, field=field)


class SourceURLFetchFailed(SubmissionError):
    """A URL to analyse that could not be fetched: unreachable, too slow, or not answering 2xx."""

    code = "url_fetch_failed"

    def __init__(self, message: str, *, field: str | None = "url"):
        super().__init__(message, field=field)


class FileAndURL(SubmissionError):
    """Both a file and a URL to analyse: only one may be sent."""

    code = "file_and_url"


class FlagRefused(SubmissionError):
    """A report on a verdict that cannot be taken (an unfinished analysis, a label the verdict already gives)."""

    code = "flag_refused"


class FlagFinal(SubmissionError):
    """The flag was reviewed: staff's decision stands."""

    code = "flag_reviewed"
    status = 409
