"""`Authorization: Bearer <token>` with the personal API tokens from the profile page."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed

from accounts.services import api_token_authenticate


class BearerTokenAuthentication(BaseAuthentication):
    """Authenticates with a personal API token; request.auth is the ApiToken, whose last-used time is refreshed."""

    keyword = b"bearer"

    def authenticate(self, request):
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None  # not ours: session authentication may still apply
        if len(parts) != 2:
            raise AuthenticationFailed(
                "The Authorization header must be “Bearer <token>”, with the token and nothing else after “Bearer”.",
                code="invalid_token",
            )
        try:
            raw_token = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raw_token = None
        token = api_token_authenticate(raw_token=raw_token) if raw_token else None
        if token is None:
            raise AuthenticationFailed(
                "This API token is unknown or has been revoked. Create a new one on your profile page.",
                code="invalid_token",
            )
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Naming the scheme makes DRF answer 401 (not 403) when credentials are missing or wrong.
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token from your profile page (or `manage.py create_api_token`), "
            "sent as `Authorization: Bearer dfd_…`.",
        }
