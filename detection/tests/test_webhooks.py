"""Webhooks: registering endpoints on the webhooks page, signed deliveries of finished analyses to a real HTTP server
on 127.0.0.1, retries, the delivery log and the "Send test" button."""

import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from detection import services, tasks
from detection.models import Analysis, WebhookDelivery, WebhookEndpoint
from detection.services import webhooks
from detection.tests.factories import AnalysisFactory
from detection.tests.http_servers import Answer, LocalServer


@pytest.fixture
def local_network(settings):
    """The test servers are on 127.0.0.1, which production refuses; retries wait 10 ms instead of minutes."""
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = True
    settings.WEBHOOK_RETRY_DELAYS = [0.01]


SECRET = "a-test-secret-of-enough-length"


def endpoint_for(user, url: str, secret: str = SECRET) -> WebhookEndpoint:
    return webhooks.webhook_endpoint_create(user=user, url=url, secret=secret)[0]


def verify(request, secret: str) -> dict:
    """What a receiver does: check the signature and the timestamp's age, then read the event."""
    timestamp = request.headers["X-Webhook-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Webhook-Signature"], f"sha256={expected}")
    assert abs(time.time() - int(timestamp)) < 300
    return json.loads(request.body)


# --- Deliveries --------------------------------------------------------------------------------------------------


def test_a_finished_analysis_is_posted_signed_to_each_active_endpoint(
    db, local_network, user, active_model, run_inline, upload
):
    with LocalServer(Answer(204)) as server, LocalServer(Answer(200)) as disabled_server:
        endpoint = endpoint_for(user, server.url("/hook"))
        disabled = endpoint_for(user, disabled_server.url("/hook"))
        webhooks.webhook_endpoint_set_active(endpoint=disabled, is_active=False)
        with run_inline():
            submission = services.analysis_create(user=user, file=upload(), source=Analysis.Source.WEB)

    assert disabled_server.received == []
    [request] = server.received
    event = verify(request, endpoint.secret)
    assert (request.method, request.path, request.headers["X-Webhook-Event"]) == ("POST", "/hook", "analysis.finished")
    assert event["event"] == "analysis.finished"
    analysis = event["analysis"]
    assert analysis["id"] == str(submission.analysis.public_id)
    assert analysis["status"] == "done" and analysis["result"]["verdict"] in {"real", "fake", "uncertain"}
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert request.headers["X-Webhook-Delivery"] == str(delivery.pk)
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 204)
    assert delivery.analysis_id == submission.analysis.pk


def test_a_failed_analysis_is_posted_too(db, local_network, user, run_inline):
    stuck = AnalysisFactory(
        owner=user, status=Analysis.Status.RUNNING, started_at=timezone.now() - timedelta(days=1), attempts=99
    )
    with LocalServer(Answer(200)) as server:
        endpoint = endpoint_for(user, server.url())
        with run_inline():
            services.analysis_sweep()
    event = verify(server.received[0], endpoint.secret)
    assert event["analysis"]["id"] == str(stuck.public_id) and event["analysis"]["status"] == "failed"


def test_a_delivery_answered_500_is_retried_until_it_succeeds(db, local_network, user):
    with LocalServer(Answer(500, b"oops"), Answer(200)) as server:
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint_for(user, server.url()), event="analysis.finished", payload={"event": "x"}
        )
        tasks.webhook_delivery_send_task.run(delivery.pk)  # as the in-process runner's thread runs it
    delivery.refresh_from_db()
    assert len(server.received) == 2
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 2, 200)
    assert delivery.error.endswith("attempt 1: the receiver answered HTTP 500")


def test_through_celery_a_retry_is_a_task_retry(db, local_network, user):
    with LocalServer(Answer(503), Answer(503), Answer(201)) as server:
        delivery = WebhookDelivery.objects.create(endpoint=endpoint_for(user, server.url()), event="e", payload={})
        tasks.webhook_delivery_send_task.apply(args=[delivery.pk])  # eager: Celery runs each retry at once
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(server.received)) == ("succeeded", 3, 3)


def test_a_delivery_fails_for_good_after_its_last_attempt(db, local_network, settings, user):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with LocalServer(Answer(500)) as server:
        delivery = WebhookDelivery.objects.create(endpoint=endpoint_for(user, server.url()), event="e", payload={})
        tasks.webhook_delivery_send_task.run(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(server.received)) == ("failed", 3, 3)
    assert len(delivery.error.splitlines()) == 3 and delivery.last_error.endswith(
        "attempt 3: the receiver answered HTTP 500"
    )


def test_the_retry_schedule(settings):
    settings.WEBHOOK_RETRY_DELAYS = [30, 120, 600, 1800, 7200]
    assert [webhooks.webhook_retry_delay(attempts=n) for n in range(1, 8)] == [30, 120, 600, 1800, 7200, 7200, 7200]


