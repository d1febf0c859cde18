"""Models are evaluated on the regression set (with a dataset evaluation, or alone), the model page compares the
candidate with the active model on the same version, and activating a model that does worse asks first."""

from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone

from detection import services
from detection.models import DetectorModel, ModelEvaluation, RegressionSet
from detection.services import feedback, regression
from detection.tests.factories import AnalysisFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:detection_detectormodel_changelist"


def page_messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def replacement(active_model, tmp_path):
    """A second validated model with other weights (as test_workers makes its replacement), not active."""
    from ml.tests.conftest import calibrated_model
    from ml.weights import save_weights

    weights = tmp_path / "other.safetensors"
    save_weights(calibrated_model("resnet18", seed=1), weights)
    model = DetectorModel(name="replacement", version="2", architecture="resnet18", status=DetectorModel.Status.READY)
    services.detector_model_store_weights(detector_model=model, path=weights)
    model.save()
    return model


@pytest.fixture
def regression_set(user, django_user_model, make_image_bytes) -> RegressionSet:
    """Version 1: three real and three fake files that users flagged, with consent, and staff confirmed."""
    staff = django_user_model.objects.create_superuser(username="reviewer", email="r@example.com", password="x")
    for seed, (said, probability_fake) in enumerate([("real", 0.9)] * 3 + [("fake", 0.1)] * 3):
        analysis = AnalysisFactory(owner=user, done=True, probability_fake=probability_fake)
        image = make_image_bytes(96, 96, fmt="PNG", seed=seed)
        analysis.original.save(f"{analysis.public_id}.png", ContentFile(image))
        flag = feedback.verdict_flag_submit(analysis=analysis, user=user, label=said, consent=True)
        assert feedback.verdict_flag_confirm(flag=flag, reviewer=staff).kept
    return regression.regression_set_build(user=staff)


@pytest.fixture
def dataset(tmp_path, make_image_bytes) -> Path:
    root = tmp_path / "dataset"
    for label, offset in (("real", 20), ("fake", 30)):
        (root / label).mkdir(parents=True)
        for index in range(2):
            (root / label / f"{index}.png").write_bytes(make_image_bytes(96, 96, fmt="PNG", seed=offset + index))
    return root


# --- Evaluating on the regression set ---------------------------------------------------------------------------


def test_evaluating_a_model_also_evaluates_it_on_the_latest_regression_set(
    staff_client, run_inline, active_model, regression_set, dataset
):
    url = reverse("admin:detection_detectormodel_evaluate", args=[active_model.pk])
    with run_inline():
        response = staff_client.post(url, {"dataset_path": str(dataset)}, follow=True)

    on_dataset = ModelEvaluation.objects.get(regression_set=None)
    on_set = ModelEvaluation.objects.get(regression_set=regression_set)
    assert on_dataset.status == on_set.status == ModelEvaluation.Status.DONE, on_set.error_message
    assert on_dataset.report["metrics"]["counts"] == {"real": 2, "fake": 2}
    metrics = on_set.report["metrics"]
    assert metrics["counts"] == {"real": 3, "fake": 3} and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["roc_auc"] is not None and on_set.roc_curve.read()[:8] == b"\x89PNG\r\n\x1a\n"
    assert on_set.report["regression_set"] == {"version": 1, "files": 6, "missing_flags": []}
    assert on_set.dataset_path == "regression set v1"
    active_model.refresh_from_db()
    assert active_model.metrics["evaluation"]["dataset"] == str(dataset)  # the dataset's result stays
    assert active_model.metrics["regression_set"]["accuracy"] == metrics["accuracy"]
    assert "on regression set v1 too" in page_messages(response)
    logged = LogEntry.objects.filter(action_flag=CHANGE, object_id=str(active_model.pk))
    assert {entry.change_message for entry in logged} == {
        f"Started an evaluation on {dataset}.",
        "Started an evaluation on regression set v1.",
    }


def test_the_regression_set_alone_and_a_file_gone_since_the_version_was_built(
    staff_client, run_inline, active_model, replacement, regression_set
):
    gone = regression_set.manifest[0]
    replacement.weights.storage.delete(gone["file"])  # its owner deleted their account, say
    with run_inline():
        response = staff_client.post(
            reverse(CHANGELIST),
            {"action": "evaluate_regression_set", "_selected_action": [replacement.pk]},
            follow=True,
        )

    evaluation = ModelEvaluation.objects.get(detector_model=replacement)
    assert evaluation.status == ModelEvaluation.Status.DONE, evaluation.error_message
    assert evaluation.report["metrics"]["counts"] == {"real": 2, "fake": 3}
    assert evaluation.report["regression_set"]["missing_flags"] == [gone["flag"]]
    assert "A worker is evaluating “replacement 2” on regression set v1" in page_messages(response)


def test_without_a_regression_set_the_action_says_so(staff_client, active_model):
    response = staff_client.post(
        reverse(CHANGELIST), {"action": "evaluate_regression_set", "_selected_action": [active_model.pk]}, follow=True
    )
    assert "There is no regression set yet" in page_messages(response)
    assert not ModelEvaluation.objects.exists()


