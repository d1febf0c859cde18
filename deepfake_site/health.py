"""GET /health: the state of the database, the broker (when configured) and the detector model, as JSON.

200 when every check passes, 503 when any fails, so load balancers and container health checks can act on it.
Anyone gets each check's status; the details (database vendor, model name and version, error messages) go to
staff users and to probes that send `Authorization: Bearer <HEALTH_TOKEN>`, and to no one else.
"""

import hmac

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from deepfake_site.celery import app as celery_app
from detection import engine


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure to reach the database is a failed check, never a 500
        return {"status": "error", "detail": f"Database unreachable: {exc.__class__.__name__}: {exc}".strip()}
    return {"status": "ok", "vendor": connection.vendor}


def check_broker() -> dict:
    if not settings.CELERY_BROKER_URL:
        return {"status": "disabled", "detail": "No CELERY_BROKER_URL: analyses run inside the web process."}
    try:
        with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=settings.HEALTH_BROKER_TIMEOUT)
            transport = conn.transport_cls
    except Exception as exc:
        return {"status": "error", "detail": f"Broker unreachable: {exc.__class__.__name__}: {exc}".strip()}
    return {"status": "ok", "transport": transport}


def check_model() -> dict:
    from detection.selectors import detector_model_get_active

    active = detector_model_get_active()
    if active is None:
        return {
            "status": "error",
            "detail": "No detector model is active: run `manage.py ensure_active_model` or activate one in the admin.",
        }
    state = {"name": active.name, "version": active.version, "architecture": active.architecture}
    if active.load_error:
        return {"status": "error", **state, "detail": active.load_error}
    return {"status": "ok", **state, "loaded_in_this_process": engine.loaded_model_key() == active.cache_key}


@never_cache
@require_GET
def health(request):
    checks = {"database": check_database(), "broker": check_broker()}
    # Without a database there is no telling which model is active.
    checks["model"] = check_model() if checks["database"]["status"] == "ok" else {"status": "unknown"}
    healthy = all(check["status"] != "error" for check in checks.values())
    if not may_see_details(request):
        checks = {name: {"status": check["status"]} for name, check in checks.items()}
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)


def may_see_details(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.HEALTH_TOKEN
    sent = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
