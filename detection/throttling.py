"""Request limits per API token (or per signed-in user for browser sessions), read from the settings."""

import logging

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiToken

logger = logging.getLogger(__name__)


class ApiRateThrottle(SimpleRateThrottle):
    """Every API request counts against API_THROTTLE_RATE."""

    scope = "api"
    setting_name = "API_THROTTLE_RATE"

    def get_rate(self) -> str | None:
        # Read at every request rather than once at import, so the settings (and tests) decide.
        return getattr(settings, self.setting_name) or None

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            return None  # anonymous requests are refused before throttling
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception:  # the shared cache is down: serving requests matters more than counting them
            logger.warning("API throttling skipped: the cache cannot be reached", exc_info=True)
            return True


class UploadRateThrottle(ApiRateThrottle):
    """Uploads (which cost an analysis each) also count against API_UPLOAD_THROTTLE_RATE."""

    scope = "upload"
    setting_name = "API_UPLOAD_THROTTLE_RATE"
