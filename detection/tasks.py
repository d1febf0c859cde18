"""The Celery tasks: each takes an ID and calls a service; nothing heavy ever travels through the broker. They are
sent by detection.dispatch (to the workers, or without a broker to a background thread of the web process).
"""

import logging
import time

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.db.utils import InterfaceError, OperationalError

from detection import engine, selectors, services
from detection.errors import ModelUnusable
from detection.services.webhooks import webhook_delivery_attempt

logger = logging.getLogger(__name__)


# An analysis's delivery is acknowledged once it has run, and a dead worker's is redelivered; the database going
# away for a moment is worth waiting out (the analysis keeps its claim across retries).
RUN_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(**RUN_OPTIONS, soft_time_limit=settings.ANALYSIS_SOFT_TIME_LIMIT, time_limit=settings.ANALYSIS_TIME_LIMIT)
def analysis_run_task(self, analysis_id: int) -> None:
    services.analysis_run(analysis_id=analysis_id, task_id=self.request.id or "")


# The same service for a video, on the video queue; its time limits come with each message, from its length
# (Analysis.soft_time_limit). A retry or redelivery starts the video again from its first frame.
@shared_task(**RUN_OPTIONS)
def video_run_task(self, analysis_id: int) -> None:
    services.analysis_run(analysis_id=analysis_id, task_id=self.request.id or "")


@shared_task
def analysis_sweep_task() -> None:
    report = services.analysis_sweep()
    if report.requeued or report.failed:
        logger.info("Sweep: %d analyses queued again, %d failed", report.requeued, report.failed)


@shared_task
def analysis_originals_expire_task() -> None:
    report = services.analysis_originals_expire()
    if report.expired or report.failed:
        logger.info("Retention: %d originals deleted, %d could not be deleted", report.expired, report.failed)


# --- Detector model jobs from the admin: fetching and checking weights, evaluations ----------------------------


@shared_task(acks_late=True, reject_on_worker_lost=True)
def detector_model_prepare_task(detector_model_id: int) -> None:
    services.detector_model_prepare(detector_model_id=detector_model_id)


# Acknowledged on receipt: an evaluation can outlast the broker's visibility timeout, and a redelivery would run it
# twice. If its worker dies, the evaluation stays "running" and the administrator starts another.
@shared_task(acks_late=False)
def detector_model_evaluate_task(evaluation_id: int) -> None:
    services.detector_model_evaluate(evaluation_id=evaluation_id)


# --- Webhook deliveries -----------------------------------------------------------------------------------------

# Without a broker the webhook thread waits between tries itself: at most this long, so a day of retries never
# holds the thread (and the deliveries behind it) for hours.
WEBHOOK_INLINE_RETRY_DELAY_MAX = 10.0


@shared_task(bind=True, acks_late=True)
def webhook_delivery_send_task(self, delivery_id: int) -> None:
    """POST the delivery; after a failure, try again later as WEBHOOK_RETRY_DELAYS says, until it succeeds or runs
    out of attempts (WEBHOOK_MAX_ATTEMPTS): through the broker a retry is a message due later, without one (run
    directly, in the webhook thread) a wait."""
    while (delay := webhook_delivery_attempt(delivery_id=delivery_id)) is not None:
        if not self.request.called_directly:
            raise self.retry(countdown=delay, max_retries=None)
        time.sleep(min(delay, WEBHOOK_INLINE_RETRY_DELAY_MAX))


@worker_process_init.connect
def _prepare_worker_process(**kwargs) -> None:
    """Size PyTorch's threads to this process's share of the cores and load the active model before any task."""
    threads = engine.worker_start(threads=settings.TORCH_THREADS or None, processes=settings.CELERY_WORKER_CONCURRENCY)
    try:
        detector_model = selectors.detector_model_get_active()
        if detector_model is None:
            logger.warning("No detector model is active; analyses will fail until one is activated.")
            return
        engine.detector_for(detector_model)
    except ModelUnusable as exc:
        logger.error("%s", exc)
        return
    except DatabaseError as exc:
        # Not fatal: each task reads the active model again, once the database answers.
        logger.error("The worker process could not read the active model from the database (%s)", exc)
        return
    finally:
        close_old_connections()
    logger.info("Worker process ready with %s (%d PyTorch threads)", detector_model, threads)
