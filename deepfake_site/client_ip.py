"""The client's address as the limits count it: the peer's, or the one NUM_PROXIES trusted proxies put in
X-Forwarded-For (each proxy appends the address it received the request from, so the client's is NUM_PROXIES
from the right; anything further left was written by the client and is not trusted)."""

from django.conf import settings


def client_ip(request) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    if not settings.NUM_PROXIES:
        return peer
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < settings.NUM_PROXIES:
        return peer  # the request did not come through all the proxies: count where it came from
    return forwarded[-settings.NUM_PROXIES]
