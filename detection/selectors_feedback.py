"""Reads for the feedback loop: users' flags of verdicts, the regression set's versions and the models' results on
them."""

from django.db.models import QuerySet

from accounts.models import User
from detection.models import Analysis, DetectorModel, ModelEvaluation, RegressionSet, VerdictFlag


def verdict_flag_get(*, analysis: Analysis, user: User | None = None) -> VerdictFlag | None:
    """The user's flag of this analysis (its owner's by default), if they flagged it."""
    return VerdictFlag.objects.filter(owner_id=user.pk if user else analysis.owner_id, analysis=analysis).first()


def verdict_flag_list_for_regression_set() -> QuerySet[VerdictFlag]:
    """The flags whose files make the regression set: confirmed, consented to, and with their copy kept."""
    return (
        VerdictFlag.objects.filter(status=VerdictFlag.Status.CONFIRMED, consent=True).exclude(image="").order_by("pk")
    )


def regression_set_latest() -> RegressionSet | None:
    return RegressionSet.objects.order_by("-version").first()


def regression_evaluation_list(*, detector_model: DetectorModel) -> QuerySet[ModelEvaluation]:
    """The model's finished evaluations on regression set versions, the newest version first, then the newest run."""
    return (
        ModelEvaluation.objects.filter(
            detector_model=detector_model, status=ModelEvaluation.Status.DONE, regression_set__isnull=False
        )
        .select_related("regression_set")
        .order_by("-regression_set__version", "-finished_at", "-pk")
    )


def regression_evaluation_latest(*, detector_model: DetectorModel) -> ModelEvaluation | None:
    return regression_evaluation_list(detector_model=detector_model).first()


def regression_evaluations_on_common_version(
    *, detector_model: DetectorModel, other: DetectorModel
) -> tuple[ModelEvaluation, ModelEvaluation] | None:
    """Both models' latest results on the newest regression set version both were evaluated on, or None."""
    theirs = {}
    for evaluation in regression_evaluation_list(detector_model=other):
        theirs.setdefault(evaluation.regression_set_id, evaluation)
    for evaluation in regression_evaluation_list(detector_model=detector_model):
        if evaluation.regression_set_id in theirs:
            return evaluation, theirs[evaluation.regression_set_id]
    return None
