"""Upload bodies are bounded before they are read: a request declaring more than an upload path accepts is answered
413 without reading a byte of it, and one that declares no size at all (chunked) 411. Inside an accepted body,
UploadedFileSizeLimit stops storing any file past the larger of the image and video limits, so the check in the
services never sees it whole; the services then hold each kind to its own limit.
"""

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse

from detection.api.errors import error_json_response
from detection.services import megabytes, upload_size_limit
from detection.services.batches import batch_body_limit, batch_file_size_limit

# Room for the multipart boundaries, part headers and the small form fields around the files.
MULTIPART_OVERHEAD = 64 * 1024


class UploadSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = self.body_limit(request)
        if limit is None:
            return self.get_response(request)
        declared = request.META.get("CONTENT_LENGTH")
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        if self.is_upload(request) and (chunked or not declared):
            return self.refuse(
                request,
                411,
                "length_required",
                "The upload did not say how large it is (no Content-Length); send it with its size, as browsers, curl "
                "and HTTP libraries do by default.",
            )
        try:
            size = int(declared or 0)
        except ValueError:
            size = limit + 1
        if size > limit:
            return self.refuse(
                request,
                413,
                "file_too_large",
                f"The request is {megabytes(size)}; images up to {settings.MAX_FILE_SIZE_MB} MB and videos up to "
                f"{settings.MAX_VIDEO_SIZE_MB} MB are accepted" + self.files_per_request(request),
            )
        request.upload_handlers.insert(0, UploadedFileSizeLimit(request))
        return self.get_response(request)

    @staticmethod
    def is_upload(request) -> bool:
        return request.method == "POST" and request.path_info in {
            reverse("api:analysis-list"),
            reverse("api:batch-list"),
            reverse("detection:upload"),
        }

    @staticmethod
    def body_limit(request) -> int | None:
        """The largest body this request may carry: the upload page's, or any API request's (only uploads have a
        body there); None for everything else."""
        if request.path_info == reverse("detection:upload"):
            return max(settings.MAX_FILE_SIZE * settings.MAX_FILES_PER_UPLOAD, upload_size_limit()) + MULTIPART_OVERHEAD
        if request.path_info == reverse("api:batch-list"):
            return batch_body_limit() + MULTIPART_OVERHEAD
        if request.path_info.startswith("/api/"):
            return upload_size_limit() + MULTIPART_OVERHEAD
        return None

    @staticmethod
    def file_size_limit(request) -> int:
        """The largest single file the request may carry: an API batch's may be its ZIP."""
        return batch_file_size_limit() if request.path_info == reverse("api:batch-list") else upload_size_limit()

    @staticmethod
    def files_per_request(request) -> str:
        """The end of the 413 message: how many files the path takes at once, where it takes several."""
        if request.path_info == reverse("api:batch-list"):
            return (
                f", {settings.MAX_FILES_PER_BATCH} per batch, or one ZIP of up to "
                f"{settings.MAX_BATCH_UNCOMPRESSED_MB} MB."
            )
        return "." if request.path_info.startswith("/api/") else f", {settings.MAX_FILES_PER_UPLOAD} at a time."

    @staticmethod
    def refuse(request, status: int, code: str, message: str):
        if request.path_info.startswith("/api/"):
            return error_json_response(status, code, message, "file")
        # A page of its own, without the site's layout: this runs before sessions and the user are known.
        page = render_to_string("detection/upload_refused.html", {"message": message, "upload_url": request.path})
        return HttpResponse(page, status=status)


class UploadedFileSizeLimit(FileUploadHandler):
    """Stops storing a file once it passes the path's file limit (UploadSizeLimitMiddleware.file_size_limit: an
    upload's services.upload_size_limit, or a batch's, which may be a ZIP). The request remembers it
    in `oversized_uploads`, a dict {position among the files sent in its field: file name}, so a page can say which
    file was too large, in order."""

    def __init__(self, request):
        super().__init__(request)
        request.oversized_uploads = {}
        self.limit = UploadSizeLimitMiddleware.file_size_limit(request)
        self.received = 0
        self.files_per_field: dict[str, int] = {}

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.received = 0
        self.position = self.files_per_field.get(field_name, 0)
        self.files_per_field[field_name] = self.position + 1

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.oversized_uploads[self.position] = self.file_name
            raise SkipFile
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers store the file
