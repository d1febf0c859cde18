"""Calibrated probabilities and operating points: make "70 % fake" mean fake 70 % of the time on data like the
validation split.

A detector ranks images well (its ROC-AUC) long before its probabilities mean anything: networks trained with
cross-entropy are typically overconfident. A calibration is fitted on validation (label, P(fake)) pairs and then
applied to every probability the model gives. It is a JSON-safe dict (stored in the model card and on the
registered model); {} means uncalibrated, and apply() is then the identity.

Method rule (METHOD_RULE): no calibration from fewer than MIN_SAMPLES (40) validation images or fewer than
MIN_PER_CLASS (10) of a class: too few to say what a probability means. Isotonic regression when the validation
set holds at least ISOTONIC_MIN_SAMPLES (1000) pairs with at least ISOTONIC_MIN_PER_CLASS (200) of each class;
otherwise temperature scaling, p' = σ(logit(p) / T), with T minimising the negative log-likelihood. Temperature
scaling has one parameter and keeps the ranking, so it cannot overfit a small set; isotonic regression can fix any
monotone distortion but needs the data. Isotonic probabilities are kept within [PROBABILITY_FLOOR,
1 − PROBABILITY_FLOOR]: a finite validation set never shows that an image is certainly fake.

Quality: the expected calibration error (ECE) over ECE_BINS (15) equal-width bins, Σ_b (n_b / n) |mean p_b − fake
rate_b|, before and after; and the reliability diagram's data (per non-empty bin: its edges, mean predicted
probability, observed fake rate, count). The "after" figures are measured on the data the calibration was fitted
on: an optimistic estimate.

Operating points: the validation ROC curve of the calibrated probabilities is kept (at most ROC_MAX_POINTS
points: fpr, tpr, threshold), so a threshold can be chosen later for a target false-positive rate: the lowest
threshold whose false-positive rate is at most the target (the most fakes caught within the target). The default
threshold rule stays Youden's J (ml.evaluate.THRESHOLD_RULE), applied to the calibrated probabilities.

Uncertain band (BAND_RULE): with calibrated probabilities, the decision the threshold gives for an image at
probability p is right a fraction p of the time when it says fake, 1 − p when it says real. The verdict is
"uncertain" when that is below CONFIDENT (80 %), or when the threshold and the probability disagree (a threshold
chosen for a low false-positive rate may call an 85 %-fake image real). Both together: the band is
[min(1 − CONFIDENT, t), max(CONFIDENT, t)), so a "fake" verdict always has p ≥ 0.8 and p ≥ t, a "real" one
p < 0.2 and p < t, whatever the threshold t. The band is recomputed whenever the threshold changes.
"""

import math

import numpy as np
from sklearn import metrics as skm

from ml.errors import MLError

TEMPERATURE, ISOTONIC = "temperature", "isotonic"
MIN_SAMPLES, MIN_PER_CLASS = 40, 10
ISOTONIC_MIN_SAMPLES = 1000
ISOTONIC_MIN_PER_CLASS = 200
METHOD_RULE = (
    f"none from fewer than {MIN_SAMPLES} validation images or {MIN_PER_CLASS} of a class; isotonic regression with "
    f"at least {ISOTONIC_MIN_SAMPLES}, at least {ISOTONIC_MIN_PER_CLASS} of each class; temperature scaling "
    "(T minimising the log-loss) otherwise"
)
ECE_BINS = 15
ROC_MAX_POINTS = 200
CONFIDENT = 0.8
BAND_RULE = (
    f"uncertain when the calibrated P(fake) is in [min({1 - CONFIDENT:.1f}, threshold), max({CONFIDENT:.1f}, "
    f"threshold)): the decision would be right less than {CONFIDENT:.0%} of the time, or contradicts the probability"
)
PROBABILITY_FLOOR = 0.001
LOGIT_CLIP = 1e-7  # raw probabilities of exactly 0 or 1 (float32 sigmoid saturates) still have a finite logit
LOG_TEMPERATURE_BOUNDS = (-3.0, 3.0)  # T in [0.05, 20]


class CalibrationError(MLError):
    """A calibration cannot be fitted or used as asked (too little data, a single class, no stored ROC points)."""


