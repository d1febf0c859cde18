"""Running an analysis: results equal the engine's, files are stored once, failures are explained."""

import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from detection import services
from detection.models import Analysis, DetectorModel
from ml.detector import Detector
from ml.preprocessing import decode_image
from ml.runtime import DETECTORS

pytestmark = pytest.mark.django_db


def media_files(media) -> list[str]:
    return sorted(p.name for p in media.rglob("*") if p.is_file() and "models" not in p.parts)


def submit(user, upload, **options) -> Analysis:
    return services.analysis_create(user=user, file=upload(**options), source="web").analysis


def test_a_run_stores_the_engines_verdict_heatmap_and_timings(
    user, active_model, upload, make_image_bytes, detector_weights
):
    analysis = submit(user, upload, width=360, height=240, seed=5)

    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    reference = Detector.from_weights(detector_weights, architecture="resnet18", backend="torch", precision="fp32")
    (expected,) = reference.analyze([decode_image(make_image_bytes(360, 240, seed=5)).image])
    assert analysis.status == Analysis.Status.DONE and analysis.error_message == ""
    assert analysis.probability_fake == pytest.approx(expected.probability_fake, abs=1e-5)
    assert analysis.label == expected.label
    assert analysis.threshold == active_model.threshold
    assert analysis.detector_model == active_model and analysis.model_version == "test-detector 1"
    assert analysis.attempts == 1 and analysis.started_at <= analysis.finished_at
    assert all(t is not None and t >= 0 for t in (analysis.decode_ms, analysis.inference_ms, analysis.heatmap_ms))
    assert analysis.total_ms >= analysis.inference_ms
    overlay = Image.open(analysis.overlay.open("rb"))
    heatmap = Image.open(analysis.heatmap.open("rb"))
    thumbnail = Image.open(analysis.thumbnail.open("rb"))
    assert overlay.size == heatmap.size == (360, 240)  # the original's aspect ratio, never enlarged
    assert thumbnail.size == (256, 171)
    assert (overlay.format, heatmap.format, thumbnail.format) == ("WEBP", "PNG", "WEBP")
    # The stored heatmap is the engine's, coloured: its hottest place is where the engine's map peaks.
    hot = np.asarray(heatmap.convert("RGB"), dtype=int)
    peak_y, peak_x = np.unravel_index(np.argmax(expected.heatmap), expected.heatmap.shape)
    red_minus_blue = hot[..., 0] - hot[..., 2]
    assert red_minus_blue[int(peak_y * 240 / 224), int(peak_x * 360 / 224)] > 100


def test_running_again_changes_nothing_and_keeps_one_set_of_files(user, active_model, upload, _media_in_tmp):
    analysis = submit(user, upload)
    services.analysis_run(analysis_id=analysis.pk, task_id="first")
    files = media_files(_media_in_tmp)
    done = Analysis.objects.get()

    assert services.analysis_run(analysis_id=analysis.pk, task_id="duplicate") is None

    again = Analysis.objects.get()
    assert (again.attempts, again.finished_at, again.probability_fake) == (1, done.finished_at, done.probability_fake)
    assert media_files(_media_in_tmp) == files and len(files) == 4  # original, thumbnail, heatmap, overlay


def test_a_redelivered_task_takes_over_its_dead_run_without_duplicating_files(
    user, active_model, upload, _media_in_tmp
):
    analysis = submit(user, upload)
    # A first delivery claimed the analysis and wrote one picture before its worker was killed.
    Analysis.objects.filter(pk=analysis.pk).update(status="running", task_id="task-1", attempts=1)
    default_storage.save(f"results/{analysis.public_id}-thumbnail.webp", io.BytesIO(b"half-written"))

    services.analysis_run(analysis_id=analysis.pk, task_id="task-1")

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE and analysis.attempts == 2
    assert media_files(_media_in_tmp) == sorted(
        [
            f"{analysis.public_id}.jpg",
            f"{analysis.public_id}-thumbnail.webp",
            f"{analysis.public_id}-heatmap.png",
            f"{analysis.public_id}-overlay.webp",
        ]
    )
    assert Image.open(analysis.thumbnail.open("rb")).format == "WEBP"