# --- The gate ---------------------------------------------------------------------------------------------------


def result(detector_model, regression_set, *, accuracy: float, roc_auc: float | None = 0.8) -> ModelEvaluation:
    """A finished evaluation on the regression set, as detector_model_evaluate stores it."""
    return ModelEvaluation.objects.create(
        detector_model=detector_model,
        regression_set=regression_set,
        dataset_path=f"regression set v{regression_set.version}",
        status=ModelEvaluation.Status.DONE,
        finished_at=timezone.now(),
        report={"metrics": {"accuracy": accuracy, "roc_auc": roc_auc, "counts": {"real": 3, "fake": 3}}},
    )


def activate(staff_client, detector_model):
    return staff_client.post(
        reverse(CHANGELIST), {"action": "activate", "_selected_action": [detector_model.pk]}, follow=True
    )


def test_the_model_page_shows_both_models_scores_on_the_same_version(
    staff_client, active_model, replacement, regression_set
):
    result(replacement, regression_set, accuracy=0.71, roc_auc=None)
    result(active_model, regression_set, accuracy=0.84)
    page = staff_client.get(reverse("admin:detection_detectormodel_change", args=[replacement.pk])).content.decode()
    assert f'data-regression-model="{replacement.pk}"' in page and f'data-regression-model="{active_model.pk}"' in page
    assert "0.7100" in page and "0.8400" in page and "(one class only)" in page and "0.8000" in page
    assert "does worse than the active model" in page


def test_activating_a_model_that_does_worse_asks_first_then_activates_and_logs_it(
    staff_client, active_model, replacement, regression_set
):
    result(replacement, regression_set, accuracy=0.71)
    result(active_model, regression_set, accuracy=0.84)

    asked = activate(staff_client, replacement)

    assert asked.status_code == 200
    assert (
        "Model “replacement 2” does worse than the active model “test-detector 1” on regression set v1: 0.71 vs 0.84 "
        "accuracy. Activate anyway?"
    ) in asked.content.decode()
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]
    # The page behind the model page's "Activate" link asks the same.
    page = staff_client.get(reverse("admin:detection_detectormodel_activate", args=[replacement.pk]))
    assert "data-regression-gate" in page.content.decode()
    # Its plain confirmation (without accepting the comparison) still stops at the gate.
    staff_client.post(reverse("admin:detection_detectormodel_activate", args=[replacement.pk]))
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]

    confirmed = staff_client.post(
        reverse("admin:detection_detectormodel_activate", args=[replacement.pk]), {"accept_worse_on": "1"}, follow=True
    )

    assert list(DetectorModel.objects.filter(is_active=True)) == [replacement]
    assert "“replacement 2” is now the active model" in page_messages(confirmed)
    message = LogEntry.objects.get(action_flag=CHANGE, object_id=str(replacement.pk)).change_message
    assert message.startswith("Activated, replacing “test-detector 1”. Confirmed although: Model “replacement 2” does")


def test_accepting_an_older_version_does_not_pass_the_gate_on_a_newer_one(
    staff_client, active_model, replacement, regression_set
):
    newer = RegressionSet.objects.create(version=2, manifest=regression_set.manifest)
    result(replacement, newer, accuracy=0.5)
    result(active_model, newer, accuracy=0.9)
    staff_client.post(
        reverse("admin:detection_detectormodel_activate", args=[replacement.pk]), {"accept_worse_on": "1"}
    )
    assert list(DetectorModel.objects.filter(is_active=True)) == [active_model]


def test_a_model_that_does_at_least_as_well_activates_directly(staff_client, active_model, replacement, regression_set):
    result(replacement, regression_set, accuracy=0.84)
    result(active_model, regression_set, accuracy=0.84)
    response = activate(staff_client, replacement)
    assert list(DetectorModel.objects.filter(is_active=True)) == [replacement]
    assert "is now the active model" in page_messages(response)
    assert (
        LogEntry.objects.get(object_id=str(replacement.pk)).change_message == "Activated, replacing “test-detector 1”."
    )


def test_without_results_of_both_models_on_one_version_activation_proceeds_as_before(
    staff_client, active_model, replacement, regression_set
):
    result(replacement, regression_set, accuracy=0.1)  # the active model was never evaluated on it
    newer = RegressionSet.objects.create(version=2, manifest=regression_set.manifest)
    result(active_model, newer, accuracy=0.99)
    activate(staff_client, replacement)
    assert list(DetectorModel.objects.filter(is_active=True)) == [replacement]


def test_the_gate_holds_for_code_that_activates_through_the_checked_path(active_model, replacement, regression_set):
    result(replacement, regression_set, accuracy=0.6)
    result(active_model, regression_set, accuracy=0.7)
    with pytest.raises(regression.RegressionWorse, match=r"0\.60 vs 0\.70 accuracy"):
        services.detector_model_activate_checked(detector_model=replacement)
    services.detector_model_activate_checked(detector_model=replacement, accept_worse_on=1)
    assert DetectorModel.objects.get(is_active=True) == replacement
