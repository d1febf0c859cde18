"""One error shape for every API failure: {"error": {"code": ..., "message": ..., "field": ...}}.

Codes are stable identifiers clients can branch on; messages are written for the person reading them.
"""

import logging

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from detection.errors import SubmissionError

logger = logging.getLogger(__name__)

TOKEN_HINT = "Send your API token as the header “Authorization: Bearer <token>”."  # noqa: S105 (a hint, no secret)

# Clearer words than DRF's defaults for the failures every endpoint shares.
MESSAGES = {
    exceptions.NotAuthenticated: f"Authentication is required. {TOKEN_HINT}",
    exceptions.NotFound: "Nothing was found at this address.",
}
CODES = {
    # DRF calls an unreadable request body "unsupported_media_type"; that code means an unsupported image here.
    exceptions.UnsupportedMediaType: "unsupported_content_type",
}


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "field": field}}


def error_json_response(http_status: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    """The error shape outside DRF views (middleware, URL fallbacks)."""
    return JsonResponse(error_body(code, message, field), status=http_status)


def _first_validation_error(detail, field: str | None = None) -> tuple[str | None, str]:
    """The first (field, message) of a ValidationError's nested detail."""
    if isinstance(detail, dict):
        key, value = next(iter(detail.items()))
        name = None if key in ("non_field_errors", "detail") else (key if field is None else f"{field}.{key}")
        return _first_validation_error(value, name if name is not None else field)
    if isinstance(detail, list) and detail:
        return _first_validation_error(detail[0], field)
    return field, str(detail)


def api_exception_handler(exc, context):
    if isinstance(exc, SubmissionError):
        return Response(error_body(exc.code, exc.message, exc.field), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        return Response(
            error_body("request_too_large", "The request's form fields are too large."),
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_body("bad_request", f"The request was refused: {exc}"), status=400)

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.error("Unexpected error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(
            error_body("server_error", "Something went wrong on our side. Please try again later."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_validation_error(exc.detail)
        response.data = error_body("invalid_parameter", message, field)
        return response

    code = CODES.get(type(exc)) or _detail_code(exc)
    message = str(exc.detail)
    if message == str(exc.default_detail):  # DRF's generic words: say it better where we can
        message = MESSAGES.get(type(exc), message)
    if isinstance(exc, exceptions.UnsupportedMediaType):
        # Only uploads read a request body.
        message = f"{message} Send the image as multipart/form-data, in the form field “file”."
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, exc.wait or 1)
        response["Retry-After"] = str(wait)
        message = f"Too many requests. Try again in {wait} second{'s' if wait != 1 else ''}."
    response.data = error_body(code, message)
    return response


def _detail_code(exc) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code
