"""Detector models: storing and checking their weights, registering, activating, deleting, evaluating."""

import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.text import slugify

from detection import dispatch, engine
from detection.errors import ModelUnusable
from detection.models import DetectorModel, ModelEvaluation, RegressionSet
from detection.services import regression
from detection.services.calibration import calibration_checked
from detection.services.files import uploaded_file_sha256
from ml.errors import MLError, WeightsError

logger = logging.getLogger(__name__)


def detector_model_store_weights(*, detector_model: DetectorModel, path: Path) -> None:
    """Copy a weights file into storage, where every worker can reach it, and record its SHA-256.

    When the model already names an expected SHA-256 (typed in by an administrator), the file must match it.
    """
    if not path.is_file():
        raise ModelUnusable(f"There is no file at {path}.")
    actual = engine.weights_sha256(path)
    expected = detector_model.sha256.strip().lower()
    if expected and expected != actual:
        raise ModelUnusable(
            f"The weights file has SHA-256 {actual}, but {expected} was expected: it is not the file that was meant. "
            "Check the source, or clear the expected checksum."
        )
    with path.open("rb") as handle:
        detector_model.weights.save(
            f"{slugify(detector_model.name)}-{slugify(detector_model.version)}-{actual[:12]}{path.suffix}",
            File(handle),
            save=False,
        )
    detector_model.sha256 = actual


def detector_model_prepare(*, detector_model_id: int) -> DetectorModel:
    """Fetch the model's weights if they are elsewhere, then load them into the architecture and run a probe image.

    The outcome is recorded on the model: READY with what the probe gave, or FAILED with the reason. Only READY
    models can be activated.
    """
    detector_model = DetectorModel.objects.get(pk=detector_model_id)
    try:
        if not detector_model.weights:
            if detector_model.source == DetectorModel.Source.HUB:
                path = engine.hub_download(detector_model)
            elif detector_model.source == DetectorModel.Source.PATH:
                path = Path(detector_model.server_path)
            else:
                raise ModelUnusable("The model has no weights file.")
            detector_model_store_weights(detector_model=detector_model, path=path)
        message = engine.probe(detector_model)
        if settings.INFERENCE_PRECISION == "auto":
            check = detector_model.precision_check = engine.precision_measure(detector_model)
            message += f" Runs in {check['precision']}: {check['reason']}."
    except (ModelUnusable, MLError, OSError) as exc:
        detector_model.status = DetectorModel.Status.FAILED
        detector_model.status_message = str(exc)
    else:
        detector_model.status = DetectorModel.Status.READY
        detector_model.status_message = message
    detector_model.save()
    return detector_model


def detector_model_register(
    *,
    name: str,
    version: str,
    architecture: str,
    weights_path: Path,
    input_size: int = 224,
    threshold: float = 0.5,
    source: str = DetectorModel.Source.UPLOAD,
    metrics: dict | None = None,
    card: dict | None = None,
    description: str = "",
    face_framing: float | None = None,
    calibration: dict | None = None,
    activate: bool = False,
) -> DetectorModel:
    """Register a model from a local weights file: store the weights, validate them, and activate if asked. A
    calibration (ml.calibration) brings its threshold and uncertain band, which replace `threshold`."""
    if DetectorModel.objects.filter(name=name, version=version).exists():
        raise ValidationError({"version": f"A model named “{name}” with version “{version}” already exists."})
    detector_model = DetectorModel(
        name=name,
        version=version,
        architecture=architecture,
        input_size=input_size,
        threshold=threshold,
        source=source,
        metrics=metrics or {},
        card=card or {},
        description=description,
        face_framing=face_framing,
    )
    if calibration:
        detector_model.calibration_set(calibration_checked(calibration=calibration))
    detector_model.full_clean(exclude=["weights"])
    try:
        detector_model_store_weights(detector_model=detector_model, path=Path(weights_path))
    except ModelUnusable as exc:
        raise ValidationError({"weights": str(exc)}) from None
    detector_model.save()
    detector_model = detector_model_prepare(detector_model_id=detector_model.pk)
    if activate:
        detector_model_activate(detector_model=detector_model)
    return detector_model


def detector_model_activate(*, detector_model: DetectorModel) -> DetectorModel:
    """Make this the one active model; workers switch to it at their next task. Only validated models qualify."""
    if detector_model.status != DetectorModel.Status.READY:
        reason = detector_model.status_message or "it has not been validated yet"
        raise ValidationError(f"“{detector_model}” cannot be activated: {reason}")
    with transaction.atomic():
        DetectorModel.objects.select_for_update().filter(is_active=True).exclude(pk=detector_model.pk).update(
            is_active=False
        )
        detector_model.is_active = True
        detector_model.activated_at = timezone.now()
        detector_model.save(update_fields=["is_active", "activated_at"])
    return detector_model


