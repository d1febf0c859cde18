"""The sweeper: analyses stuck in queued or running are queued again, or failed once they used up their attempts."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from detection import services
from detection.models import Analysis

pytestmark = pytest.mark.django_db


@pytest.fixture
def analysis(user, active_model, upload):
    return services.analysis_create(user=user, file=upload(), source="web").analysis


def later(seconds: int):
    return timezone.now() + timedelta(seconds=seconds)


def test_an_upload_that_never_reached_the_queue_is_sent_and_run(analysis, run_inline):
    Analysis.objects.filter(pk=analysis.pk).update(enqueued_at=None)

    with run_inline():
        report = services.analysis_sweep(now=later(60))

    assert report.requeued == 1
    assert Analysis.objects.get().status == Analysis.Status.DONE


def test_fresh_uploads_are_left_alone(analysis, run_inline):
    Analysis.objects.filter(pk=analysis.pk).update(enqueued_at=None)

    assert services.analysis_sweep().requeued == 0
    assert services.analysis_sweep(now=later(3000)).requeued == 1


def test_a_queued_message_lost_by_the_broker_is_sent_again(analysis, settings, run_inline):
    Analysis.objects.filter(pk=analysis.pk).update(enqueued_at=timezone.now())

    assert services.analysis_sweep(now=later(settings.ANALYSIS_QUEUE_TIMEOUT - 10)).requeued == 0
    with run_inline():
        assert services.analysis_sweep(now=later(settings.ANALYSIS_QUEUE_TIMEOUT + 10)).requeued == 1
    assert Analysis.objects.get().status == Analysis.Status.DONE


def test_a_run_past_its_time_limit_is_run_again(analysis, settings, run_inline):
    Analysis.objects.filter(pk=analysis.pk).update(
        status="running", started_at=timezone.now(), attempts=1, task_id="dead"
    )

    assert services.analysis_sweep(now=later(settings.ANALYSIS_TIME_LIMIT)).requeued == 0
    with run_inline():
        report = services.analysis_sweep(now=later(settings.ANALYSIS_TIME_LIMIT + 60))

    done = Analysis.objects.get()
    assert report.requeued == 1 and done.status == Analysis.Status.DONE and done.attempts == 2


def test_a_run_that_used_up_its_attempts_fails_with_a_message(analysis, settings):
    Analysis.objects.filter(pk=analysis.pk).update(
        status="running", started_at=timezone.now(), attempts=settings.ANALYSIS_MAX_ATTEMPTS
    )

    report = services.analysis_sweep(now=later(settings.ANALYSIS_TIME_LIMIT + 60))

    failed = Analysis.objects.get()
    assert report.failed == 1 and failed.status == Analysis.Status.FAILED
    assert failed.error_message.startswith(
        f"The analysis did not finish after {settings.ANALYSIS_MAX_ATTEMPTS} attempts"
    )


def test_the_command_reports_what_it_did(analysis, capsys):
    call_command("sweep_analyses")

    assert capsys.readouterr().out.strip() == "0 analyses queued again, 0 failed after too many attempts."
