"""Provenance findings travel with the analysis: stored by the run, shown on the result page with how they relate
to the verdict, and carried by the API, the JSON download and the CSV export."""

import io

import pytest
from django.urls import reverse
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from conftest import picture
from detection import services
from detection.models import Analysis

pytestmark = pytest.mark.django_db

PARAMETERS = "a lighthouse at dusk\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 42, Size: 512x512, Model: sdxl"


def generated_png() -> bytes:
    """A PNG as Automatic1111 writes it: the generation parameters in a text chunk."""
    info = PngInfo()
    info.add_text("parameters", PARAMETERS)
    buffer = io.BytesIO()
    picture(320, 240, seed=3).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def analysed(user, upload, data: bytes, name: str) -> Analysis:
    submission = services.analysis_create(user=user, file=upload(name, data=data), source="web")
    services.analysis_run(analysis_id=submission.analysis.pk)
    return Analysis.objects.get(pk=submission.analysis.pk)


def test_a_generators_png_is_flagged_on_the_page_in_the_api_and_in_the_exports(
    user, user_client, api_client, active_model, upload
):
    analysis = analysed(user, upload, generated_png(), "lighthouse.png")

    (claim,) = [finding for finding in analysis.provenance if finding["kind"] == "ai_generated"]
    assert claim["severity"] == "warning" and claim["source"] == "PNG text"
    page = user_client.get(analysis.get_absolute_url()).content.decode()
    assert 'data-finding="ai_generated"' in page and "they do not change the detector's verdict" in page
    detail = api_client.get(reverse("api:analysis-detail", args=[analysis.public_id])).json()
    assert detail["provenance"][0]["kind"] == "ai_generated"
    download = user_client.get(reverse("detection:analysis_json", args=[analysis.public_id])).json()
    assert download["provenance"] == analysis.provenance
    csv_text = user_client.get(reverse("detection:history_csv")).content.decode()
    header, row = csv_text.splitlines()[:2]
    assert "provenance" in header.split(",") and "warning: " in row


def test_an_image_without_metadata_says_its_absence_proves_nothing(user, user_client, active_model, upload):
    buffer = io.BytesIO()
    Image.new("RGB", (200, 150), (90, 120, 150)).save(buffer, format="JPEG")
    analysis = analysed(user, upload, buffer.getvalue(), "plain.jpg")

    assert [finding["kind"] for finding in analysis.provenance] == ["no_metadata"]
    page = user_client.get(analysis.get_absolute_url()).content.decode()
    assert 'data-finding="no_metadata"' in page


def test_a_reader_that_overruns_its_time_limit_never_holds_up_the_verdict(
    user, active_model, upload, settings, monkeypatch
):
    import time

    from detection import provenance

    settings.PROVENANCE_TIME_LIMIT = 0.2
    monkeypatch.setattr(provenance, "_read_everything", lambda *args: time.sleep(3))
    started = time.monotonic()
    analysis = analysed(user, upload, generated_png(), "slow.png")

    assert analysis.status == Analysis.Status.DONE and time.monotonic() - started < 2.5
    assert "metadata_error" in {finding["kind"] for finding in analysis.provenance}
