"""Analyses on real Celery workers: a real Redis broker, a real `celery worker` subprocess, real images."""

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from detection import services
from detection.models import Analysis, DetectorModel
from detection.tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def status_of(analysis: Analysis) -> str:
    return Analysis.objects.values_list("status", flat=True).get(pk=analysis.pk)


def wait_for_status(analysis: Analysis, status: str, worker, *, timeout: float, interval: float = 0.05) -> None:
    """Wait for the analysis to reach a status; on timeout, show the worker's log, which says why."""
    try:
        wait_for(lambda: status_of(analysis) == status, timeout=timeout, interval=interval, what=status)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (now {status_of(analysis)}); the worker said:\n{worker.output()}") from None


def files_of(analysis: Analysis, media) -> list[str]:
    return sorted(p.name for p in media.rglob(f"{analysis.public_id}*"))


def test_a_worker_analyses_an_upload_end_to_end(
    transactional_db, user, active_model, upload, redis_broker, start_worker, _media_in_tmp
):
    worker = start_worker(redis_broker)

    submission = services.analysis_create(user=user, file=upload(width=400, height=300), source="api")

    assert (submission.queued and submission.analysis.enqueued_at is None) or submission.queued
    wait_for_status(submission.analysis, "done", worker, timeout=120)
    analysis = Analysis.objects.get()
    assert analysis.detector_model == active_model and 0.0 <= analysis.probability_fake <= 1.0
    assert analysis.enqueued_at is not None and analysis.attempts == 1
    assert len(files_of(analysis, _media_in_tmp)) == 4
    assert "Worker process ready with test-detector 1 (1 PyTorch threads)" in worker.output()


def test_a_worker_killed_mid_task_redelivers_and_the_analysis_completes_once(
    transactional_db, user, active_model, upload, redis_broker, start_worker, detector_weights, tmp_path, _media_in_tmp
):
    worker = start_worker(redis_broker)
    # A newly activated model makes the worker load it inside the task: a window of seconds to kill it in.
    from ml.tests.conftest import calibrated_model
    from ml.weights import save_weights

    other_weights = tmp_path / "other.safetensors"
    save_weights(calibrated_model("resnet18", seed=1), other_weights)
    replacement = DetectorModel(name="replacement", version="2", architecture="resnet18", status="ready")
    services.detector_model_store_weights(detector_model=replacement, path=other_weights)
    replacement.save()
    services.detector_model_activate(detector_model=replacement)

    analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    wait_for_status(analysis, "running", worker, timeout=60, interval=0.01)
    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)

    wait_for_status(analysis, "done", worker, timeout=180)
    done = Analysis.objects.get()
    assert done.attempts == 2, "the second delivery took over the killed run"
    assert done.detector_model == replacement
    assert files_of(done, _media_in_tmp) == sorted(
        [
            f"{done.public_id}.jpg",
            f"{done.public_id}-thumbnail.webp",
            f"{done.public_id}-heatmap.png",
            f"{done.public_id}-overlay.webp",
        ]
    )
    assert "WorkerLostError" in worker.output() or "SIGKILL" in worker.output()


def test_an_upload_made_while_the_broker_is_down_runs_once_it_is_back(
    transactional_db, user, active_model, upload, broker, private_redis, start_worker
):
    broker(private_redis.url)
    worker = start_worker(private_redis.url)
    private_redis.stop()

    submission = services.analysis_create(user=user, file=upload(), source="web")

    assert not submission.queued
    kept = Analysis.objects.get()
    assert kept.status == "queued" and kept.enqueued_at is None and kept.original
    private_redis.start()
    report = services.analysis_sweep(now=timezone.now() + timedelta(minutes=1))
    assert report.requeued == 1
    wait_for_status(kept, "done", worker, timeout=180)
    assert Analysis.objects.get().attempts == 1


def test_videos_go_to_their_own_queue_and_worker(
    transactional_db, user, active_face_model, upload, redis_broker, start_worker, tmp_path
):
    from detection.tests.test_videos import FPS, clip_frames
    from ml.video import video_write

    video_worker = start_worker(redis_broker, queues="videos")
    clip = tmp_path / "clip.mp4"
    video_write(clip, clip_frames(3), fps=FPS)

    image = services.analysis_create(user=user, file=upload(), source="api").analysis
    video = services.analysis_create(user=user, file=upload("clip.mp4", data=clip.read_bytes()), source="api").analysis

    wait_for_status(video, "done", video_worker, timeout=120)
    assert Analysis.objects.get(pk=video.pk).frames_done == 3
    assert status_of(image) == "queued", "the video worker took an image"
    image_worker = start_worker(redis_broker, queues="celery")
    wait_for_status(image, "done", image_worker, timeout=120)
