"""Deletion that really deletes: an analysis deleted while it runs does not come back, and leaves no pictures."""

import pytest

from detection import services
from detection.models import Analysis
from detection.services import analyses

pytestmark = pytest.mark.django_db


def media_files(media) -> list[str]:
    return sorted(p.name for p in media.rglob("*") if p.is_file() and "models" not in p.parts)


@pytest.mark.parametrize("what", ["analysis", "account"])
def test_deleted_while_running_it_stays_deleted_and_its_pictures_go(
    what, user, active_model, upload, run_inline, monkeypatch, _media_in_tmp
):
    analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    real_save = analyses.pictures_save

    def save_then_owner_deletes(running, pictures):
        real_save(running, pictures)  # the pictures are stored...
        # ...and meanwhile, in another request, the owner deletes the analysis or the whole account.
        if what == "analysis":
            Analysis.objects.filter(pk=running.pk).delete()
        else:
            user.delete()

    monkeypatch.setattr(analyses, "pictures_save", save_then_owner_deletes)

    with run_inline():
        assert services.analysis_run(analysis_id=analysis.pk) is None

    assert not Analysis.objects.exists()
    assert media_files(_media_in_tmp) == []
