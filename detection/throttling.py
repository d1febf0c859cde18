"""Request limits per user, read from the settings: API requests (API_THROTTLE_RATE), and uploads counted across
the web pages, the API and every token (UPLOAD_THROTTLE_RATE, one per file)."""

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from detection.errors import TooManyUploads

logger = logging.getLogger(__name__)


class ApiRateThrottle(SimpleRateThrottle):
    """Every API request counts against API_THROTTLE_RATE, per user: a second token adds nothing."""

    scope = "api"
    setting_name = "API_THROTTLE_RATE"

    def get_rate(self) -> str | None:
        # Read at every request rather than once at import, so the settings (and tests) decide.
        return getattr(settings, self.setting_name) or None

    def get_cache_key(self, request, view) -> str | None:
        if not (request.user and request.user.is_authenticated):
            return None  # anonymous requests are refused before throttling
        return self.cache_format % {"scope": self.scope, "ident": f"user-{request.user.pk}"}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the shared cache is down: serving requests matters more than counting them
            logger.warning("Request limits skipped: the cache cannot be reached", exc_info=True)
            return True


class UploadRateThrottle(ApiRateThrottle):
    """Uploads (which cost an analysis each) count against UPLOAD_THROTTLE_RATE, per user, whichever way they come:
    the API asks once per request, the upload page once per file."""

    scope = "upload"
    setting_name = "UPLOAD_THROTTLE_RATE"


def upload_admit(request, name: str, throttle: UploadRateThrottle) -> None:
    """Count one file against the user's upload limit, as each file of the upload page and of an API batch is;
    TooManyUploads once it is over."""
    if not throttle.allow_request(request, None):
        raise TooManyUploads(
            f"Too many uploads: “{name}” was not analysed. Please wait {throttle.wait():.0f} seconds before sending "
            "more."
        )
