"""Calibrated detector models: calibrated probabilities with the raw one kept, verdicts by the result's uncertain band
(in Python and in SQL alike), calibrations from model cards and evaluations, the admin's threshold by target
false-positive rate, and evaluate_detector's calibration report."""

import json
import shutil
from io import StringIO

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from detection import services
from detection.models import Analysis, DetectorModel, ModelEvaluation, verdict_condition, verdict_of
from detection.services import calibration as calibration_services
from detection.tests.factories import AnalysisFactory
from ml import calibration as ml_calibration
from ml.synthetic import write_dataset

GRID = sorted({round(float(v), 4) for v in np.linspace(0.0, 1.0, 41)} | {0.1999, 0.2001, 0.7999, 0.8001, 0.9299, 0.93})


def last_logged(obj) -> str:
    from django.contrib.admin.models import LogEntry

    return LogEntry.objects.filter(object_id=str(obj.pk)).latest("action_time").get_change_message()


def fitted(*, temperature: float = 2.0, threshold: float = 0.5) -> dict:
    """A temperature calibration as ml.calibration makes it, fitted on a synthetic overconfident detector."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 400)
    labels = (rng.random(400) < 1 / (1 + np.exp(-z))).astype(int)
    calibration = ml_calibration.fit(labels, 1 / (1 + np.exp(-temperature * z)))
    return ml_calibration.with_operating_point(calibration, threshold=threshold, rule={"rule": "youden"})


# --- Verdicts -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("band", [None, (0.2, 0.8), (0.2, 0.93), (0.1, 0.8)])
@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.6, 0.93])
def test_verdict_of_and_its_sql_twin_agree_on_a_grid(db, user, threshold, band):
    low, high = band or (None, None)
    for p in GRID:
        AnalysisFactory(
            owner=user, done=True, probability_fake=p, threshold=threshold, uncertain_low=low, uncertain_high=high
        )

    in_sql = {}
    for verdict in Analysis.Verdict.values:
        condition, annotations = verdict_condition(verdict)
        for value in Analysis.objects.alias(**annotations).filter(condition).values_list("probability_fake", flat=True):
            assert value not in in_sql, f"p={value} matches both {in_sql[value]} and {verdict}"
            in_sql[value] = verdict

    assert in_sql == {p: verdict_of(p, threshold, band) for p in GRID}


def test_with_a_band_uncertain_is_the_band_and_without_it_the_margin(settings):
    settings.UNCERTAIN_MARGIN = 0.1

    assert [verdict_of(p, 0.5, (0.2, 0.8)) for p in (0.19, 0.2, 0.5, 0.79, 0.8)] == [
        "real",
        "uncertain",
        "uncertain",
        "uncertain",
        "fake",
    ]
    # A strict threshold (0.93): 0.85 is more likely fake than not, but below the threshold: uncertain, not real.
    assert verdict_of(0.85, 0.93, (0.2, 0.93)) == "uncertain" and verdict_of(0.93, 0.93, (0.2, 0.93)) == "fake"
    assert [verdict_of(p, 0.5) for p in (0.39, 0.45, 0.61)] == ["real", "uncertain", "fake"]


def test_faces_and_frames_take_their_analysis_band(db, user):
    analysis = AnalysisFactory(
        owner=user, done=True, probability_fake=0.9, threshold=0.5, uncertain_low=0.2, uncertain_high=0.8
    )
    face = analysis.faces.create(
        number=1, left=0, top=0, width=10, height=10, detection_score=0.9, probability_fake=0.7, label="fake"
    )
    frame = analysis.frames.create(number=1, timestamp_s=0.0, probability_fake=0.75, label="fake", scope="image")

    assert face.verdict == frame.verdict == "uncertain"  # the ±0.1 margin alone would have said fake


# --- Inference ----------------------------------------------------------------------------------------------------


def test_a_calibrated_model_gives_calibrated_probabilities_and_keeps_the_raw_one(
    user, active_model, upload, run_inline
):
    plain = services.analysis_create(user=user, file=upload(seed=5), source="web").analysis
    services.analysis_run(analysis_id=plain.pk)
    plain.refresh_from_db()
    assert plain.probability_raw == plain.probability_fake and plain.uncertain_band is None

    calibration = fitted(temperature=3.0, threshold=0.6)
    key_before = active_model.cache_key
    active_model.calibration_set(calibration)
    active_model.save()
    assert active_model.cache_key != key_before  # workers reload the model with its calibration
    raw_before = plain.probability_raw
    with run_inline():
        services.analysis_rerun(analysis=plain)
    again = Analysis.objects.get(pk=plain.pk)

    assert again.probability_raw == pytest.approx(raw_before, abs=1e-5)
    assert again.probability_fake == pytest.approx(ml_calibration.apply(calibration, again.probability_raw), abs=1e-6)
    assert abs(again.probability_fake - 0.5) < abs(again.probability_raw - 0.5)  # T ≈ 3 pulls towards 0.5
    assert (again.threshold, again.uncertain_band) == (0.6, tuple(calibration["uncertain_band"]))
    assert again.label == ("fake" if again.probability_fake >= 0.6 else "real")


def test_the_api_result_says_what_the_probability_is_calibrated_on(user, active_model, api_client):
    active_model.calibration_set(fitted())
    active_model.save()
    analysis = AnalysisFactory(
        owner=user,
        done=True,
        probability_fake=0.7,
        probability_raw=0.9,
        uncertain_low=0.2,
        uncertain_high=0.8,
        detector_model=active_model,
    )

    result = api_client.get(f"/api/v1/analyses/{analysis.public_id}/").json()["result"]

    assert (result["probability_raw"], result["uncertain_band"], result["verdict"]) == (0.9, [0.2, 0.8], "uncertain")
    assert result["calibration"].startswith("Calibrated (temperature scaling) on 400 validation images")


def test_the_result_page_says_the_probability_is_calibrated(user, user_client, active_model):
    active_model.calibration_set(fitted())
    active_model.save()
    analysis = AnalysisFactory(
        owner=user, done=True, probability_fake=0.9, uncertain_low=0.2, uncertain_high=0.8, detector_model=active_model
    )

    page = user_client.get(analysis.get_absolute_url()).content.decode()

    assert "data-calibrated" in page and "Calibrated (temperature scaling) on 400 validation images" in page


# --- Registering and applying -------------------------------------------------------------------------------------


def package_with(tmp_path, detector_weights, **card):
    from ml.weights import sha256_of

    package = tmp_path / "package"
    package.mkdir()
    shutil.copy(detector_weights, package / "model.safetensors")
    base = {"name": "calibrated", "version": "1", "architecture": "resnet18", "input_size": 224, "threshold": 0.5}
    content = {**base, "sha256": sha256_of(package / "model.safetensors"), **card}
    (package / "model_card.json").write_text(json.dumps(content))
    return package


def test_a_package_with_a_calibration_registers_calibrated(db, settings, tmp_path, detector_weights):
    settings.INFERENCE_BACKEND, settings.INFERENCE_PRECISION = "torch", "fp32"
    calibration = fitted(threshold=0.64)
    package = package_with(tmp_path, detector_weights, threshold=0.64, calibration=calibration)

    model = services.detector_model_register_package(package_dir=package)

    assert model.status == DetectorModel.Status.READY
    assert model.calibration == calibration and model.threshold == 0.64
    assert model.threshold_rule == {"rule": "youden"}
    assert model.uncertain_band == (0.2, 0.8)


def test_a_package_with_a_broken_calibration_is_refused_with_the_reason(db, tmp_path, detector_weights):
    package = package_with(tmp_path, detector_weights, calibration={"method": "temperature", "temperature": -1})

    with pytest.raises(ValidationError, match="positive temperature"):
        services.detector_model_register_package(package_dir=package)
    assert not DetectorModel.objects.exists()


def test_an_evaluations_calibration_is_applied_from_the_admin_and_logged(staff_client, active_model):
    calibration = fitted(threshold=0.55)
    evaluation = ModelEvaluation.objects.create(
        detector_model=active_model, dataset_path="/data/x", status="done", report={"calibration": calibration}
    )
    url = reverse("admin:detection_detectormodel_calibration_apply", args=[active_model.pk, evaluation.pk])

    assert "Apply the calibration" in staff_client.get(url).content.decode()
    staff_client.post(url)

    active_model.refresh_from_db()
    assert active_model.calibration == calibration and active_model.threshold == 0.55
    assert "Applied the calibration fitted on /data/x" in last_logged(active_model)


# --- Threshold by target false-positive rate ----------------------------------------------------------------------


def test_the_admin_sets_the_threshold_for_a_target_fpr_and_logs_it(staff_client, active_model):
    calibration = fitted()
    active_model.calibration_set(calibration)
    active_model.save()
    url = reverse("admin:detection_detectormodel_threshold_for_fpr", args=[active_model.pk])

    response = staff_client.post(url, {"target": "other", "other": "5"}, follow=True)

    active_model.refresh_from_db()
    expected = ml_calibration.operating_point(calibration["roc"], 0.05)
    assert active_model.threshold == expected["threshold"] > 0.5
    assert active_model.threshold_rule["rule"] == "target_fpr" and active_model.threshold_rule["target_fpr"] == 0.05
    assert active_model.threshold_rule["fpr"] <= 0.05
    assert active_model.uncertain_band == tuple(ml_calibration.uncertain_band(expected["threshold"]))
    assert "for a target false-positive rate of 5.00%" in response.content.decode()
    assert "target false-positive rate of 5.00%" in last_logged(active_model)


def test_the_changelist_action_leads_to_the_form(staff_client, active_model):
    response = staff_client.post(
        reverse("admin:detection_detectormodel_changelist"),
        {"action": "threshold_for_fpr", "_selected_action": [active_model.pk]},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:detection_detectormodel_threshold_for_fpr", args=[active_model.pk])


def test_without_stored_roc_points_the_threshold_is_not_changed_and_the_admin_says_why(staff_client, active_model):
    url = reverse("admin:detection_detectormodel_threshold_for_fpr", args=[active_model.pk])

    response = staff_client.post(url, {"target": "0.01"}, follow=True)

    active_model.refresh_from_db()
    assert active_model.threshold == 0.5 and active_model.threshold_rule == {}
    assert "has no stored validation ROC points" in response.content.decode()
    with pytest.raises(ValidationError, match="no stored validation ROC points"):
        calibration_services.detector_model_threshold_for_fpr(detector_model=active_model, target_fpr=0.01)


def test_a_bad_target_rate_is_refused_by_the_form(staff_client, active_model):
    active_model.calibration_set(fitted())
    active_model.save()
    url = reverse("admin:detection_detectormodel_threshold_for_fpr", args=[active_model.pk])

    response = staff_client.post(url, {"target": "other", "other": "250"})

    assert response.status_code == 200 and "less than or equal to 100" in response.content.decode()
    active_model.refresh_from_db()
    assert active_model.threshold == 0.5


def test_the_model_page_shows_ece_and_the_reliability_diagram(staff_client, active_model):
    active_model.calibration_set(fitted())
    active_model.save()

    page = staff_client.get(reverse("admin:detection_detectormodel_change", args=[active_model.pk])).content.decode()

    assert "data-ece" in page and "<svg" in page and "<polyline" in page
    assert "Set the threshold by target false-positive rate" in page


# --- evaluate_detector --------------------------------------------------------------------------------------------


def test_evaluate_detector_fits_a_calibration_and_prints_the_ece(settings, tmp_path, active_model):
    settings.DATA_DIR = tmp_path / "data-dir"
    images = tmp_path / "images"
    write_dataset(images, 20, size=64, seed=11)  # 40 images: the fewest a calibration is fitted from
    active_model.input_size = 64
    active_model.save()
    out = StringIO()

    call_command("evaluate_detector", str(images), no_progress=True, target_fpr=0.5, stdout=out)

    (report_file,) = (settings.DATA_DIR / "evaluations").glob("*/report.json")
    report = json.loads(report_file.read_text())
    calibration = report["calibration"]
    assert calibration, report["calibration_error"]
    assert calibration["samples"] == 40 and calibration["method"] == "temperature"
    assert calibration["threshold_rule"]["rule"] == "target_fpr" and calibration["threshold_rule"]["fpr"] <= 0.5
    assert f"ECE {calibration['ece_before']:.4f} before → {calibration['ece_after']:.4f} after" in out.getvalue()
    assert "uncertain band" in out.getvalue()
    assert (report_file.parent / "reliability.png").is_file()


def test_a_threshold_typed_by_hand_takes_its_band_along(active_model):
    calibration_services.detector_model_threshold_set(detector_model=active_model, threshold=0.9)
    active_model.refresh_from_db()
    assert (active_model.threshold, active_model.uncertain_band) == (0.9, None)  # uncalibrated: the margin rule

    active_model.calibration_set(fitted())
    active_model.save()
    calibration_services.detector_model_threshold_set(detector_model=active_model, threshold=0.9)
    active_model.refresh_from_db()
    assert active_model.uncertain_band == (0.2, 0.9) and active_model.threshold_rule["rule"] == "manual"