def test_an_unreachable_receiver_is_recorded_as_the_reason(db, local_network, settings, user):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    server = LocalServer()  # never started: the port is closed once it is let go
    url = server.url()
    server.httpd.server_close()
    delivery = WebhookDelivery.objects.create(endpoint=endpoint_for(user, url), event="e", payload={})
    tasks.webhook_delivery_send_task.run(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "could not be reached" in delivery.last_error


# --- The webhooks page -------------------------------------------------------------------------------------------


def test_the_profile_links_to_the_webhooks_page(user_client):
    assert reverse("accounts:webhooks") in user_client.get(reverse("accounts:profile")).content.decode()


def test_an_endpoint_is_registered_and_its_generated_secret_shown_once(db, local_network, user, user_client):
    response = user_client.post(reverse("accounts:webhooks"), {"url": "http://127.0.0.1:9/hook", "description": "CI"})
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(owner=user)
    assert len(endpoint.secret) >= 32 and endpoint.secret in response.content.decode()
    page = user_client.get(reverse("accounts:webhooks")).content.decode()
    assert "http://127.0.0.1:9/hook" in page and endpoint.secret not in page


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://169.254.169.254/latest/meta-data/", "private or reserved network address"),
        ("http://10.0.0.8/hook", "private or reserved network address"),
        ("http://[::1]/hook", "private or reserved network address"),
        ("ftp://example.com/hook", "Only http:// and https:// addresses can be used"),
    ],
)
def test_an_unsafe_url_is_refused_at_registration(db, settings, user, user_client, url, error):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    response = user_client.post(reverse("accounts:webhooks"), {"url": url})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_a_short_secret_of_ones_own_is_refused(db, local_network, user_client):
    response = user_client.post(reverse("accounts:webhooks"), {"url": "http://127.0.0.1:9/", "secret": "short"})
    assert response.status_code == 400 and "at least 16 characters" in response.content.decode()


def test_at_most_ten_endpoints(db, local_network, user, user_client):
    for number in range(10):
        endpoint_for(user, f"http://127.0.0.1:9/hook{number}")
    response = user_client.post(reverse("accounts:webhooks"), {"url": "http://127.0.0.1:9/one-more"})
    assert response.status_code == 400
    assert "already have 10 webhook endpoints" in response.content.decode()
    assert WebhookEndpoint.objects.filter(owner=user).count() == 10


def test_disable_enable_and_delete(db, local_network, user, user_client):
    endpoint = endpoint_for(user, "http://127.0.0.1:9/hook")
    waiting = WebhookDelivery.objects.create(endpoint=endpoint, event="analysis.finished", attempts=1, error="x")
    user_client.post(reverse("accounts:webhook_set_active", args=[endpoint.pk]), {"is_active": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.is_active
    waiting.refresh_from_db()  # its retries stop, and the log says why
    assert waiting.status == WebhookDelivery.Status.FAILED and "endpoint was disabled" in waiting.last_error
    user_client.post(reverse("accounts:webhook_set_active", args=[endpoint.pk]), {"is_active": "1"})
    endpoint.refresh_from_db()
    assert endpoint.is_active
    response = user_client.post(reverse("accounts:webhook_delete", args=[endpoint.pk]), follow=True)
    assert "is deleted" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_another_users_endpoint_is_neither_visible_nor_touchable(db, local_network, other_user, user_client):
    theirs = endpoint_for(other_user, "http://127.0.0.1:9/mallory")
    assert "mallory" not in user_client.get(reverse("accounts:webhooks")).content.decode()
    for name in ("accounts:webhook_delete", "accounts:webhook_set_active", "accounts:webhook_test"):
        assert user_client.post(reverse(name, args=[theirs.pk]), {"is_active": "0"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active and not theirs.deliveries.exists()


def test_send_test_posts_a_signed_ping_and_shows_the_result(db, local_network, user, user_client):
    with LocalServer(Answer(200)) as server:
        endpoint = endpoint_for(user, server.url("/hook"))
        response = user_client.post(reverse("accounts:webhook_test", args=[endpoint.pk]), follow=True)
    page = response.content.decode()
    assert "Test event delivered" in page and "answered HTTP 200" in page
    event = verify(server.received[0], endpoint.secret)
    assert event["event"] == "ping" and server.received[0].headers["X-Webhook-Event"] == "ping"
    delivery = endpoint.deliveries.get()
    assert (delivery.event, delivery.status, delivery.attempts) == ("ping", "succeeded", 1)
    assert "Delivered" in page  # in the delivery log


def test_send_test_shows_a_failure(db, local_network, user, user_client):
    with LocalServer(Answer(404)) as server:
        endpoint = endpoint_for(user, server.url("/gone"))
        page = user_client.post(reverse("accounts:webhook_test", args=[endpoint.pk]), follow=True).content.decode()
    assert "Test event not delivered" in page and "HTTP 404" in page
    assert endpoint.deliveries.get().status == "failed"
