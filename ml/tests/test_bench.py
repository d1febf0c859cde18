"""The benchmark command's report, on a small model: the figures the issue names, and agreement with fp32."""

import json

import pytest

from ml.bench import main, render

SMALL_RUN = [
    "--json",
    "--architecture",
    "resnet18",
    "--input-size",
    "64",
    "--batch-sizes",
    "1",
    "2",
    "--repeats",
    "1",
    "--agreement-images",
    "4",
    "--backend",
    "torch",  # OpenVINO takes seconds to compile; ml/tests/test_gradcam_reference.py checks it against fp32
]
KEYS = {"naive_ms", "engine_ms", "floor_ms", "speedup_vs_naive", "engine_over_floor", "max_abs_dp", "heatmap_corr"}


@pytest.fixture(scope="module")
def report():
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(SMALL_RUN)
    assert code == 0
    return json.loads(printed.getvalue())


def test_the_json_report_has_every_figure_for_each_batch_size(report):
    for key in ("bs1", "bs2"):
        figures = report[key]
        assert set(figures) >= KEYS
        assert figures["speedup_vs_naive"] == pytest.approx(figures["naive_ms"] / figures["engine_ms"])
        assert figures["engine_over_floor"] == pytest.approx(figures["engine_ms"] / figures["floor_ms"])
        assert figures["agreement_images"] == 4
    assert report["engine"] == "resnet18 on cpu (torch, fp32)"
    assert report["flops_per_image"] > 0


def test_the_engine_agrees_with_the_fp32_reference(report):
    low, high = report["reference_probability_range"]
    assert high - low > 0.2, "the calibrated model should give spread-out probabilities"
    for key in ("bs1", "bs2"):
        assert report[key]["max_abs_dp"] <= 0.01
        assert report[key]["heatmap_corr"] >= 0.98


def test_the_text_report_names_the_goals_and_the_machine(report):
    text = render(report)

    assert "ms/image (best of repeats; median)" in text
    assert "goals: a/b ≥ 6.0, b/c ≤ 4.0, max|Δp| ≤ 0.01, heatmap corr ≥ 0.98" in text
    assert report["machine"]["cpu"] in text


def test_unreadable_weights_are_an_error_not_a_traceback(tmp_path, capsys):
    assert main(["--weights", str(tmp_path / "missing.safetensors"), "--architecture", "resnet18"]) == 2
    assert "error: No weights file at" in capsys.readouterr().err
