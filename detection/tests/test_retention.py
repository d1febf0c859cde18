"""Retention of originals: past ORIGINALS_RETENTION_DAYS only the verdict and the small pictures remain; a run
that is interrupted or meets a failing storage can simply be run again."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from detection import services, tasks
from detection.models import Analysis
from detection.tests.factories import AnalysisFactory

pytestmark = pytest.mark.django_db


def stored_analysis(user, *, days_old: float, status=Analysis.Status.DONE, seed: int = 0) -> Analysis:
    """A finished analysis as the pipeline leaves it: an original and three result pictures in storage."""
    analysis = AnalysisFactory(owner=user, original_name=f"photo-{seed}.jpg", status=status)
    analysis.original.save(f"{analysis.public_id}.jpg", ContentFile(b"image"), save=False)
    for field in (analysis.thumbnail, analysis.heatmap, analysis.overlay):
        field.save(f"{analysis.public_id}-{field.field.name}.webp", ContentFile(b"result"), save=False)
    analysis.save()
    Analysis.objects.filter(pk=analysis.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return Analysis.objects.get(pk=analysis.pk)


def originals(media) -> list[str]:
    return sorted(path.name for path in (media / "originals").glob("*"))


def results(media) -> int:
    return len(list((media / "results").glob("*")))


def test_old_originals_of_finished_analyses_go_and_everything_else_stays(user, settings, _media_in_tmp):
    settings.ORIGINALS_RETENTION_DAYS = 30
    old_done = stored_analysis(user, days_old=31, seed=1)
    old_failed = stored_analysis(user, days_old=45, status=Analysis.Status.FAILED, seed=2)
    recent = stored_analysis(user, days_old=29, seed=3)
    old_queued = stored_analysis(user, days_old=40, status=Analysis.Status.QUEUED, seed=4)

    report = services.analysis_originals_expire()

    assert report == services.RetentionReport(expired=2, failed=0)
    assert originals(_media_in_tmp) == sorted([f"{recent.public_id}.jpg", f"{old_queued.public_id}.jpg"])
    assert results(_media_in_tmp) == 12  # every thumbnail, heatmap and overlay is kept
    for analysis in (old_done, old_failed):
        analysis.refresh_from_db()
        assert not analysis.original and analysis.heatmap and analysis.thumbnail and analysis.overlay
    assert Analysis.objects.count() == 4


def test_the_cut_off_moves_with_time(user, settings, _media_in_tmp):
    settings.ORIGINALS_RETENTION_DAYS = 7
    analysis = stored_analysis(user, days_old=1)

    assert services.analysis_originals_expire().expired == 0
    assert services.analysis_originals_expire(now=timezone.now() + timedelta(days=6, hours=1)).expired == 1
    analysis.refresh_from_db()
    assert not analysis.original and originals(_media_in_tmp) == []


def test_zero_days_keeps_originals_for_good(user, settings, _media_in_tmp):
    settings.ORIGINALS_RETENTION_DAYS = 0
    stored_analysis(user, days_old=3650)

    assert services.analysis_originals_expire() == services.RetentionReport(expired=0, failed=0)
    assert len(originals(_media_in_tmp)) == 1
    assert "0 originals not to be kept (ORIGINALS_RETENTION_DAYS=0 keeps the rest) deleted." in run_command()


@pytest.mark.parametrize("days", [30, 0])
def test_an_original_its_uploader_did_not_want_kept_goes_at_the_next_run_whatever_its_age(
    user, settings, _media_in_tmp, days
):
    """Normally the run itself discards it; this catches a run cut short between its result and the discard."""
    settings.ORIGINALS_RETENTION_DAYS = days
    unkept = stored_analysis(user, days_old=0.01, seed=1)
    Analysis.objects.filter(pk=unkept.pk).update(keep_original=False)
    kept = stored_analysis(user, days_old=0.01, seed=2)

    assert services.analysis_originals_expire().expired == 1
    assert originals(_media_in_tmp) == [f"{kept.public_id}.jpg"]


def test_a_failed_analysis_does_not_keep_an_original_its_uploader_did_not_want_kept(
    user, active_model, upload, settings, _media_in_tmp
):
    from detection.models import DetectorModel

    analysis = services.analysis_create(user=user, file=upload(), source="web", keep_original=False).analysis
    DetectorModel.objects.update(is_active=False)

    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED and not analysis.original
    assert originals(_media_in_tmp) == []


class Interrupted(BaseException):
    """The process being stopped: not an error the retention run could catch."""


class StorageThatDies:
    """Deletes files like the real storage, but the process dies right after the n-th deletion, before the
    database hears of it: the worst moment, a file gone and its row still naming it."""

    def __init__(self, real, *, die_after: int):
        self.real, self.die_after, self.deleted = real, die_after, 0

    def __getattr__(self, name):
        return getattr(self.real, name)

    def delete(self, name):
        self.real.delete(name)
        self.deleted += 1
        if self.deleted == self.die_after:
            raise Interrupted


def test_a_run_interrupted_half_way_completes_when_run_again(user, settings, monkeypatch, _media_in_tmp):
    settings.ORIGINALS_RETENTION_DAYS = 30
    analyses = [stored_analysis(user, days_old=60, seed=seed) for seed in range(4)]
    field = Analysis._meta.get_field("original")
    real = field.storage
    monkeypatch.setattr(field, "storage", StorageThatDies(real, die_after=2))

    with pytest.raises(Interrupted):
        services.analysis_originals_expire()

    assert len(originals(_media_in_tmp)) == 2
    # The second file is gone but its row still names it: the next run must cope with the missing file.
    assert Analysis.objects.exclude(original="").count() == 3
    monkeypatch.setattr(field, "storage", real)

    report = services.analysis_originals_expire()

    assert report == services.RetentionReport(expired=3, failed=0)
    assert originals(_media_in_tmp) == [] and results(_media_in_tmp) == 12
    assert not Analysis.objects.exclude(original="").exists()
    assert services.analysis_originals_expire() == services.RetentionReport(expired=0, failed=0)
    assert {a.pk for a in analyses} == set(Analysis.objects.values_list("pk", flat=True))


class StorageRefusingOne:
    def __init__(self, real, refused: str):
        self.real, self.refused = real, refused

    def __getattr__(self, name):
        return getattr(self.real, name)

    def delete(self, name):
        if name == self.refused:
            raise OSError(5, "Input/output error")
        self.real.delete(name)


def test_a_file_the_storage_cannot_delete_is_left_for_the_next_run(user, settings, monkeypatch, _media_in_tmp, caplog):
    settings.ORIGINALS_RETENTION_DAYS = 30
    stuck = stored_analysis(user, days_old=60, seed=1)
    stored_analysis(user, days_old=60, seed=2)
    field = Analysis._meta.get_field("original")
    real = field.storage
    monkeypatch.setattr(field, "storage", StorageRefusingOne(real, stuck.original.name))

    assert services.analysis_originals_expire() == services.RetentionReport(expired=1, failed=1)
    assert originals(_media_in_tmp) == [f"{stuck.public_id}.jpg"]
    assert f"could not delete the original {stuck.original.name}" in caplog.text
    with pytest.raises(CommandError, match="1 originals could not be deleted"):
        call_command("expire_originals")

    monkeypatch.setattr(field, "storage", real)
    assert "1 originals older than 30 days deleted." in run_command()
    assert originals(_media_in_tmp) == []


def run_command() -> str:
    from io import StringIO

    out = StringIO()
    call_command("expire_originals", stdout=out)
    return out.getvalue()


def test_beat_runs_the_expiry_every_hour(user, settings, _media_in_tmp):
    settings.ORIGINALS_RETENTION_DAYS = 30
    stored_analysis(user, days_old=31)

    schedule = settings.CELERY_BEAT_SCHEDULE["expire-originals"]
    assert schedule == {"task": "detection.tasks.analysis_originals_expire_task", "schedule": 3600.0}
    tasks.analysis_originals_expire_task.apply()
    assert originals(_media_in_tmp) == []


def test_originals_expire_from_s3_too(user, s3_bucket, settings):
    settings.ORIGINALS_RETENTION_DAYS = 30
    old = stored_analysis(user, days_old=31, seed=1)
    recent = stored_analysis(user, days_old=1, seed=2)

    assert services.analysis_originals_expire().expired == 1

    keys = s3_bucket.object_keys()
    assert f"originals/{old.public_id}.jpg" not in keys and f"originals/{recent.public_id}.jpg" in keys
    assert f"results/{old.public_id}-heatmap.webp" in keys
