"""Reads for the webhooks page: a user's endpoints and their delivery logs."""

from django.db.models import QuerySet

from accounts.models import User
from detection.models import WebhookDelivery, WebhookEndpoint

DELIVERY_LOG_LENGTH = 20


def webhook_endpoint_list(*, user: User) -> list[WebhookEndpoint]:
    """The user's endpoints, newest first, each with `recent_deliveries`: its latest DELIVERY_LOG_LENGTH."""
    endpoints = list(WebhookEndpoint.objects.filter(owner=user).order_by("-created_at", "-id"))
    for endpoint in endpoints:  # at most WEBHOOK_MAX_ENDPOINTS of them: a query each is fine
        endpoint.recent_deliveries = list(webhook_delivery_list(endpoint=endpoint)[:DELIVERY_LOG_LENGTH])
    return endpoints


def webhook_endpoint_get(*, user: User, endpoint_id: int) -> WebhookEndpoint:
    """The user's endpoint; WebhookEndpoint.DoesNotExist for anyone else's, so it reads as a 404."""
    return WebhookEndpoint.objects.get(owner=user, pk=endpoint_id)


def webhook_delivery_list(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return endpoint.deliveries.order_by("-created_at", "-id")
