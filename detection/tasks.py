"""Background work. Tasks take IDs and call services; nothing heavy ever travels through the broker.

With a broker (CELERY_BROKER_URL) tasks go to Celery workers, each worker process keeping one detector loaded.
Without one (the embedded default) the same service code runs in a background thread of the web process, so a
request never waits for an analysis either way.
"""

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from celery import shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
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


@shared_task
def analysis_originals_expire_task() -> None:
    report = services.analysis_originals_expire()
    if report.expired or report.failed:
        logger.info("Retention: %d originals deleted, %d could not be deleted", report.expired, report.failed)


# Sending a task tries the broker twice, half a second apart: a request never waits long on a broker that is down.
SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}

_executors: dict[str, ThreadPoolExecutor] = {}
_executor_lock = threading.Lock()


def _single_thread_executor(name: str) -> ThreadPoolExecutor:
    """The web process's background thread for one kind of work (without a broker), started on first use."""
    with _executor_lock:
        if name not in _executors:
            _executors[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return _executors[name]


def _in_process_executor() -> ThreadPoolExecutor:
    """One analysis at a time: PyTorch already uses every core for one image."""
    return _single_thread_executor("analysis")


def _release_connections() -> None:
    """Close this thread's database connections after a job: an executor thread may idle for hours, and an idle
    connection it kept would hold a server slot (and stop a test database from being dropped). Run inline in the
    request's own thread, the request's connections are left to Django."""
    if threading.current_thread() is not threading.main_thread():
        connections.close_all()
    else:
        close_old_connections()


def _run_in_thread(job: Callable[[], object]) -> None:
    """Run a job in a background thread of the web process; its failures are logged, never raised."""
    close_old_connections()
    try:
        job()
    except Exception:
        logger.exception("In-process job %r failed", job)
    finally:
        _release_connections()


def analysis_submit(*, analysis_id: int) -> bool:
    """Send the analysis to the workers, or to the in-process runner without a broker; False if the broker is down."""
    if not settings.CELERY_BROKER_URL:
        job = partial(services.analysis_run, analysis_id=analysis_id, task_id=f"in-process-{uuid.uuid4()}")
        _in_process_executor().submit(_run_in_thread, job)
        return True
    try:
        analysis_run_task.apply_async(
            args=[analysis_id],
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )
    except (BrokerUnavailable, OSError) as exc:
        logger.warning("Analysis %s stays queued: the broker is unreachable (%s)", analysis_id, exc)
        return False
    except Exception:  # the row is committed either way: the sweeper sends it later
        logger.exception("Analysis %s stays queued: sending it to the broker failed", analysis_id)
        return False
    return True


# --- Detector model jobs from the admin: fetching and checking weights, evaluations ----------------------------


@shared_task(acks_late=True, reject_on_worker_lost=True)
def detector_model_prepare_task(detector_model_id: int) -> None:
    services.detector_model_prepare(detector_model_id=detector_model_id)


# Acknowledged on receipt: an evaluation can outlast the broker's visibility timeout, and a redelivery would run it
# twice. If its worker dies, the evaluation stays "running" and the administrator starts another.
@shared_task(acks_late=False)
def detector_model_evaluate_task(evaluation_id: int) -> None:
    services.detector_model_evaluate(evaluation_id=evaluation_id)


def _model_jobs_executor() -> ThreadPoolExecutor:
    """A thread of its own, so an hour-long evaluation never holds up people's analyses."""
    return _single_thread_executor("model-jobs")


def _submit_model_job(task, object_id: int) -> bool:
    if not settings.CELERY_BROKER_URL:
        _model_jobs_executor().submit(_run_in_thread, partial(task.run, object_id))
        return True
    try:
        task.apply_async(
            args=[object_id],
            retry=True,
            retry_policy=SEND_RETRY_POLICY,
        )
    except Exception as exc:  # broker down or refusing: the caller records that nothing was queued
        logger.warning("%s(%s) could not be queued: %s", task.name, object_id, exc)
        return False
    return True


def detector_model_prepare_submit(*, detector_model_id: int) -> bool:
    return _submit_model_job(detector_model_prepare_task, detector_model_id)


def detector_model_evaluate_submit(*, evaluation_id: int) -> bool:
    return _submit_model_job(detector_model_evaluate_task, evaluation_id)


@worker_process_init.connect
def _prepare_worker_process(**kwargs) -> None:
    """Size PyTorch's threads to this process's share of the cores and load the active model before any task."""
    from detection import inference
    from detection.errors import AnalysisFailure
    from ml.runtime import configure_threads

    threads = configure_threads(
        settings.TORCH_THREADS or None, processes_per_machine=settings.CELERY_WORKER_CONCURRENCY
    )
    try:
        detector_model = selectors.detector_model_get_active()
        if detector_model is None:
            logger.warning("No detector model is active; analyses will fail until one is activated.")
            return
        inference.detector_for(detector_model)
    except AnalysisFailure as exc:
        logger.error("%s", exc)
        return
    except DatabaseError as exc:
        # Not fatal: each task reads the active model again, once the database answers.
        logger.error("The worker process could not read the active model from the database (%s)", exc)
        return
    finally:
        close_old_connections()
    logger.info("Worker process ready with %s (%d PyTorch threads)", detector_model, threads)