# --- Applying ---------------------------------------------------------------------------------------------------


def apply(calibration: dict | None, probabilities):
    """The calibrated probabilities: an array for an array, a float for a scalar; the same values without a
    calibration."""
    scalar = np.ndim(probabilities) == 0
    p = np.asarray(probabilities, dtype=np.float64)
    method = (calibration or {}).get("method")
    if method is None:
        calibrated = p
    elif method == TEMPERATURE:
        calibrated = _sigmoid(_logit(p) / float(calibration["temperature"]))
    elif method == ISOTONIC:
        calibrated = np.interp(p, calibration["x"], calibration["y"])
    else:
        raise CalibrationError(f"Unknown calibration method {method!r}: expected {TEMPERATURE} or {ISOTONIC}.")
    return float(calibrated) if scalar else calibrated


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # σ without overflow warnings for large |z|


def check(calibration: dict) -> None:
    """Raise CalibrationError, saying what is wrong, unless this is a calibration apply() can use with its operating
    point (a model card's or an evaluation's, before a registered model adopts it)."""
    if not isinstance(calibration, dict) or calibration.get("method") not in (TEMPERATURE, ISOTONIC):
        raise CalibrationError(f"A calibration needs a method, {TEMPERATURE} or {ISOTONIC}.")
    if calibration["method"] == TEMPERATURE:
        temperature = calibration.get("temperature")
        if not isinstance(temperature, int | float) or not math.isfinite(temperature) or temperature <= 0:
            raise CalibrationError("A temperature calibration needs a positive temperature.")
    else:
        x, y = calibration.get("x"), calibration.get("y")
        if not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y) or len(x) < 2:
            raise CalibrationError("An isotonic calibration needs lists x and y of the same length, at least 2.")
        if np.any(np.diff(np.asarray(x, dtype=np.float64)) < 0) or np.any(np.diff(np.asarray(y, dtype=np.float64)) < 0):
            raise CalibrationError("An isotonic calibration's x and y must both be non-decreasing.")
    threshold, band = calibration.get("threshold"), calibration.get("uncertain_band")
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise CalibrationError("A calibration needs the threshold chosen on its scale, between 0 and 1.")
    if not (isinstance(band, list) and len(band) == 2 and all(isinstance(v, int | float) for v in band)):
        raise CalibrationError("A calibration needs its uncertain band, [low, high].")
    if not 0 <= band[0] <= band[1] <= 1:
        raise CalibrationError(f"The uncertain band {band} is not an interval within [0, 1].")


# --- Measuring ----------------------------------------------------------------------------------------------------


def _bin_of(probabilities: np.ndarray, bins: int) -> np.ndarray:
    """Each probability's bin: [k/bins, (k+1)/bins), the last bin closed at 1."""
    return np.minimum((probabilities * bins).astype(int), bins - 1)


def reliability(labels, probabilities, *, bins: int = ECE_BINS) -> list[dict]:
    """Per non-empty bin: its edges, the mean predicted P(fake), the observed fake rate and the count."""
    labels, p = np.asarray(labels, dtype=np.float64), np.asarray(probabilities, dtype=np.float64)
    which = _bin_of(p, bins)
    rows = []
    for k in np.unique(which):
        inside = which == k
        rows.append(
            {
                "low": round(k / bins, 6),
                "high": round((k + 1) / bins, 6),
                "mean_predicted": float(p[inside].mean()),
                "observed": float(labels[inside].mean()),
                "count": int(inside.sum()),
            }
        )
    return rows


def expected_calibration_error(labels, probabilities, *, bins: int = ECE_BINS) -> float:
    rows = reliability(labels, probabilities, bins=bins)
    total = sum(row["count"] for row in rows)
    if not total:
        return 0.0
    return float(sum(row["count"] * abs(row["mean_predicted"] - row["observed"]) for row in rows) / total)


# --- Fitting ------------------------------------------------------------------------------------------------------


