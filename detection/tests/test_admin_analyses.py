"""Analyses in the admin: list, filters and search, read-only results with their pictures, re-running."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from detection import services
from detection.models import Analysis, DetectorModel
from detection.tests.factories import AnalysisFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:detection_analysis_changelist"


@pytest.fixture
def analysed(user, active_model, upload, run_inline):
    """A finished analysis of alice's, with its thumbnail, heatmap and overlay stored."""
    with run_inline():
        submission = services.analysis_create(user=user, file=upload("holiday.jpg", seed=3), source="web")
    analysis = Analysis.objects.get(pk=submission.analysis.pk)
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    return analysis


def page_messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def listed(client, **query) -> list[str]:
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200
    return [analysis.original_name for analysis in response.context["cl"].result_list]


def test_the_list_filters_and_searches(staff_client, analysed, other_user):
    AnalysisFactory(owner=other_user, original_name="queued.png")

    assert sorted(listed(staff_client)) == ["holiday.jpg", "queued.png"]
    assert listed(staff_client, status__exact="done") == ["holiday.jpg"]
    assert listed(staff_client, detector_model__id__exact=analysed.detector_model_id) == ["holiday.jpg"]
    assert listed(staff_client, label__exact=analysed.label) == ["holiday.jpg"]
    assert listed(staff_client, q="mallory") == ["queued.png"]
    assert listed(staff_client, q=str(analysed.public_id)) == ["holiday.jpg"]
    assert listed(staff_client, q=analysed.sha256) == ["holiday.jpg"]
    assert listed(staff_client, q="no-such-thing") == []


def test_the_result_page_is_read_only_and_shows_the_heatmap(staff_client, analysed):
    url = reverse("admin:detection_analysis_change", args=[analysed.pk])
    response = staff_client.get(url)

    html = response.content.decode()
    overlay = reverse("admin:detection_analysis_image", args=[analysed.pk, "overlay"])
    heatmap = reverse("admin:detection_analysis_image", args=[analysed.pk, "heatmap"])
    assert response.status_code == 200
    assert f'src="{overlay}"' in html and f'src="{heatmap}"' in html
    assert analysed.model_version in html and f"{analysed.probability_fake:.3f}" in html
    assert 'name="_save"' not in html

    assert staff_client.post(url, {"original_name": "renamed.jpg"}).status_code == 403
    assert Analysis.objects.get(pk=analysed.pk).original_name == "holiday.jpg"
    assert staff_client.get(reverse("admin:detection_analysis_add")).status_code == 403


def test_staff_see_anyones_pictures(staff_client, analysed):
    for kind, content_type, field in (
        ("heatmap", "image/png", analysed.heatmap),
        ("overlay", "image/webp", analysed.overlay),
        ("original", "image/jpeg", analysed.original),
    ):
        response = staff_client.get(reverse("admin:detection_analysis_image", args=[analysed.pk, kind]))
        assert response.status_code == 200, kind
        assert response["Content-Type"] == content_type
        field.open("rb")
        assert b"".join(response.streaming_content) == field.read()
        field.close()
    assert staff_client.get(reverse("admin:detection_analysis_image", args=[analysed.pk, "secrets"])).status_code == 404


def test_the_admin_picture_view_is_for_staff_only_even_for_the_owner(client, analysed, user, django_user_model):
    url = reverse("admin:detection_analysis_image", args=[analysed.pk, "heatmap"])
    assert client.get(url).status_code == 302

    client.force_login(user)  # the owner sees the heatmap on their own pages, not through the admin
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    client.force_login(django_user_model.objects.create_user(username="intern", password="x", is_staff=True))
    assert client.get(url).status_code == 403


def test_rerun_uses_the_active_model_and_logs_the_previous_result(staff_client, analysed, detector_weights, run_inline):
    previous = f"{analysed.label} (P(fake) {analysed.probability_fake:.3f}) by test-detector 1"
    newer = DetectorModel(
        name="detector", version="2", architecture="resnet18", threshold=0.9, status=DetectorModel.Status.READY
    )
    services.detector_model_store_weights(detector_model=newer, path=detector_weights)
    newer.save()
    services.detector_model_activate(detector_model=newer)

    with run_inline():
        response = staff_client.post(
            reverse(CHANGELIST), {"action": "rerun_with_active_model", "_selected_action": [analysed.pk]}, follow=True
        )

    assert "1 analysis queued again with “detector 2”" in page_messages(response)
    analysis = Analysis.objects.get(pk=analysed.pk)
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    assert analysis.detector_model == newer and analysis.model_version == "detector 2" and analysis.threshold == 0.9
    assert analysis.probability_fake == pytest.approx(analysed.probability_fake, abs=1e-5)  # same weights
    assert analysis.heatmap and analysis.heatmap.storage.exists(analysis.heatmap.name)
    entry = LogEntry.objects.get(object_id=str(analysed.pk), action_flag=CHANGE)
    assert entry.change_message == f"Re-run with detector 2; the previous result was {previous}."


def test_rerun_is_refused_without_the_original_or_while_unfinished(staff_client, analysed, user, run_inline):
    Analysis.objects.filter(pk=analysed.pk).update(original="")
    waiting = AnalysisFactory(owner=user, original_name="waiting.png")

    with run_inline():
        response = staff_client.post(
            reverse(CHANGELIST),
            {"action": "rerun_with_active_model", "_selected_action": [analysed.pk, waiting.pk]},
            follow=True,
        )

    shown = page_messages(response)
    assert "its original file was not kept" in shown and "has not finished yet" in shown
    assert Analysis.objects.get(pk=analysed.pk).status == Analysis.Status.DONE
    assert Analysis.objects.get(pk=waiting.pk).attempts == 0
    assert not LogEntry.objects.exists()


def test_rerun_is_refused_without_an_active_model(staff_client, analysed):
    DetectorModel.objects.update(is_active=False)

    response = staff_client.post(
        reverse(CHANGELIST), {"action": "rerun_with_active_model", "_selected_action": [analysed.pk]}, follow=True
    )

    assert "No detector model is active" in page_messages(response)
    assert Analysis.objects.get(pk=analysed.pk).status == Analysis.Status.DONE
