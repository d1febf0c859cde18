"""Analyses of a file fetched from a URL: the bytes come through the SSRF guard (detection.outbound) with the size
cap of uploads, then go through the very checks and steps of an upload (analyses.analysis_create)."""

from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import User
from detection import outbound
from detection.errors import FileAndURL, MissingFile, SourceURLFetchFailed, SubmissionError, UnsafeSourceURL
from detection.models import Analysis
from detection.services.analyses import ACCEPTED_UPLOADS, Submission, analysis_create, file_too_large, upload_size_limit

URL_MAX_LENGTH = Analysis._meta.get_field("source_url").max_length


def analysis_create_from_source(
    *, user: User, file, url: str, source: str, keep_original: bool | None = None, idempotency_key: str = ""
) -> Submission:
    """Submit exactly one of an uploaded file or a URL to fetch the file from."""
    options = {"user": user, "source": source, "keep_original": keep_original, "idempotency_key": idempotency_key}
    if file is not None and url:
        raise FileAndURL("Send either a file or a URL to fetch it from, not both.", field=None)
    if url:
        return analysis_create_from_url(url=url, **options)
    if file is None:
        raise MissingFile(f"Nothing to analyse was sent: send {ACCEPTED_UPLOADS} as “file”, or its address as “url”.")
    return analysis_create(file=file, **options)


def analysis_create_from_url(
    *, user: User, url: str, source: str, keep_original: bool | None = None, idempotency_key: str = ""
) -> Submission:
    """Fetch the file at the URL and submit it as an upload named after the URL's last path segment; the analysis
    records the URL (an earlier analysis of the same content answering it keeps its own record)."""
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        raise SubmissionError(f"The address is longer than {URL_MAX_LENGTH} characters.", field="url")
    name = _file_name(url)
    file = SimpleUploadedFile(name, _fetch(url, name), content_type="application/octet-stream")
    return analysis_create(
        user=user,
        file=file,
        source=source,
        keep_original=keep_original,
        idempotency_key=idempotency_key,
        source_url=url,
    )


def _file_name(url: str) -> str:
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or "download"


def _fetch(url: str, name: str) -> bytes:
    """The body of a 2xx answer, within the largest upload size; SubmissionError says why not."""
    try:
        fetched = outbound.fetch(url, max_bytes=upload_size_limit(), timeout=settings.URL_FETCH_TIMEOUT_SECONDS)
    except outbound.UnsafeURL as exc:
        raise UnsafeSourceURL(exc.message) from None
    except outbound.ResponseTooLarge:
        raise file_too_large(name, None) from None
    except outbound.FetchFailed as exc:
        raise SourceURLFetchFailed(f"The file could not be fetched: {exc.message}") from None
    if not 200 <= fetched.status < 300:
        raise SourceURLFetchFailed(
            f"The file could not be fetched: the server answered HTTP {fetched.status} {_phrase(fetched.status)}."
        )
    return fetched.body


def _phrase(status: int) -> str:
    try:
        return f"({HTTPStatus(status).phrase})"
    except ValueError:
        return ""
