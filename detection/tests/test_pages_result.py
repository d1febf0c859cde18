"""The result page, its polled fragment, its pictures, its JSON and its deletion: all for the owner only."""

import json
import re
import uuid

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from detection import services
from detection.models import Analysis

pytestmark = pytest.mark.django_db

METRICS = {
    "validation": {"accuracy": 0.912, "f1": 0.905, "roc_auc": 0.9634, "count": 400, "threshold": 0.47},
    "test": {"accuracy": 0.884, "f1": 0.871, "roc_auc": 0.9412, "count": 380, "threshold": 0.47},
}


@pytest.fixture
def analysis(user, active_model, run_inline, upload):
    """A finished analysis of a real JPEG by the real (small) detector."""
    active_model.metrics = METRICS
    active_model.description = "Spots upsampling traces of face-swap generators."
    active_model.save()
    with run_inline():
        submission = services.analysis_create(user=user, file=upload("holiday.jpg", seed=3), source="web")
    analysis = Analysis.objects.get(pk=submission.analysis.pk)
    assert analysis.status == Analysis.Status.DONE
    return analysis


def url(name: str, analysis, *args) -> str:
    return reverse(f"detection:{name}", args=[analysis.public_id, *args])


def test_the_result_page_shows_verdict_confidence_chart_pictures_model_and_facts(user_client, analysis):
    response = user_client.get(analysis.get_absolute_url())

    html = response.content.decode()
    assert response.status_code == 200
    label = {"real": "Real", "fake": "Fake", "uncertain": "Uncertain"}[analysis.verdict]
    assert f'<p class="verdict" data-verdict="{analysis.verdict}">{label}</p>' in html
    confidence = round(analysis.confidence * 100)
    assert f'aria-valuenow="{confidence}"' in html and f"<strong>{confidence} %</strong>" in html
    # The chart: one bar per class, as wide as its probability, and the threshold marked.
    assert '<svg viewBox="0 0 320 84"' in html
    fake_width = re.search(r'width="([\d.]+)" height="20" rx="4"\s+class="chart-bar chart-bar-fake"', html).group(1)
    assert float(fake_width) == pytest.approx(200 * analysis.probability_fake, abs=0.06)
    assert "threshold 50 %" in html
    # Original and overlay side by side, through the owner-checked view, with the opacity control.
    assert f'src="{url("analysis_image", analysis, "original")}"' in html
    assert f'id="overlay-layer" class="stack-top" src="{url("analysis_image", analysis, "overlay")}"' in html
    assert 'type="range" id="overlay-opacity"' in html and '<label for="overlay-opacity">' in html
    assert "/media/" not in html and analysis.original.name not in html
    # The model that produced it, with its measured metrics.
    assert "test-detector 1" in html and "Spots upsampling traces" in html
    assert '<th scope="col">Validation</th><th scope="col">Test</th>' in html
    assert "<td>0.963</td>" in html and "<td>0.941</td>" in html and "<td>400</td>" in html
    # Timings and image facts.
    assert "Inference" in html and re.search(r"<dt>Total analysis</dt><dd>\d+(\.\d)? m?s</dd>", html)
    assert "image/jpeg" in html and "320 × 240 px" in html and analysis.sha256 in html
    assert f'href="{url("analysis_json", analysis)}" download' in html
    assert f'href="{url("analysis_delete", analysis)}"' in html
    assert "hx-get" not in html  # finished: nothing polls


def test_an_image_close_to_the_threshold_is_uncertain(user_client, analysis, settings):
    settings.UNCERTAIN_MARGIN = 0.1
    Analysis.objects.filter(pk=analysis.pk).update(probability_fake=0.55, threshold=0.5, label="fake")

    html = user_client.get(analysis.get_absolute_url()).content.decode()

    assert '<p class="verdict" data-verdict="uncertain">Uncertain</p>' in html
    assert "is within\n          10 % of the model's threshold (50 %), too close to call" in html


def test_the_live_fragment_polls_while_unfinished_and_stops_when_finished(user_client, user, analysis):
    status_url = url("analysis_status", analysis)
    Analysis.objects.filter(pk=analysis.pk).update(status=Analysis.Status.RUNNING)

    running = user_client.get(status_url, HTTP_HX_REQUEST="true").content.decode()
    compact_running = user_client.get(status_url + "?compact=1", HTTP_HX_REQUEST="true").content.decode()

    assert f'hx-get="{status_url}"' in running and "Analysing your image…" in running and "<html" not in running
    assert f'hx-get="{status_url}?compact=1"' in compact_running and "Analysing…" in compact_running

    Analysis.objects.filter(pk=analysis.pk).update(status=Analysis.Status.DONE)
    done = user_client.get(status_url, HTTP_HX_REQUEST="true").content.decode()
    compact_done = user_client.get(status_url + "?compact=1", HTTP_HX_REQUEST="true").content.decode()

    assert "hx-get" not in done and "hx-trigger" not in done and 'class="verdict"' in done
    assert "hx-get" not in compact_done and "View result" in compact_done


