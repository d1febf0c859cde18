import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client, settings):
    """A monitoring probe with the health token: it gets the details."""
    settings.HEALTH_TOKEN = "probe-secret"
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer probe-secret"
    return client


def test_anonymous_callers_get_the_status_only(settings, active_model, django_user_model):
    from django.test import Client

    settings.HEALTH_TOKEN = "probe-secret"
    anonymous = Client().get("/health").json()
    wrong_token = Client(HTTP_AUTHORIZATION="Bearer guess").get("/health").json()
    staff = Client()
    staff.force_login(django_user_model.objects.create_user("ops", "ops@example.com", "x", is_staff=True))

    assert (
        anonymous
        == wrong_token
        == {
            "status": "ok",
            "checks": {"database": {"status": "ok"}, "broker": {"status": "disabled"}, "model": {"status": "ok"}},
        }
    )
    details = staff.get("/health").json()["checks"]
    assert details["database"]["vendor"] and details["model"]["name"] == "test-detector"


def test_health_is_200_with_the_database_up_and_a_model_active(client, active_model):
    from ml.runtime import DETECTORS

    DETECTORS.clear()  # earlier tests in this process may have loaded it

    response = client.get("/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "disabled"
    assert body["checks"]["model"] == {
        "status": "ok",
        "name": "test-detector",
        "version": "1",
        "architecture": "resnet18",
        "loaded_in_this_process": False,
    }


def test_health_says_when_this_process_has_the_model_loaded(client, active_model):
    from detection import engine
    from ml.runtime import DETECTORS

    DETECTORS.clear()
    engine.detector_for(active_model)

    assert client.get("/health").json()["checks"]["model"]["loaded_in_this_process"] is True


def test_health_is_503_without_an_active_model(client):
    response = client.get("/health")

    assert response.status_code == 503
    assert "No detector model is active" in response.json()["checks"]["model"]["detail"]


def test_health_is_503_when_the_broker_does_not_answer(client, settings, active_model):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/health")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "error"
    assert "Broker unreachable" in response.json()["checks"]["broker"]["detail"]


def test_health_is_503_when_the_database_is_unreachable():
    # A separate process, so the database really is unreachable from the start (nothing listens on port 1).
    script = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client(HTTP_AUTHORIZATION='Bearer probe-secret').get('/health');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {**os.environ, "DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing", "ALLOWED_HOSTS": "testserver"}
    env["HEALTH_TOKEN"] = "probe-secret"
    env["DJANGO_SETTINGS_MODULE"] = "deepfake_site.settings"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["checks"]["database"]["status"] == "error"
    assert "Database unreachable" in answer["body"]["checks"]["database"]["detail"]
