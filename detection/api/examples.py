"""Examples and error responses for the OpenAPI schema, shared by the endpoints."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from detection.api.serializers import ErrorSerializer
from detection.models import Analysis

ANALYSIS_ID = "8d4f2c6e-1b7a-4e0f-9a53-2f6d8c1e7b90"
BASE = "https://detector.example.com/api/v1"

_DONE = {
    "id": ANALYSIS_ID,
    "url": f"{BASE}/analyses/{ANALYSIS_ID}/",
    "status": "done",
    "error_message": None,
    "source": "api",
    "file_name": "portrait.jpg",
    "media_type": "image/jpeg",
    "file_size": 482113,
    "width": 1024,
    "height": 768,
    "sha256": "5f2b7c1d9e8a4b3c6d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e",
    "keep_original": True,
    "created_at": "2026-01-14T09:30:12.512Z",
    "started_at": "2026-01-14T09:30:12.601Z",
    "finished_at": "2026-01-14T09:30:13.402Z",
    "result": {
        "label": "fake",
        "verdict": "fake",
        "probability_fake": 0.93,
        "confidence": 0.93,
        "threshold": 0.5,
        "model_version": "resnet50-faces 2026.01",
    },
    "stability": {
        "stable": True,
        "spread": 0.05,
        "variants": {"jpeg85": 0.93, "jpeg70": 0.91, "resize75": 0.94, "crop4": 0.89},
        "flips": [],
        "max_spread": 0.15,
    },
    "timings": {"decode_ms": 11.2, "inference_ms": 402.7, "heatmap_ms": 96.3, "total_ms": 561.0},
    "images": {kind: f"{BASE}/analyses/{ANALYSIS_ID}/images/{kind}/" for kind in Analysis.PICTURES},
}
_QUEUED = {
    **_DONE,
    "status": "queued",
    "started_at": None,
    "finished_at": None,
    "result": None,
    "stability": None,
    "timings": {"decode_ms": None, "inference_ms": None, "heatmap_ms": None, "total_ms": None},
    "images": {"original": _DONE["images"]["original"], "thumbnail": None, "heatmap": None, "overlay": None},
}
_MODEL = {
    "name": "resnet50-faces",
    "version": "2026.01",
    "architecture": "resnet50",
    "input_size": 224,
    "threshold": 0.5,
    "metrics": {"accuracy": 0.94, "roc_auc": 0.981, "f1": 0.939},
    "description": "Detects face swaps and GAN-generated faces in photographs.",
    "is_active": True,
    "activated_at": "2026-01-10T12:00:00Z",
    "created_at": "2026-01-10T11:52:40Z",
}

ANALYSIS_DONE = OpenApiExample("A finished analysis", value=_DONE, response_only=True)
ANALYSIS_LIST = OpenApiExample(
    "A page of analyses",
    value=_DONE,
    response_only=True,
)
SUBMISSION_QUEUED = OpenApiExample(
    "Queued", value={**_QUEUED, "reused": False}, response_only=True, status_codes=["202"]
)
SUBMISSION_DONE = OpenApiExample(
    "Finished while waiting", value={**_DONE, "reused": False}, response_only=True, status_codes=["201"]
)
QUEUE_UNAVAILABLE = OpenApiExample(
    "Queue unavailable",
    value={
        "error": {
            "code": "queue_unavailable",
            "message": "The image is stored, but the analysis queue cannot be reached right now. It will run "
            "automatically once the queue is back; poll the analysis URL for the result.",
            "field": None,
        },
        "analysis": {**_QUEUED, "reused": False},
    },
    response_only=True,
    status_codes=["503"],
)
MODEL = OpenApiExample("The active model", value=_MODEL, response_only=True)
MODEL_LIST = OpenApiExample("Models", value=_MODEL, response_only=True)

# One representative error per status, as the API sends it.
_ERRORS = {
    400: ("Bad input", "empty_file", "“photo.jpg” is empty (0 bytes).", "file"),
    401: (
        "No or revoked token",
        "invalid_token",
        "This API token is unknown or has been revoked. Create a new one on your profile page.",
        None,
    ),
    403: ("CSRF check failed (browser sessions)", "permission_denied", "CSRF Failed: CSRF token missing.", None),
    404: ("Not found", "not_found", "There is no analysis with this ID among yours.", None),
    411: (
        "No size",
        "length_required",
        "The upload did not say how large it is (no Content-Length); send it with its size.",
        "file",
    ),
    413: ("Too large", "file_too_large", "“scan.png” is 31.5 MB; files up to 16 MB are accepted.", "file"),
    415: (
        "Not a supported image",
        "unsupported_media_type",
        "“clip.gif” is a GIF image; only JPEG, PNG or WebP images are accepted.",
        "file",
    ),
    422: (
        "Idempotency key reused",
        "idempotency_key_reused",
        "This Idempotency-Key was already used for another file. Use a new key for each new upload.",
        "Idempotency-Key",
    ),
    429: ("Throttled", "throttled", "Too many requests. Try again in 12 seconds.", None),
    503: (
        "No active model",
        "no_active_model",
        "No detector model is active yet, so images cannot be analysed. Please try again later.",
        None,
    ),
}
_DESCRIPTIONS = {
    400: "A bad parameter, or a missing, empty or damaged file, or an image too small or too large to judge "
    "(`field` names it).",
    401: "No token, or an unknown or revoked one.",
    403: "A browser session's request without its CSRF token.",
    404: "No such object among yours (another user's ID reads as not found), or no such page.",
    411: "The upload did not declare its size (a chunked body); refused before it is read.",
    413: "The upload is larger than the size limit; refused before the body is read.",
    415: "The file is not a JPEG, PNG or WebP image.",
    422: "The Idempotency-Key was already used with another file.",
    429: "Too many requests; the `Retry-After` header says how many seconds to wait.",
    503: "The service cannot take the work right now.",
}


def error_example(code: int) -> OpenApiExample:
    summary, error_code, message, field = _ERRORS[code]
    return OpenApiExample(
        summary,
        value={"error": {"code": error_code, "message": message, "field": field}},
        response_only=True,
        status_codes=[str(code)],
    )


def error_responses(*codes: int, media_type: str | None = None) -> dict:
    """Documented error responses; with media_type, keyed (status, media type) for views that also serve images."""
    return {
        (code, media_type) if media_type else code: OpenApiResponse(
            ErrorSerializer, description=_DESCRIPTIONS[code], examples=[error_example(code)]
        )
        for code in codes
    }
