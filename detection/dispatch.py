"""Sending work off: to the Celery workers through the broker, or, without one, to a background thread of this
process. The only verb is `send(job, object_id)`; it answers whether the work left (False: the broker is down, and
the caller records that for the sweeper or the administrator).

Jobs are named, not imported: the tasks (detection.tasks) call the services, and the services send jobs, so naming
the task keeps that loop out of the imports. Without a broker, the task's own function runs in a thread: analyses in
one, the administrator's model jobs (fetching and checking weights, evaluations) in another, so an hour-long
evaluation never holds up anyone's analysis. A job runs with its own database connection, closed when it ends.
"""

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connections

from deepfake_site.celery import app as celery_app

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    task: str  # the Celery task's name
    thread: str  # the background thread it runs in without a broker


ANALYSIS = Job("detection.tasks.analysis_run_task", "analysis")
# Its own queue (settings.CELERY_TASK_ROUTES) and, without a broker, its own thread: a long video never delays an image.
VIDEO = Job("detection.tasks.video_run_task", "video")
MODEL_CHECK = Job("detection.tasks.detector_model_prepare_task", "model-jobs")
MODEL_EVALUATION = Job("detection.tasks.detector_model_evaluate_task", "model-jobs")
# Webhook deliveries have their own thread: a slow receiver (and, without a broker, its retries) delays no analysis.
WEBHOOK = Job("detection.tasks.webhook_delivery_send_task", "webhooks")

# Sending tries the broker twice, half a second apart: a request never waits long on a broker that is down.
SEND_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}

_executors: dict[str, ThreadPoolExecutor] = {}
_executor_lock = threading.Lock()


def send(job: Job, object_id: int, **time_limits: int) -> bool:
    """Hand the job to a worker, or to this process's thread for it without a broker; False when the broker is
    unreachable (or refuses). time_limits (soft_time_limit, time_limit in seconds) replace the task's own, for work
    whose length depends on its object (a video's)."""
    if not settings.CELERY_BROKER_URL:
        executor(job.thread).submit(run_in_thread, partial(celery_app.tasks[job.task].run, object_id))
        return True
    try:
        celery_app.send_task(job.task, args=[object_id], retry=True, retry_policy=SEND_RETRY_POLICY, **time_limits)
    except Exception as exc:  # the caller's row is committed either way: it records that nothing left
        logger.warning("%s(%s) could not be sent to the broker: %s", job.task, object_id, exc)
        return False
    return True


def executor(thread: str) -> ThreadPoolExecutor:
    """This process's background thread for one kind of work, started on first use. One at a time: PyTorch already
    uses every core for one image."""
    with _executor_lock:
        if thread not in _executors:
            _executors[thread] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread)
        return _executors[thread]


def run_in_thread(job: Callable[[], object]) -> None:
    """Run a job in a background thread; its failures are logged, never raised."""
    close_old_connections()
    try:
        job()
    except Exception:
        logger.exception("Background job %r failed", job)
    finally:
        _release_connections()


def _release_connections() -> None:
    """Close this thread's database connections after a job: an executor thread may idle for hours, and an idle
    connection it kept would hold a server slot (and stop a test database from being dropped). Run inline in the
    request's own thread, the request's connections are left to Django."""
    if threading.current_thread() is not threading.main_thread():
        connections.close_all()
    else:
        close_old_connections()