def choose_method(labels) -> str:
    """METHOD_RULE, once there are enough images to calibrate at all."""
    labels = np.asarray(labels)
    per_class = min(int((labels == 0).sum()), int((labels == 1).sum()))
    enough = len(labels) >= ISOTONIC_MIN_SAMPLES and per_class >= ISOTONIC_MIN_PER_CLASS
    return ISOTONIC if enough else TEMPERATURE


def fit(labels, probabilities, *, method: str = "auto") -> dict:
    """The calibration of these validation pairs (label 1 = fake), by METHOD_RULE unless `method` names one, with
    its ECE and reliability data before and after and the calibrated ROC curve. The operating point (threshold and
    uncertain band) is added by with_operating_point once a threshold is chosen on the calibrated scale."""
    labels, raw = _checked(labels, probabilities)
    method = choose_method(labels) if method == "auto" else method
    if method == TEMPERATURE:
        parameters = {"temperature": _fit_temperature(labels, raw)}
    elif method == ISOTONIC:
        parameters = _fit_isotonic(labels, raw)
    else:
        raise CalibrationError(f"method must be auto, {TEMPERATURE} or {ISOTONIC}, not {method!r}")
    calibration = {"method": method, **parameters}
    calibrated = apply(calibration, raw)
    return {
        **calibration,
        "method_rule": METHOD_RULE,
        "samples": len(labels),
        "counts": {"real": int((labels == 0).sum()), "fake": int((labels == 1).sum())},
        "ece_before": expected_calibration_error(labels, raw),
        "ece_after": expected_calibration_error(labels, calibrated),
        "reliability_before": reliability(labels, raw),
        "reliability_after": reliability(labels, calibrated),
        "roc": roc_points(labels, calibrated),
    }


def _checked(labels, probabilities, *, minimum: bool = True) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if len(labels) != len(p):
        raise CalibrationError(f"{len(labels)} labels but {len(p)} probabilities.")
    if not set(np.unique(labels)) <= {0, 1}:
        raise CalibrationError("Labels must be 0 (real) or 1 (fake).")
    if len(np.unique(labels)) < 2:
        raise CalibrationError("A calibration needs validation images of both classes, real and fake.")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise CalibrationError("Probabilities must be finite numbers in [0, 1].")
    if minimum and (len(labels) < MIN_SAMPLES or min(np.bincount(labels, minlength=2)) < MIN_PER_CLASS):
        raise CalibrationError(
            f"Too few validation images to calibrate: {len(labels)} ({int((labels == 1).sum())} fake); a calibration "
            f"needs at least {MIN_SAMPLES}, with at least {MIN_PER_CLASS} of each class."
        )
    return labels, p


def _fit_temperature(labels: np.ndarray, raw: np.ndarray) -> float:
    from scipy.optimize import minimize_scalar

    z = _logit(raw)

    def negative_log_likelihood(log_t: float) -> float:
        scaled = z / math.exp(log_t)
        # −log σ(s) = logaddexp(0, −s); −log(1 − σ(s)) = logaddexp(0, s)
        return float(np.mean(np.where(labels == 1, np.logaddexp(0, -scaled), np.logaddexp(0, scaled))))

    result = minimize_scalar(negative_log_likelihood, bounds=LOG_TEMPERATURE_BOUNDS, method="bounded")
    return round(math.exp(result.x), 6)


def _fit_isotonic(labels: np.ndarray, raw: np.ndarray) -> dict:
    from sklearn.isotonic import IsotonicRegression

    regression = IsotonicRegression(
        y_min=PROBABILITY_FLOOR, y_max=1 - PROBABILITY_FLOOR, increasing=True, out_of_bounds="clip"
    ).fit(raw, labels)
    return {"x": regression.X_thresholds_.tolist(), "y": regression.y_thresholds_.tolist()}


# --- Operating points ----------------------------------------------------------------------------------------------


