"""Background work. Tasks take IDs and call services; nothing heavy ever travels through the broker.

With a broker (CELERY_BROKER_URL) tasks go to Celery workers, each worker process keeping one detector loaded.
Without one (the embedded default) the same service code runs in a background thread of the web process, so a
request never waits for an analysis either way.
"""

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import close_old_connections
from django.db.utils import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerUnavailable

from detection import selectors, services

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    # The database going away for a moment is worth waiting out; the analysis keeps its claim across retries.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
    soft_time_limit=settings.ANALYSIS_SOFT_TIME_LIMIT,
    time_limit=settings.ANALYSIS_TIME_LIMIT,
)
def analysis_run_task(self, analysis_id: int) -> None:
    services.analysis_run(analysis_id=analysis_id, task_id=self.request.id or "")


@shared_task
def analysis_sweep_task() -> None:
    report = services.analysis_sweep()
    if report.requeued or report.failed:
        logger.info("Sweep: %d analyses queued again, %d failed", report.requeued, report.failed)


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _in_process_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            # One analysis at a time: PyTorch already uses every core for one image.
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analysis")
        return _executor


def _run_in_process(analysis_id: int, task_id: str) -> None:
    close_old_connections()
    try:
        services.analysis_run(analysis_id=analysis_id, task_id=task_id)
    except Exception:
        logger.exception("In-process analysis %s failed", analysis_id)
    finally:
        close_old_connections()


def analysis_submit(*, analysis_id: int) -> bool:
    """Send the analysis to the workers, or to the in-process runner without a broker; False if the broker is down."""
    if not settings.CELERY_BROKER_URL:
        _in_process_executor().submit(_run_in_process, analysis_id, f"in-process-{uuid.uuid4()}")
        return True
    try:
        analysis_run_task.apply_async(
            args=[analysis_id],
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "timeout": 1},
        )
    except (BrokerUnavailable, OSError) as exc:
        logger.warning("Analysis %s stays queued: the broker is unreachable (%s)", analysis_id, exc)
        return False
    return True


@worker_process_init.connect
def _prepare_worker_process(**kwargs) -> None:
    """Size PyTorch's threads to this process's share of the cores and load the active model before any task."""
    from detection import inference
    from detection.errors import AnalysisFailure
    from ml.runtime import configure_threads

    threads = configure_threads(
        settings.TORCH_THREADS or None, processes_per_machine=settings.CELERY_WORKER_CONCURRENCY
    )
    detector_model = selectors.detector_model_get_active()
    if detector_model is None:
        logger.warning("No detector model is active; analyses will fail until one is activated.")
        return
    try:
        inference.detector_for(detector_model)
    except AnalysisFailure as exc:
        logger.error("%s", exc)
        return
    finally:
        close_old_connections()
    logger.info("Worker process ready with %s (%d PyTorch threads)", detector_model, threads)
