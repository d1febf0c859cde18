from django.db.models import QuerySet

from accounts.models import User
from detection.models import Analysis, DetectorModel


def detector_model_get_active() -> DetectorModel | None:
    return DetectorModel.objects.filter(is_active=True).first()


def analysis_get(*, user: User, public_id) -> Analysis:
    """The user's analysis with this public ID; Analysis.DoesNotExist for anyone else's, so it reads as a 404."""
    return Analysis.objects.select_related("detector_model").get(owner=user, public_id=public_id)


def analysis_find_reusable(*, user: User, sha256: str, detector_model: DetectorModel | None) -> Analysis | None:
    """An earlier analysis of the same content by the same user that a new upload would only repeat.

    Finished results count when the same model version produced them; unfinished ones count whatever the model,
    since they will run with the active model anyway.
    """
    mine = Analysis.objects.filter(owner=user, sha256=sha256)
    unfinished = mine.filter(status__in=[Analysis.Status.QUEUED, Analysis.Status.RUNNING]).first()
    if unfinished is not None or detector_model is None:
        return unfinished
    return mine.filter(status=Analysis.Status.DONE, detector_model=detector_model).first()


def analysis_list(*, user: User) -> QuerySet[Analysis]:
    return Analysis.objects.filter(owner=user).select_related("detector_model")
