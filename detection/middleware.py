from django.conf import settings

from detection.api.errors import error_json_response
from detection.services import megabytes

# Room for the multipart boundaries, part headers and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024


class ApiUploadSizeLimitMiddleware:
    """Refuse API requests whose declared size exceeds the upload limit before a byte of the body is read.

    The file-level check in the services catches the rest; this one keeps an oversized body out of memory and off
    the disk entirely.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith("/api/"):
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > settings.MAX_FILE_SIZE + MULTIPART_OVERHEAD:
                return error_json_response(
                    413,
                    "file_too_large",
                    f"The request is {megabytes(declared)}; files up to {settings.MAX_FILE_SIZE_MB} MB are accepted.",
                    "file",
                )
        return self.get_response(request)
