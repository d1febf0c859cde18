"""Detector models' calibrations and operating points: adopting a calibration (from a model card or an evaluation)
and moving the threshold to a target false-positive rate. The rules themselves are ml.calibration's, reached
through detection.engine."""

from django.core.exceptions import ValidationError
from django.db import transaction

from detection import engine
from detection.models import DetectorModel, ModelEvaluation
from ml.errors import MLError


def calibration_checked(*, calibration: dict) -> dict:
    """The calibration, or ValidationError saying why it cannot be used."""
    try:
        engine.calibration_check(calibration)
    except MLError as exc:
        raise ValidationError(f"The calibration cannot be used: {exc}") from None
    return calibration


def detector_model_calibration_apply(*, detector_model: DetectorModel, calibration: dict) -> DetectorModel:
    """Calibrate the model's probabilities from now on, with the threshold and uncertain band fitted with the
    calibration; workers reload the model at their next analysis (its cache key changes)."""
    calibration_checked(calibration=calibration)
    with transaction.atomic():
        detector_model = DetectorModel.objects.select_for_update().get(pk=detector_model.pk)
        detector_model.calibration_set(calibration)
        detector_model.save(
            update_fields=["calibration", "threshold", "threshold_rule", "uncertain_low", "uncertain_high"]
        )
    return detector_model


def detector_model_calibration_from_evaluation(*, evaluation: ModelEvaluation) -> DetectorModel:
    """Apply the calibration an evaluation fitted on its predictions to the evaluated model."""
    calibration = (evaluation.report or {}).get("calibration")
    if evaluation.status != ModelEvaluation.Status.DONE or not calibration:
        raise ValidationError(
            f"The evaluation on {evaluation.dataset_path} fitted no calibration (it needs real and fake images)."
        )
    return detector_model_calibration_apply(detector_model=evaluation.detector_model, calibration=calibration)


def detector_model_threshold_for_fpr(*, detector_model: DetectorModel, target_fpr: float) -> DetectorModel:
    """Set the threshold to the lowest one whose validation false-positive rate is at most target_fpr, from the
    calibration's stored ROC points, with the rule and the uncertain band for it; ValidationError when the model
    has no stored ROC points or none reaches the target."""
    with transaction.atomic():
        detector_model = DetectorModel.objects.select_for_update().get(pk=detector_model.pk)
        if not (detector_model.calibration or {}).get("roc"):
            raise ValidationError(
                f"“{detector_model}” has no stored validation ROC points: apply a calibration first (from its model "
                "card, or from an evaluation on a labelled folder), then choose a threshold by false-positive rate."
            )
        try:
            point = engine.calibration_operating_point(detector_model.calibration, target_fpr)
        except MLError as exc:
            raise ValidationError(str(exc)) from None
        detector_model.operating_point_set(
            threshold=point["threshold"], rule=point["threshold_rule"], band=point["uncertain_band"]
        )
        detector_model.save(update_fields=["threshold", "threshold_rule", "uncertain_low", "uncertain_high"])
    return detector_model


def detector_model_threshold_set(*, detector_model: DetectorModel, threshold: float) -> DetectorModel:
    """A threshold typed in by hand: recorded as such, with the uncertain band for it when the model is calibrated
    (none otherwise: the UNCERTAIN_MARGIN rule)."""
    calibrated = bool((detector_model.calibration or {}).get("method"))
    detector_model.operating_point_set(
        threshold=threshold,
        rule={"rule": "manual", "description": "set by hand in the admin"},
        band=engine.calibration_band(threshold) if calibrated else None,
    )
    detector_model.save(update_fields=["threshold", "threshold_rule", "uncertain_low", "uncertain_high"])
    return detector_model