# --- Detector models in the admin -------------------------------------------------------------------------------


def detector_model_add(*, detector_model: DetectorModel, upload=None) -> DetectorModel:
    """Save a model added in the admin, pending, and have a worker fetch and check its weights once committed.

    An uploaded weights file is stored now, under a name that carries its SHA-256 (taken as it arrives). Hub and
    server-path weights are fetched by the worker, which also loads them and runs the probe (detector_model_prepare).
    """
    if upload is not None:
        sha256 = uploaded_file_sha256(upload)
        suffix = Path(upload.name).suffix.lower()
        detector_model.source = DetectorModel.Source.UPLOAD
        detector_model.weights.save(
            f"{slugify(detector_model.name)}-{slugify(detector_model.version)}-{sha256[:12]}{suffix}",
            upload,
            save=False,
        )
        detector_model.sha256 = sha256
    detector_model.status = DetectorModel.Status.PENDING
    detector_model.status_message = "Waiting for a worker to fetch and check the weights."
    detector_model.is_active = False
    try:
        with transaction.atomic():
            detector_model.save()
            transaction.on_commit(
                lambda: detector_model_prepare_enqueue(detector_model_id=detector_model.pk), robust=True
            )
    except DatabaseError:
        if detector_model.weights:
            detector_model.weights.delete(save=False)
        raise
    return detector_model


def detector_model_prepare_enqueue(*, detector_model_id: int) -> bool:
    """Ask a worker to (re)check the model; when the queue is unreachable, the model says so and stays pending."""
    queued = dispatch.send(dispatch.MODEL_CHECK, detector_model_id)
    if not queued:
        DetectorModel.objects.filter(pk=detector_model_id, status=DetectorModel.Status.PENDING).update(
            status_message="The task queue could not be reached, so no worker is checking these weights. "
            "Use “Check the weights again” once the queue is back."
        )
    return queued


def detector_model_recheck(*, detector_model: DetectorModel) -> DetectorModel:
    """Mark the model pending and have a worker load it and run the probe again (after a failure or a change)."""
    if detector_model.is_active:
        raise ValidationError(
            f"“{detector_model}” is the active model; activate another model before checking this one again."
        )
    with transaction.atomic():
        detector_model.status = DetectorModel.Status.PENDING
        detector_model.status_message = "Waiting for a worker to check the weights again."
        detector_model.save(update_fields=["status", "status_message"])
        transaction.on_commit(lambda: detector_model_prepare_enqueue(detector_model_id=detector_model.pk), robust=True)
    return detector_model


def detector_model_verify_weights(*, detector_model: DetectorModel) -> None:
    """Check the stored weights still have the SHA-256 recorded when they arrived; on a mismatch the model is marked
    failed and ValidationError says so."""
    try:
        engine.weights_verify(detector_model)
    except (ModelUnusable, WeightsError, OSError) as exc:
        detector_model.status = DetectorModel.Status.FAILED
        detector_model.status_message = str(exc)
        detector_model.save(update_fields=["status", "status_message"])
        raise ValidationError(f"“{detector_model}” cannot be used: {exc}") from None


def detector_model_activate_checked(
    *, detector_model: DetectorModel, accept_worse_on: int | None = None
) -> DetectorModel:
    """Activate a validated model after checking its stored weights are still the ones that were validated, and
    that it does no worse than the active model on the regression set (regression.RegressionWorse, a
    ValidationError) unless the administrator accepted that for this regression set version."""
    if detector_model.status == DetectorModel.Status.READY:
        detector_model_verify_weights(detector_model=detector_model)
        regression.regression_gate_check(candidate=detector_model, accepted_version=accept_worse_on)
    return detector_model_activate(detector_model=detector_model)  # refuses unvalidated models, with the reason


def detector_model_delete(*, detector_model: DetectorModel) -> None:
    """Delete an inactive model and (once committed) its weights; its analyses keep their results and its name.
    ValidationError for the active model (DetectorModel.delete)."""
    detector_model.delete()


def detector_model_evaluation_start(
    *, detector_model: DetectorModel, dataset_path: str, regression_set: RegressionSet | None = None
) -> ModelEvaluation:
    """Record an evaluation of the model on a folder with real/ and fake/ (or on a regression set version, which
    dataset_path then names) and queue it for a worker."""
    if detector_model.status != DetectorModel.Status.READY:
        raise ValidationError(f"“{detector_model}” cannot be evaluated before its weights have been checked.")
    with transaction.atomic():
        evaluation = ModelEvaluation.objects.create(
            detector_model=detector_model, dataset_path=dataset_path, regression_set=regression_set
        )
        transaction.on_commit(lambda: detector_model_evaluation_enqueue(evaluation_id=evaluation.pk), robust=True)
    return evaluation


