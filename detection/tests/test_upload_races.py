"""Uploads that arrive together, and retries with an Idempotency-Key: one analysis per image, never duplicates."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.services import api_token_create
from detection import dispatch, services
from detection.models import Analysis, IdempotencyKey

LIST_URL = "/api/v1/analyses/"


class IdleExecutor:
    def submit(self, *args):
        pass  # the analyses stay queued: this is about uploads, not runs


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_of_the_same_image_share_one_analysis(user, active_model, upload, monkeypatch):
    monkeypatch.setattr(dispatch, "executor", lambda thread: IdleExecutor())
    barrier, results, errors = threading.Barrier(3), [], []

    def submit():
        try:
            barrier.wait()
            submission = services.analysis_create(user=user, file=upload("same.jpg", seed=41), source="api")
            results.append((submission.analysis.pk, submission.reused))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Analysis.objects.count() == 1
    assert {pk for pk, _ in results} == {Analysis.objects.get().pk}
    assert sorted(reused for _, reused in results) == [False, True, True]


@pytest.fixture
def api(user, monkeypatch):
    monkeypatch.setattr(dispatch, "executor", lambda thread: IdleExecutor())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=user, name='retries')[1]}")
    return client


@pytest.mark.django_db(transaction=True)
def test_a_retried_request_with_the_same_key_gets_the_same_analysis(api, active_model, upload):
    first = api.post(LIST_URL, {"file": upload(seed=1)}, HTTP_IDEMPOTENCY_KEY="order-17")
    again = api.post(LIST_URL, {"file": upload(seed=1)}, HTTP_IDEMPOTENCY_KEY="order-17")

    assert first.status_code == 202 and again.status_code == 202
    assert first.json()["id"] == again.json()["id"] and again.json()["reused"] is True
    assert Analysis.objects.count() == 1 and IdempotencyKey.objects.get().key == "order-17"


@pytest.mark.django_db(transaction=True)
def test_the_same_key_with_another_file_is_422_and_changes_nothing(api, active_model, upload):
    api.post(LIST_URL, {"file": upload(seed=1)}, HTTP_IDEMPOTENCY_KEY="order-17")

    response = api.post(LIST_URL, {"file": upload(seed=2)}, HTTP_IDEMPOTENCY_KEY="order-17")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert response.json()["error"]["field"] == "Idempotency-Key"
    assert Analysis.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_keys_belong_to_their_user_and_a_bad_key_is_400(api, other_user, active_model, upload):
    api.post(LIST_URL, {"file": upload(seed=1)}, HTTP_IDEMPOTENCY_KEY="shared-name")
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Bearer {api_token_create(user=other_user, name='t')[1]}")

    assert theirs.post(LIST_URL, {"file": upload(seed=2)}, HTTP_IDEMPOTENCY_KEY="shared-name").status_code == 202
    bad = api.post(LIST_URL, {"file": upload(seed=3)}, HTTP_IDEMPOTENCY_KEY="x" * 256)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "Idempotency-Key"
    assert Analysis.objects.count() == 2
