"""Mutated real JPEG, PNG and WebP files through the web and API upload paths: never a server error, never slow,
and whatever is accepted runs to a result or a stated failure."""

import time

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import image_bytes
from detection import dispatch
from detection.models import Analysis
from detection.tests.conftest import InlineExecutor

# Committed for real, as in production: each accepted upload is queued once committed, and runs at once in the
# request's thread (InlineExecutor), so the worker's side meets every accepted file too.
pytestmark = pytest.mark.django_db(transaction=True)

SEEDS = {
    "photo.jpg": image_bytes(200, 150, fmt="JPEG", seed=31),
    "photo.png": image_bytes(200, 150, fmt="PNG", seed=32),
    "photo.webp": image_bytes(200, 150, fmt="WEBP", seed=33),
}
SECONDS = 5.0


@st.composite
def mutated_files(draw):
    """A seed file with a few random byte flips, insertions, deletions or a truncation."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "header"]))
        if action == "flip":
            data[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 64))]
        elif action == "truncate":
            del data[position:]
        else:  # the header, where sizes and formats are declared
            data[min(position, 40)] ^= draw(st.integers(1, 255))
        if not data:
            break
    return name, bytes(data)


FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_finished_or_refused(status: int, elapsed: float) -> None:
    assert status < 500, status
    assert elapsed < SECONDS, f"{elapsed:.1f} s"
    # Every accepted file ran in the request (InlineExecutor) and ended with a result or a stated failure.
    assert not Analysis.objects.filter(status__in=[Analysis.Status.QUEUED, Analysis.Status.RUNNING]).exists()
    assert not Analysis.objects.filter(status=Analysis.Status.FAILED, error_message="").exists()


@pytest.fixture
def inline_runs(monkeypatch):
    monkeypatch.setattr(dispatch, "executor", lambda thread: InlineExecutor())


@pytest.fixture
def no_limits(settings, inline_runs):
    """Every example is an upload: the request limits would otherwise stop the run half-way."""
    from django.core.cache import cache

    settings.API_THROTTLE_RATE = None
    settings.UPLOAD_THROTTLE_RATE = None
    cache.clear()


@FUZZ
@given(file=mutated_files())
def test_the_web_upload_never_fails_on_a_damaged_image(user_client, active_model, no_limits, upload, file):
    name, data = file
    started = time.monotonic()
    response = user_client.post(reverse("detection:upload"), {"files": [upload(name, data=data)]})
    assert_finished_or_refused(response.status_code, time.monotonic() - started)


@FUZZ
@given(file=mutated_files())
def test_the_api_upload_never_fails_on_a_damaged_image(api_client, active_model, no_limits, upload, file):
    name, data = file
    started = time.monotonic()
    response = api_client.post("/api/v1/analyses/", {"file": upload(name, data=data)})
    assert_finished_or_refused(response.status_code, time.monotonic() - started)
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "field"}