def detector_model_evaluation_enqueue(*, evaluation_id: int) -> bool:
    queued = dispatch.send(dispatch.MODEL_EVALUATION, evaluation_id)
    if not queued:
        ModelEvaluation.objects.filter(pk=evaluation_id, status=ModelEvaluation.Status.QUEUED).update(
            status=ModelEvaluation.Status.FAILED,
            error_message="The task queue could not be reached; start the evaluation again once it is back.",
            finished_at=timezone.now(),
        )
    return queued


def detector_model_evaluate(*, evaluation_id: int) -> ModelEvaluation | None:
    """Measure the model on the evaluation's folder; store the report, the ROC and PR curves, and the headline
    metrics on the model (under metrics["evaluation"], next to the training's own)."""
    with transaction.atomic():
        evaluation = (
            ModelEvaluation.objects.select_for_update()
            .select_related("detector_model")
            .filter(pk=evaluation_id, status=ModelEvaluation.Status.QUEUED)
            .first()
        )
        if evaluation is None:  # gone, or another delivery already took it
            return None
        evaluation.status = ModelEvaluation.Status.RUNNING
        evaluation.save(update_fields=["status"])
    detector_model = evaluation.detector_model
    try:
        if evaluation.regression_set_id:
            report, curves = regression.regression_set_evaluate(
                detector_model=detector_model, regression_set=evaluation.regression_set
            )
        else:
            report, curves = engine.evaluate(detector_model, evaluation.dataset_path)
        for field, name in ((evaluation.roc_curve, "roc.png"), (evaluation.pr_curve, "pr.png")):
            if name in curves:
                field.save(f"evaluation-{evaluation.pk}-{name}", ContentFile(curves[name]), save=False)
    except (ModelUnusable, MLError, OSError, ValueError) as exc:
        logger.warning("Evaluation %s failed: %s", evaluation_id, exc)
        evaluation.status = ModelEvaluation.Status.FAILED
        evaluation.error_message = str(exc)
        evaluation.finished_at = timezone.now()
        evaluation.save(update_fields=["status", "error_message", "finished_at"])
        return evaluation
    evaluation.report = report
    evaluation.status = ModelEvaluation.Status.DONE
    evaluation.error_message = ""
    evaluation.finished_at = timezone.now()
    with transaction.atomic():
        evaluation.save()
        detector_model = DetectorModel.objects.select_for_update().get(pk=detector_model.pk)
        detector_model.metrics = {
            **detector_model.metrics,
            # A regression set result sits next to the dataset one rather than replacing it.
            "regression_set" if evaluation.regression_set_id else "evaluation": {
                **report["metrics"],
                "dataset": evaluation.dataset_path,
                "evaluated_at": evaluation.finished_at.isoformat(),
                "evaluation_id": evaluation.pk,
            },
        }
        detector_model.save(update_fields=["metrics"])
    return evaluation


def detector_model_description(card: dict) -> str:
    """What a trained model detects and its limits, for every page that shows its results."""
    if card.get("detects") or card.get("limitations"):
        return " ".join(part for part in (card.get("detects"), card.get("limitations")) if part)
    data, validation = card.get("data", {}), card.get("metrics", {}).get("validation", {})
    counts = data.get("counts", {}).get("train", {})
    auc = validation.get("roc_auc")
    return (
        f"Trained by this product on {data.get('train_dir') or 'a folder of images'} "
        f"({counts.get('real', '?')} real and {counts.get('fake', '?')} fake training images)"
        + (f"; validation ROC-AUC {auc:.3f}" if auc is not None else "")
        + ". It has only been validated on images like those it was trained on."
    )


def detector_model_register_package(*, package_dir: Path, activate: bool = False) -> DetectorModel:
    """Register a model package (weights and card) as a validated detector model, activated if asked;
    ValidationError with the reason when it cannot be used."""
    try:
        card, weights = engine.package_read(package_dir)
    except MLError as exc:
        raise ValidationError(str(exc)) from None
    model = detector_model_register(
        name=card["name"][:100],
        version=str(card.get("version") or card["sha256"][:12])[:50],
        architecture=card["architecture"],
        weights_path=weights,
        input_size=card["input_size"],
        threshold=card["threshold"],
        source=DetectorModel.Source.TRAINING,
        metrics=card.get("metrics", {}),
        card=card,
        description=detector_model_description(card),
        face_framing=(card.get("faces") or {}).get("framing"),
        calibration=card.get("calibration"),
    )
    if model.status != DetectorModel.Status.READY:
        raise ValidationError(f"“{model}” was registered but failed validation: {model.status_message}")
    return detector_model_activate(detector_model=model) if activate else model