def test_polling_an_analysis_deleted_meanwhile_says_so_and_stops(user_client, analysis):
    status_url = url("analysis_status", analysis)
    Analysis.objects.filter(pk=analysis.pk).delete()

    response = user_client.get(status_url + "?compact=1", HTTP_HX_REQUEST="true")

    assert response.status_code == 404
    assert "This analysis no longer exists" in response.content.decode() and "hx-get" not in response.content.decode()


def test_a_failed_analysis_shows_its_reason_and_stops_polling(user_client, analysis):
    Analysis.objects.filter(pk=analysis.pk).update(
        status=Analysis.Status.FAILED, error_message="The image could not be decoded: it is truncated."
    )

    page = user_client.get(analysis.get_absolute_url()).content.decode()
    fragment = user_client.get(url("analysis_status", analysis) + "?compact=1").content.decode()

    assert "The analysis failed" in page and "The image could not be decoded: it is truncated." in page
    assert "The analysis failed: The image could not be decoded" in fragment
    assert "hx-get" not in page and "hx-get" not in fragment


@pytest.mark.parametrize(
    ("kind", "content_type"),
    [("original", "image/jpeg"), ("thumbnail", "image/webp"), ("overlay", "image/webp"), ("heatmap", "image/png")],
)
def test_pictures_are_served_to_their_owner(user_client, analysis, kind, content_type):
    response = user_client.get(url("analysis_image", analysis, kind))

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Cache-Control"] == "private, no-store"
    with getattr(analysis, kind).open("rb") as stored:
        assert b"".join(response.streaming_content) == stored.read()


def test_an_unknown_picture_kind_is_404(user_client, analysis):
    assert user_client.get(f"/analyses/{analysis.public_id}/image/model/").status_code == 404


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("analysis_detail", ()),
        ("analysis_status", ()),
        ("analysis_image", ("original",)),
        ("analysis_image", ("overlay",)),
        ("analysis_json", ()),
        ("analysis_delete", ()),
    ],
)
def test_someone_elses_or_an_unknown_analysis_is_404(client, other_user, analysis, name, extra):
    client.force_login(other_user)
    unknown = reverse(f"detection:{name}", args=[uuid.uuid4(), *extra])

    assert client.get(url(name, analysis, *extra)).status_code == 404
    assert client.get(unknown).status_code == 404


def test_someone_else_cannot_delete_it(client, other_user, analysis):
    client.force_login(other_user)

    response = client.post(url("analysis_delete", analysis))

    assert response.status_code == 404
    assert Analysis.objects.filter(pk=analysis.pk).exists()


def test_the_json_download_holds_the_whole_result(user_client, analysis):
    response = user_client.get(url("analysis_json", analysis))

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="analysis-{analysis.public_id}.json"'
    data = json.loads(response.content)
    assert data["id"] == str(analysis.public_id) and data["file_name"] == "holiday.jpg"
    assert data["status"] == "done" and data["error"] is None
    assert data["result"]["verdict"] == analysis.verdict
    assert data["result"]["probability_fake"] == pytest.approx(analysis.probability_fake)
    assert data["result"]["probability_real"] == pytest.approx(1 - analysis.probability_fake)
    assert data["model"]["version"] == "test-detector 1" and data["model"]["metrics"] == METRICS
    assert data["image"] == {
        "media_type": "image/jpeg",
        "width": 320,
        "height": 240,
        "file_size": analysis.file_size,
        "sha256": analysis.sha256,
        "keep_original": True,
        "original_kept": True,
    }
    assert set(data["images"]) == {"original", "thumbnail", "overlay", "heatmap"}
    assert data["images"]["overlay"] == "http://testserver" + url("analysis_image", analysis, "overlay")
    assert data["timings_ms"]["total"] > 0


def test_deleting_asks_first_then_removes_the_row_and_its_pictures(
    user_client, analysis, django_capture_on_commit_callbacks
):
    names = [f.name for f in analysis.owned_files()]
    assert len(names) == 4 and all(default_storage.exists(name) for name in names)

    confirm = user_client.get(url("analysis_delete", analysis))
    assert confirm.status_code == 200
    assert "Delete this analysis?" in confirm.content.decode() and "holiday.jpg" in confirm.content.decode()
    assert Analysis.objects.filter(pk=analysis.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(url("analysis_delete", analysis), follow=True)

    assert response.redirect_chain == [(reverse("detection:history"), 302)]
    assert "The analysis of “holiday.jpg” and its pictures are deleted." in response.content.decode()
    assert not Analysis.objects.filter(pk=analysis.pk).exists()
    assert not any(default_storage.exists(name) for name in names)