def roc_points(labels, scores, *, max_points: int = ROC_MAX_POINTS) -> dict:
    """The ROC curve's points {"fpr", "tpr", "threshold"} (threshold decreasing), at most max_points of them: evenly
    spread along the curve, plus for each of a log-spaced range of false-positive rates the point that
    threshold_for_fpr would choose, so low targets stay exact."""
    fpr, tpr, thresholds = skm.roc_curve(np.asarray(labels).astype(int), np.asarray(scores, dtype=np.float64))
    finite = np.isfinite(thresholds)  # the first point (threshold +inf: nothing called fake) is not a threshold
    fpr, tpr, thresholds = fpr[finite], tpr[finite], thresholds[finite]
    if len(thresholds) > max_points:
        half = max_points // 2
        spread = np.linspace(0, len(thresholds) - 1, half).round().astype(int)
        targets = np.logspace(-4, 0, max_points - half)
        exact = np.searchsorted(fpr, targets, side="right") - 1
        keep = np.unique(np.concatenate([spread, exact[exact >= 0]]))
        fpr, tpr, thresholds = fpr[keep], tpr[keep], thresholds[keep]
    return {
        "fpr": [round(float(v), 6) for v in fpr],
        "tpr": [round(float(v), 6) for v in tpr],
        "threshold": [float(v) for v in thresholds],
    }


def operating_point(roc: dict | None, target_fpr: float) -> dict:
    """From stored ROC points: the lowest threshold whose false-positive rate is at most target_fpr, with the
    false- and true-positive rates it gave on the validation data."""
    if not 0 <= target_fpr <= 1:
        raise CalibrationError(f"The target false-positive rate must be between 0 and 1, not {target_fpr}.")
    if not roc or not roc.get("threshold"):
        raise CalibrationError("There are no stored validation ROC points to choose a threshold from.")
    within = [i for i, fpr in enumerate(roc["fpr"]) if fpr <= target_fpr]
    if not within:
        raise CalibrationError(
            f"No threshold keeps the false-positive rate at or below {target_fpr:.2%} on the validation data "
            f"(the strictest reaches {min(roc['fpr']):.2%})."
        )
    best = min(within, key=lambda i: roc["threshold"][i])
    return {"threshold": roc["threshold"][best], "fpr": roc["fpr"][best], "tpr": roc["tpr"][best]}


def threshold_for_fpr(labels, calibrated_scores, target_fpr: float) -> dict:
    """The threshold for a target false-positive rate on the validation ROC curve (see operating_point)."""
    labels, scores = _checked(labels, calibrated_scores, minimum=False)
    return operating_point(roc_points(labels, scores, max_points=len(scores) + 1), target_fpr)


def uncertain_band(threshold: float) -> list[float]:
    """BAND_RULE: [low, high) of calibrated P(fake) called uncertain, for this threshold."""
    return [round(min(1 - CONFIDENT, threshold), 6), round(max(CONFIDENT, threshold), 6)]


def with_operating_point(calibration: dict, *, threshold: float, rule: dict) -> dict:
    """The calibration with its chosen threshold, the rule that chose it and the uncertain band for it."""
    return {
        **calibration,
        "threshold": float(threshold),
        "threshold_rule": rule,
        "uncertain_band": uncertain_band(threshold),
        "band_rule": BAND_RULE,
    }


def fpr_rule(target_fpr: float, point: dict) -> dict:
    """The threshold_rule record of a threshold chosen for a target false-positive rate."""
    return {
        "rule": "target_fpr",
        "target_fpr": target_fpr,
        "fpr": point["fpr"],
        "tpr": point["tpr"],
        "description": f"the lowest threshold whose validation false-positive rate is at most {target_fpr:.2%}",
    }


# --- Drawing ------------------------------------------------------------------------------------------------------


def save_reliability_diagram(calibration: dict, path, *, title: str = "reliability") -> None:
    """A small PNG: observed fake rate against mean predicted probability per bin, before and after."""
    from matplotlib.figure import Figure  # no pyplot: no global state

    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfectly calibrated")
    for key, name in (("reliability_before", "before"), ("reliability_after", "after")):
        rows = calibration.get(key) or []
        ece = calibration.get(f"ece_{name}")
        axes.plot(
            [r["mean_predicted"] for r in rows],
            [r["observed"] for r in rows],
            marker="o",
            label=f"{name} (ECE {ece:.3f})" if ece is not None else name,
        )
    axes.set(xlabel="predicted P(fake)", ylabel="observed fake rate", title=title, xlim=(0, 1), ylim=(0, 1))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