def test_a_run_another_worker_holds_is_left_to_it(user, active_model, upload):
    analysis = submit(user, upload)
    Analysis.objects.filter(pk=analysis.pk).update(
        status="running", task_id="task-1", attempts=1, started_at=timezone.now()
    )

    assert services.analysis_run(analysis_id=analysis.pk, task_id="task-2") is None
    assert Analysis.objects.get().status == Analysis.Status.RUNNING


def test_without_keeping_the_original_only_small_pictures_remain(user, active_model, upload, _media_in_tmp):
    analysis = services.analysis_create(
        user=user, file=upload(width=900, height=600), source="web", keep_original=False
    ).analysis

    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE and not analysis.original
    assert not any(name.endswith(".jpg") for name in media_files(_media_in_tmp))
    assert max(Image.open(analysis.overlay.open("rb")).size) == 256
    assert max(Image.open(analysis.thumbnail.open("rb")).size) == 256


def test_a_model_that_fails_to_load_fails_the_analysis_and_shows_in_health(
    user, active_model, upload, client, _media_in_tmp, settings
):
    settings.HEALTH_TOKEN = "probe-secret"
    analysis = submit(user, upload)
    DETECTORS.clear()
    (_media_in_tmp / active_model.weights.name).write_bytes(b"not weights any more")

    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED
    assert analysis.error_message.startswith("The detector model “test-detector 1” could not be loaded:")
    assert "SHA-256" in analysis.error_message
    health = client.get("/health", HTTP_AUTHORIZATION="Bearer probe-secret")
    assert health.status_code == 503
    assert health.json()["checks"]["model"]["status"] == "error"
    assert "could not be loaded" in health.json()["checks"]["model"]["detail"]


def test_without_an_active_model_the_analysis_fails_with_a_message(user, active_model, upload):
    analysis = submit(user, upload)
    DetectorModel.objects.update(is_active=False)

    services.analysis_run(analysis_id=analysis.pk)

    assert Analysis.objects.get().error_message == "No detector model is active, so the image could not be analysed."


class FullResultsStorage:
    """Accepts the first picture, then the disk is full."""

    def __init__(self, real):
        self.real, self.saved = real, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def save(self, name, content, max_length=None):
        if self.saved:
            raise OSError(28, "No space left on device")
        self.saved += 1
        return self.real.save(name, content, max_length=max_length)


def test_storage_failing_while_saving_results_fails_cleanly(user, active_model, upload, monkeypatch, _media_in_tmp):
    analysis = submit(user, upload)
    full = FullResultsStorage(Analysis._meta.get_field("thumbnail").storage)
    for name in ("thumbnail", "heatmap", "overlay"):
        monkeypatch.setattr(Analysis._meta.get_field(name), "storage", full)

    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED
    assert analysis.error_message.startswith("The results could not be stored (OSError")
    assert not (analysis.thumbnail or analysis.heatmap or analysis.overlay)
    assert media_files(_media_in_tmp) == [f"{analysis.public_id}.jpg"]  # the original stays for a retry


def test_deleting_an_analysis_deletes_its_files(user, active_model, upload, run_inline, _media_in_tmp):
    with run_inline():
        analysis = submit(user, upload)
    assert len(media_files(_media_in_tmp)) == 4

    with run_inline():
        services.analysis_delete(analysis=Analysis.objects.get(pk=analysis.pk))

    assert media_files(_media_in_tmp) == []


def test_deleting_an_account_deletes_its_analyses_and_files(user, active_model, upload, run_inline, _media_in_tmp):
    with run_inline():
        submit(user, upload, seed=1)
        submit(user, upload, seed=2)
    assert len(media_files(_media_in_tmp)) == 8

    with run_inline():
        user.delete()

    assert not Analysis.objects.exists()
    assert media_files(_media_in_tmp) == []
