"""Evaluation: the threshold rule, the metrics, and a whole evaluation of a package on a folder of real files."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from ml.detector import Detector
from ml.errors import MLError, TrainingDataError
from ml.evaluate import (
    choose_threshold,
    compute_metrics,
    evaluate_folders,
    evaluate_package,
    format_report,
    format_table,
    main,
)
from ml.package import WEIGHTS_FILE, write_package
from ml.preprocessing import decode_image
from ml.synthetic import write_dataset
from ml.tests.conftest import calibrated_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_threshold_separates_separable_scores_perfectly():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.05, 0.2, 0.61, 0.62, 0.8, 0.9])

    threshold = choose_threshold(labels, scores)

    assert 0.61 < threshold <= 0.62
    assert compute_metrics(labels, scores, threshold)["accuracy"] == 1.0


def test_the_threshold_maximises_youden_j():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.3, 0.45, 0.7, 0.4, 0.55, 0.8, 0.9])

    threshold = choose_threshold(labels, scores)

    # Every candidate threshold's J; the chosen one must be the best of them.
    def j(t):
        predicted = scores >= t
        return predicted[labels == 1].mean() - predicted[labels == 0].mean()

    assert j(threshold) == max(j(t) for t in scores)
    # 0.8, 0.55 and 0.4 all give J = 0.5; 0.55 is the closest to 0.5.
    assert threshold == 0.55


def test_ties_go_to_the_threshold_closest_to_one_half():
    labels = np.array([0, 1, 0, 1])
    scores = np.array([0.1, 0.2, 0.8, 0.9])  # thresholds 0.2 and 0.9 both give J = 0.5

    assert choose_threshold(labels, scores) == 0.2


def test_one_class_gives_the_default_threshold_and_no_auc():
    labels, scores = np.ones(4, dtype=int), np.array([0.2, 0.4, 0.6, 0.8])

    metrics = compute_metrics(labels, scores, choose_threshold(labels, scores))

    assert metrics["threshold"] == 0.5
    assert metrics["roc_auc"] is None and metrics["average_precision"] is None
    assert metrics["recall"] == 0.5


def test_metrics_match_a_hand_count():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.6, 0.65, 0.8, 0.9, 0.95])

    m = compute_metrics(labels, scores, 0.5)

    # real: 3 right, 1 called fake; fake: 5 caught, 1 missed
    assert m["confusion_matrix"] == [[3, 1], [1, 5]]
    assert m["counts"] == {"real": 4, "fake": 6} and m["count"] == 10
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["precision"] == pytest.approx(5 / 6)
    assert m["recall"] == pytest.approx(5 / 6)
    assert m["f1"] == pytest.approx(5 / 6)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, scores))
    assert m["roc_auc"] == pytest.approx(21 / 24)  # the real 0.7 outranks three fakes: 21 of 24 pairs are right
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(labels, scores))


@pytest.fixture(scope="module")
def evaluation_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    write_dataset(root / "data", 12, size=64, seed=5)
    model = calibrated_model("resnet18", seed=1)
    card = {"name": "eval test", "version": "1", "architecture": "resnet18", "input_size": 64, "threshold": 0.5}
    write_package(model, root / "package", {**card, "data": {"val_fraction": 0.25, "split_seed": 0}})
    return root / "data", root / "package"


def test_a_package_is_evaluated_with_the_same_scores_inference_gives(evaluation_data, tmp_path):
    data, package = evaluation_data

    report = evaluate_package(package, data, output_dir=tmp_path / "out", progress=False)

    paths = sorted((data / "real").iterdir()) + sorted((data / "fake").iterdir())
    labels = np.array([0] * 12 + [1] * 12)
    detector = Detector.from_weights(
        package / WEIGHTS_FILE, architecture="resnet18", input_size=64, backend="torch", precision="fp32"
    )
    scores = np.array([p.probability_fake for p in detector.predict([decode_image(p).image for p in paths])])
    expected = compute_metrics(labels, scores, 0.5)
    m = report["metrics"]
    assert m["roc_auc"] == pytest.approx(expected["roc_auc"], abs=1e-6)
    assert m["confusion_matrix"] == expected["confusion_matrix"]
    assert (report["threshold"], report["threshold_source"]) == (0.5, "model card")
    assert report["data"]["counts"] == {"real": 12, "fake": 12}


def test_the_evaluation_writes_its_report_and_curves(evaluation_data, tmp_path):
    data, package = evaluation_data

    report = evaluate_package(package, data, output_dir=tmp_path / "out", progress=False)

    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["metrics"] == report["metrics"]
    assert written["files"] == {"roc": "roc.png", "pr": "pr.png"}
    for name in ("roc.png", "pr.png"):
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG_SIGNATURE)
    assert "threshold 0.5000 (model card)" in format_report(report)


def test_robustness_reports_each_condition_and_its_drop(evaluation_data, tmp_path):
    data, package = evaluation_data

    report = evaluate_package(package, data, output_dir=tmp_path / "out", robustness=True, progress=False)

    assert set(report["robustness"]) == {"jpeg_q95", "jpeg_q75", "jpeg_q50", "downscale_0.5x"}
    for result in report["robustness"].values():
        for key, drop in result["drop"].items():
            assert drop == pytest.approx(report["metrics"][key] - result["metrics"][key])
    # The degraded images really differ: at least one condition moves the scores.
    assert any(r["metrics"]["roc_auc"] != report["metrics"]["roc_auc"] for r in report["robustness"].values())
    assert "downscale_0.5x: roc_auc" in format_report(report)


def test_the_validation_subset_is_the_split_the_card_records(evaluation_data, tmp_path):
    data, package = evaluation_data

    report = evaluate_package(package, data, output_dir=tmp_path / "out", subset="validation", progress=False)

    assert report["data"]["counts"] == {"real": 3, "fake": 3}  # 25% of 12 per class


def test_the_validation_subset_needs_a_recorded_split(evaluation_data, tmp_path):
    data, package = evaluation_data
    card = json.loads((package / "model_card.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    (other / WEIGHTS_FILE).write_bytes((package / WEIGHTS_FILE).read_bytes())
    (other / "model_card.json").write_text(json.dumps({**card, "data": {}}))

    with pytest.raises(TrainingDataError, match=r"records a random split"):
        evaluate_package(other, data, output_dir=tmp_path / "out", subset="validation", progress=False)


def test_bare_weights_need_their_architecture_and_use_a_half_threshold(evaluation_data, tmp_path):
    data, package = evaluation_data
    with pytest.raises(MLError, match=r"together with its architecture"):
        evaluate_package(None, data, output_dir=tmp_path / "out", weights=package / WEIGHTS_FILE)

    report = evaluate_package(
        None,
        data,
        output_dir=tmp_path / "out",
        weights=package / WEIGHTS_FILE,
        architecture="resnet18",
        input_size=64,
        progress=False,
    )

    assert report["threshold"] == 0.5 and report["threshold_source"].startswith("default")


def test_the_command_line_reports_a_missing_folder_without_a_traceback(evaluation_data, tmp_path, capsys):
    _, package = evaluation_data

    status = main(["--package", str(package), "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path)])

    assert status == 2
    assert capsys.readouterr().err.startswith("error: The data folder")


def test_the_command_line_prints_the_metrics(evaluation_data, tmp_path, capsys):
    data, package = evaluation_data

    status = main(["--package", str(package), "--data", str(data), "--output", str(tmp_path / "o"), "--no-progress"])

    out = capsys.readouterr().out
    assert status == 0
    assert "roc_auc" in out and f"wrote {tmp_path / 'o' / 'report.json'}" in out


def test_several_folders_give_one_table_held_out_for_the_one_trained_on(evaluation_data, tmp_path):
    data, package = evaluation_data
    other = tmp_path / "other-kind"
    write_dataset(other, 8, size=64, seed=9)
    trained = tmp_path / "package"
    card = json.loads((package / "model_card.json").read_text())
    card["data"]["train_dir"] = str(data.resolve())
    write_package(calibrated_model("resnet18", seed=1), trained, card)

    table = evaluate_folders(trained, [data, other], output_dir=tmp_path / "out", subset="validation", progress=False)

    first, second = table["rows"]
    assert (first["subset"], first["counts"], first["trained_on_this_folder"]) == (
        "validation",
        {"real": 3, "fake": 3},
        True,
    )
    assert (second["subset"], second["counts"], second["trained_on_this_folder"]) == (
        "all",
        {"real": 8, "fake": 8},
        False,
    )
    assert json.loads((tmp_path / "out" / "generalisation.json").read_text()) == table
    assert (tmp_path / "out" / "1-data" / "report.json").is_file() and (tmp_path / "out" / "2-other-kind").is_dir()
    lines = format_table(table).splitlines()
    assert lines[0].startswith("folder | images | ROC-AUC") and lines[1].startswith("data (held-out) | 6 |")
    assert lines[2].startswith("other-kind | 16 |")
