"""bf16 or fp32: the rule, and a real measurement of a trained model on the product's default backend."""

from pathlib import Path

import pytest

from ml.package import load_package
from ml.precision import MAX_ABS_DP, MIN_HEATMAP_CORR, MIN_SPEEDUP, choose_precision, decide

REFERENCE = Path(__file__).resolve().parents[2] / "models" / "reference"


@pytest.mark.parametrize(
    ("max_abs_dp", "min_heatmap_corr", "speedup", "expected", "because"),
    [
        (0.002, 0.999, 1.9, "bf16", "agrees with fp32 and is 1.90× as fast"),
        (MAX_ABS_DP, MIN_HEATMAP_CORR, MIN_SPEEDUP, "bf16", "as fast"),  # the bounds are allowed
        (0.0294, 0.999, 1.9, "fp32", "moved a probability by 0.0294"),
        (0.002, 0.95, 1.9, "fp32", "heatmap to correlation 0.950"),
        (0.002, 0.999, 1.05, "fp32", "not faster here (1.05×"),
    ],
)
def test_bf16_only_when_it_agrees_and_is_faster(max_abs_dp, min_heatmap_corr, speedup, expected, because):
    precision, reason = decide(max_abs_dp=max_abs_dp, min_heatmap_corr=min_heatmap_corr, speedup=speedup)

    assert precision == expected and because in reason


def test_a_trained_model_is_measured_with_openvino_and_the_rule_applied():
    model, card = load_package(REFERENCE)

    check = choose_precision(model, architecture=card["architecture"], input_size=card["input_size"], backend="auto")

    assert check["backend"] == "openvino" and check["pictures"] == 8
    assert 0 < check["max_abs_dp"] < 0.5 and 0.5 < check["min_heatmap_corr"] <= 1  # bf16 rounds, a little
    expected = decide(
        max_abs_dp=check["max_abs_dp"], min_heatmap_corr=check["min_heatmap_corr"], speedup=check["speedup"]
    )
    assert (check["precision"], check["reason"]) == expected
