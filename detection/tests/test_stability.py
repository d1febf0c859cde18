"""Stability under re-encoding, end to end: recorded with each image's result, shown on the result page, in the API,
the JSON download and the CSV; turned off by STABILITY_CHECK; faces searched once per analysis."""

import csv
import io

import pytest
from django.urls import reverse

from conftest import photo_with_faces
from detection import engine, services
from detection.models import Analysis
from ml.faces import FaceFinder
from ml.tests.test_stability import HighFrequencyDetector, noisy_picture

pytestmark = pytest.mark.django_db

VARIANT_NAMES = {"jpeg85", "jpeg70", "resize75", "crop4"}


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def analyse(user, upload, **file) -> Analysis:
    submission = services.analysis_create(user=user, file=upload(**file), source="web")
    services.analysis_run(analysis_id=submission.analysis.pk)
    analysis = Analysis.objects.get(pk=submission.analysis.pk)
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    return analysis


def shown(user_client, api_client, analysis) -> tuple[str, dict, dict, dict]:
    """The result page, the API's analysis, the JSON download and the analysis's CSV row."""
    page = user_client.get(analysis.get_absolute_url()).content.decode()
    api = api_client.get(reverse("api:analysis-detail", args=[analysis.public_id])).json()
    download = user_client.get(reverse("detection:analysis_json", args=[analysis.public_id])).json()
    (row,) = csv.DictReader(io.StringIO(user_client.get(reverse("detection:history_csv")).content.decode()))
    return page, api, download, row


@pytest.fixture
def jpeg_sensitive_model(active_model, monkeypatch):
    """The active test model, answering as a model that keys on the fine detail JPEG 70 removes."""
    load = engine.detector_for
    monkeypatch.setattr(engine, "detector_for", lambda model: HighFrequencyDetector(load(model)))
    return active_model


def test_a_verdict_that_jpeg_flips_is_recorded_unstable_and_shown_as_such(
    user, jpeg_sensitive_model, upload, user_client, api_client
):
    analysis = analyse(user, upload, name="noisy.png", data=png_bytes(noisy_picture(jpeg_sensitive_model.input_size)))

    assert analysis.label == "fake" and analysis.stability["stable"] is False
    assert "jpeg70" in analysis.stability["flips"] and "jpeg85" not in analysis.stability["flips"]
    assert set(analysis.stability["variants"]) == VARIANT_NAMES
    assert analysis.stability["variants"]["jpeg70"] < analysis.threshold <= analysis.probability_fake
    page, api, download, row = shown(user_client, api_client, analysis)
    assert 'data-stability="unstable"' in page and "Treat this verdict with caution." in page
    assert "re-saving as JPEG 70" in page and f"(spread {analysis.stability['spread']:.2f})" in page
    assert api["stability"]["stable"] is False and "jpeg70" in api["stability"]["flips"]
    assert api["stability"]["spread"] == pytest.approx(analysis.stability["spread"])
    assert download["stability"] == analysis.stability
    assert row["stable"] == "no"


def test_an_ordinary_photo_with_the_test_model_is_stable_and_says_so(
    user, active_model, upload, user_client, api_client
):
    analysis = analyse(user, upload, name="holiday.jpg", seed=3)

    assert analysis.stability["stable"] is True and analysis.stability["flips"] == []
    assert analysis.stability["spread"] <= analysis.stability["max_spread"]
    page, api, download, row = shown(user_client, api_client, analysis)
    assert 'data-stability="stable"' in page and "Stable under re-encoding" in page
    assert f"(spread {analysis.stability['spread']:.2f})" in page
    assert api["stability"] == {key: analysis.stability[key] for key in api["stability"]}
    assert set(api["stability"]["variants"]) == VARIANT_NAMES
    assert download["stability"]["stable"] is True and row["stable"] == "yes"


def test_with_the_check_turned_off_there_is_no_stability_anywhere(
    user, active_model, upload, user_client, api_client, settings
):
    settings.STABILITY_CHECK = False

    analysis = analyse(user, upload, name="holiday.jpg", seed=3)

    assert analysis.stability == {} and analysis.probability_fake is not None
    page, api, download, row = shown(user_client, api_client, analysis)
    assert "data-stability" not in page
    assert api["stability"] is None and download["stability"] is None and row["stable"] == ""


def test_a_face_model_searches_faces_once_per_analysis(user, active_face_model, upload, monkeypatch):
    calls = []
    find_all = FaceFinder.find_all

    def counted(finder, image):
        calls.append(image.size)
        return find_all(finder, image)

    monkeypatch.setattr(FaceFinder, "find_all", counted)
    photo = photo_with_faces([(80, 120, 240)])

    analysis = analyse(user, upload, name="portrait.png", data=png_bytes(photo))

    assert calls == [photo.size]
    assert analysis.scope == Analysis.Scope.FACES and analysis.faces.count() == 1
    assert set(analysis.stability["variants"]) == VARIANT_NAMES


def test_running_an_analysis_again_forgets_its_stability(user, active_model, upload):
    analysis = analyse(user, upload, name="holiday.jpg", seed=3)

    analysis.requeue()

    assert analysis.stability == {}
