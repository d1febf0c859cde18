"""Webhooks: users register endpoints, and every analysis of theirs that finishes (done or failed) is POSTed to each
active one, signed with the endpoint's secret, through the SSRF guard (detection.outbound). A delivery that gets no
2xx is tried again later (the Celery task webhook_delivery_send_task schedules it), every attempt noted on
the delivery.

The signature: X-Webhook-Signature: sha256=<hex HMAC-SHA256(secret, f"{X-Webhook-Timestamp}.{body}")>.
"""

import hashlib
import hmac
import json
import logging
import secrets
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from detection import dispatch, outbound
from detection.models import Analysis, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

EVENT_ANALYSIS_FINISHED = "analysis.finished"
EVENT_PING = "ping"
SECRET_MIN_LENGTH = 16
RESPONSE_MAX_BYTES = 64 * 1024  # a receiver's answer is not used: only its status counts


def webhook_endpoint_create(
    *, user: User, url: str, description: str = "", secret: str = ""
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; answers it with its secret (generated unless given), which is shown to the user once.
    ValidationError (by field) for an unsafe URL, a short secret or one endpoint too many."""
    if WebhookEndpoint.objects.filter(owner=user).count() >= settings.WEBHOOK_MAX_ENDPOINTS:
        raise ValidationError(
            f"You already have {settings.WEBHOOK_MAX_ENDPOINTS} webhook endpoints, the most allowed. Delete one to "
            "add another."
        )
    try:
        outbound.url_check(url)
    except outbound.UnsafeURL as exc:
        raise ValidationError({"url": exc.message}) from None
    if secret and len(secret) < SECRET_MIN_LENGTH:
        raise ValidationError(
            {"secret": f"Use a secret of at least {SECRET_MIN_LENGTH} characters, or leave it empty."}
        )
    secret = secret or secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint.objects.create(owner=user, url=url, secret=secret, description=description)
    return endpoint, secret


def webhook_endpoint_set_active(*, endpoint: WebhookEndpoint, is_active: bool) -> WebhookEndpoint:
    """Enable or disable an endpoint; a disabled one gets no new deliveries, and its pending retries stop (the log
    says so)."""
    with transaction.atomic():
        endpoint.is_active = is_active
        endpoint.save(update_fields=["is_active"])
        if not is_active:
            for delivery in endpoint.deliveries.select_for_update().filter(status=WebhookDelivery.Status.PENDING):
                delivery.give_up("the endpoint was disabled before it was delivered")
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()  # its delivery log goes with it


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}.{body}" with the endpoint's secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def webhook_deliveries_queue(*, analysis_id: int) -> None:
    """Once the finished analysis is committed, create an analysis.finished delivery for each active endpoint of its
    owner and send them off."""
    transaction.on_commit(lambda: webhook_deliveries_create(analysis_id=analysis_id), robust=True)


def webhook_deliveries_create(*, analysis_id: int) -> list[WebhookDelivery]:
    # Most owners have no endpoint: one query then, on every finished analysis.
    endpoints = list(WebhookEndpoint.objects.filter(owner__analyses__pk=analysis_id, is_active=True))
    if not endpoints:
        return []
    analysis = Analysis.objects.select_related("detector_model").prefetch_related("faces", "frames").get(pk=analysis_id)
    payload = {
        "event": EVENT_ANALYSIS_FINISHED,
        "created_at": timezone.now().isoformat(),
        "analysis": _analysis_payload(analysis),
    }
    deliveries = [
        WebhookDelivery.objects.create(
            endpoint=endpoint, analysis=analysis, event=EVENT_ANALYSIS_FINISHED, payload=payload
        )
        for endpoint in endpoints
    ]
    for delivery in deliveries:
        dispatch.send(dispatch.WEBHOOK, delivery.pk)
    return deliveries


def _analysis_payload(analysis: Analysis) -> dict:
    """The analysis as the API's detail shows it (its links relative to the site: there is no request to name it)."""
    from detection.api.serializers import AnalysisDetailSerializer  # the API's shape; it imports nothing of services

    return json.loads(json.dumps(AnalysisDetailSerializer(analysis).data, cls=DjangoJSONEncoder))


def webhook_delivery_attempt(*, delivery_id: int) -> float | None:
    """POST a pending delivery once and note the outcome; the seconds to wait before trying again, or None when
    there is nothing more to do (delivered, out of attempts, gone, or its endpoint disabled)."""
    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery_id, status=WebhookDelivery.Status.PENDING, endpoint__is_active=True)
        .first()
    )
    if delivery is None:
        return None
    response_status, error = _post(delivery)
    if delivery.record_attempt(
        response_status=response_status, error=error, max_attempts=settings.WEBHOOK_MAX_ATTEMPTS
    ):
        return webhook_retry_delay(attempts=delivery.attempts)
    return None


def webhook_retry_delay(*, attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: WEBHOOK_RETRY_DELAYS, its last value repeating."""
    delays = settings.WEBHOOK_RETRY_DELAYS
    return delays[min(attempts, len(delays)) - 1]


def webhook_ping(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a signed ping event to the endpoint now, once (no retries), and answer its delivery with the outcome."""
    payload = {
        "event": EVENT_PING,
        "created_at": timezone.now().isoformat(),
        "message": "A test event from your webhook settings: answer 2xx to acknowledge it.",
    }
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=EVENT_PING, payload=payload)
    response_status, error = _post(delivery)
    delivery.record_attempt(response_status=response_status, error=error, max_attempts=1)
    return delivery


def _post(delivery: WebhookDelivery) -> tuple[int | None, str]:
    """(the receiver's status, "") or (None, why nothing was received)."""
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    signature = webhook_signature(secret=delivery.endpoint.secret, timestamp=timestamp, body=body)
    headers = {
        "X-Webhook-Timestamp": timestamp,
        "X-Webhook-Signature": f"sha256={signature}",
        "X-Webhook-Event": delivery.event,
        "X-Webhook-Delivery": str(delivery.pk),
    }
    try:
        status = outbound.post_json(
            delivery.endpoint.url,
            body,
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            max_response_bytes=RESPONSE_MAX_BYTES,
        )
    except (outbound.UnsafeURL, outbound.FetchFailed) as exc:
        logger.info("Webhook delivery %s to %s failed: %s", delivery.pk, delivery.endpoint.url, exc.message)
        return None, exc.message
    return status, ""
