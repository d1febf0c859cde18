"""GET /health: the state of the database, the broker (when configured) and the detector model, as JSON.

200 when every check passes, 503 when any fails, so load balancers and container health checks can act on it.
"""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from deepfake_site.celery import app as celery_app


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
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=settings.HEALTH_BROKER_TIMEOUT)
    except Exception as exc:
        return {"status": "error", "detail": f"Broker unreachable: {exc.__class__.__name__}: {exc}".strip()}
    return {"status": "ok", "transport": celery_app.connection_for_write().transport_cls}


@never_cache
@require_GET
def health(request):
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(check["status"] != "error" for check in checks.values())
    return JsonResponse({"status": "ok" if healthy else "error", "checks": checks}, status=200 if healthy else 503)
