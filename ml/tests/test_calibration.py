"""ml.calibration: temperature scaling and isotonic regression on synthetic miscalibrated detectors, the ECE and
reliability data, operating points for a target false-positive rate, and the uncertain band."""

import json

import numpy as np
import pytest

from ml import calibration as cal


def synthetic(n: int, *, sharpness: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from a true P(fake) = σ(z), and the scores of a detector that reports σ(sharpness × z):
    overconfident for sharpness > 1, underconfident below 1."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return labels, 1 / (1 + np.exp(-sharpness * z))


def test_an_overconfident_detector_gets_a_temperature_above_one_and_a_much_lower_ece():
    labels, scores = synthetic(800, sharpness=3.0)

    fitted = cal.fit(labels, scores)

    assert fitted["method"] == "temperature"  # 800 images: too few for isotonic regression
    assert 2.4 < fitted["temperature"] < 3.6  # the true distortion is ×3 on the logit
    assert fitted["ece_before"] > 0.08
    assert fitted["ece_after"] < fitted["ece_before"] / 3
    assert fitted["samples"] == 800
    json.dumps(fitted)  # stored as JSON in the card and on the model


def test_an_underconfident_detector_gets_a_temperature_below_one():
    labels, scores = synthetic(800, sharpness=0.4, seed=1)

    fitted = cal.fit(labels, scores)

    assert fitted["temperature"] < 0.6
    assert fitted["ece_after"] < fitted["ece_before"]


def test_isotonic_regression_is_chosen_with_enough_images_of_both_classes():
    labels, scores = synthetic(4000, sharpness=3.0, seed=2)
    scores = scores**2  # not a pure temperature distortion: isotonic can fix it, one temperature cannot

    fitted = cal.fit(labels, scores)

    assert fitted["method"] == "isotonic"
    assert fitted["ece_after"] < 0.03 < fitted["ece_before"]
    calibrated = cal.apply(fitted, np.linspace(0, 1, 101))
    assert np.all(np.diff(calibrated) >= 0)  # the ranking is kept
    assert calibrated.min() >= cal.PROBABILITY_FLOOR and calibrated.max() <= 1 - cal.PROBABILITY_FLOOR


def test_the_method_rule_needs_200_of_each_class_for_isotonic():
    assert cal.choose_method(np.array([0] * 900 + [1] * 199)) == "temperature"
    assert cal.choose_method(np.array([0] * 800 + [1] * 200)) == "isotonic"
    assert cal.choose_method(np.array([0] * 500 + [1] * 499)) == "temperature"


def test_apply_is_the_identity_without_a_calibration_and_keeps_scalars_scalar():
    p = np.array([0.0, 0.2, 0.5, 0.97])

    assert np.array_equal(cal.apply({}, p), p)
    assert np.array_equal(cal.apply(None, p), p)
    assert cal.apply({}, 0.3) == 0.3
    assert isinstance(cal.apply({"method": "temperature", "temperature": 2.0}, 0.9), float)
    assert cal.apply({"method": "temperature", "temperature": 2.0}, 0.5) == pytest.approx(0.5)
    assert cal.apply({"method": "temperature", "temperature": 2.0}, 0.9) == pytest.approx(0.75)  # 3:1 odds from 9:1


def test_the_ece_and_the_reliability_bins_of_a_known_case():
    # Ten images at 0.9, of which 6 are fake; ten at 0.1, of which 1 is fake.
    labels = np.array([1] * 6 + [0] * 4 + [1] + [0] * 9)
    scores = np.array([0.9] * 10 + [0.1] * 10)

    rows = cal.reliability(labels, scores)

    assert [(r["count"], r["mean_predicted"], r["observed"]) for r in rows] == [(10, 0.1, 0.1), (10, 0.9, 0.6)]
    assert cal.expected_calibration_error(labels, scores) == pytest.approx(0.5 * 0.0 + 0.5 * 0.3)


def test_threshold_for_fpr_on_a_known_curve():
    # Real scores 0.00, 0.01 … 0.99; fake scores 0.500, 0.505 … 0.995.
    real = np.arange(100) / 100
    fake = 0.5 + np.arange(100) / 200
    labels = np.array([0] * 100 + [1] * 100)
    scores = np.concatenate([real, fake])

    point = cal.threshold_for_fpr(labels, scores, 0.05)

    # FPR ≤ 5 %: at most 5 real scores (0.95 … 0.99) at or above it; the lowest such threshold is the fake 0.945.
    assert point["threshold"] == pytest.approx(0.945)
    assert point["fpr"] == pytest.approx(0.05)
    assert point["tpr"] == pytest.approx(0.11)  # 0.945 … 0.995
    assert cal.threshold_for_fpr(labels, scores, 0.0)["fpr"] == 0.0


def test_stored_roc_points_are_at_most_200_and_give_the_same_low_fpr_operating_points():
    labels, scores = synthetic(5000, sharpness=1.0, seed=3)

    roc = cal.roc_points(labels, scores)

    assert len(roc["threshold"]) <= cal.ROC_MAX_POINTS
    assert roc["threshold"] == sorted(roc["threshold"], reverse=True)
    for target in (0.01, 0.05):
        exact = cal.threshold_for_fpr(labels, scores, target)
        stored = cal.operating_point(roc, target)
        assert stored["fpr"] <= target
        assert stored["threshold"] == pytest.approx(exact["threshold"], abs=0.01)


def test_no_stored_roc_points_or_bad_targets_are_refused_with_a_reason():
    with pytest.raises(cal.CalibrationError, match="no stored validation ROC points"):
        cal.operating_point({}, 0.01)
    with pytest.raises(cal.CalibrationError, match="between 0 and 1"):
        cal.operating_point({"fpr": [0.0], "tpr": [0.5], "threshold": [0.9]}, 5)


def test_bad_validation_data_is_refused_with_a_reason():
    with pytest.raises(cal.CalibrationError, match="both classes"):
        cal.fit([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(cal.CalibrationError, match="in \\[0, 1\\]"):
        cal.fit([0, 1], [0.2, 1.5])
    with pytest.raises(cal.CalibrationError, match="labels but"):
        cal.fit([0, 1], [0.2])
    with pytest.raises(cal.CalibrationError, match="Too few validation images to calibrate: 39"):
        cal.fit([0, 1] * 19 + [1], [0.3, 0.7] * 19 + [0.6])


def test_the_uncertain_band_always_holds_the_threshold_and_the_unconfident_probabilities():
    assert cal.uncertain_band(0.5) == [pytest.approx(0.2), 0.8]
    assert cal.uncertain_band(0.93) == [pytest.approx(0.2), 0.93]  # a strict threshold: 0.8..0.93 is uncertain
    assert cal.uncertain_band(0.1) == [0.1, 0.8]


def test_with_operating_point_records_the_threshold_rule_and_band():
    labels, scores = synthetic(500, sharpness=2.0, seed=4)
    fitted = cal.fit(labels, scores)
    point = cal.operating_point(fitted["roc"], 0.05)

    chosen = cal.with_operating_point(fitted, threshold=point["threshold"], rule=cal.fpr_rule(0.05, point))

    assert chosen["threshold"] == point["threshold"]
    assert chosen["threshold_rule"]["rule"] == "target_fpr" and chosen["threshold_rule"]["fpr"] <= 0.05
    assert chosen["uncertain_band"] == cal.uncertain_band(point["threshold"])


def test_the_reliability_diagram_is_a_png(tmp_path):
    labels, scores = synthetic(300, sharpness=3.0, seed=5)
    path = tmp_path / "reliability.png"

    cal.save_reliability_diagram(cal.fit(labels, scores), path)

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
