"""Evaluate a model package on a labelled folder: `python -m ml.evaluate --package DIR --data DIR --output DIR`.

Writes report.json, roc.png and pr.png into the output folder and prints the metrics. With --robustness the
evaluation runs again on the same images after JPEG re-compression (quality 95, 75, 50) and after 0.5× downscaling,
and prints how much each metric drops. Fake is the positive class throughout. A face model (its card has "faces")
sees each image's largest face, framed as in training and inference, found after the degradation.

Threshold rule (THRESHOLD_RULE): on validation data, the threshold is the predicted probability that maximises
Youden's J = true-positive rate − false-positive rate, i.e. the ROC point farthest above the diagonal. Ties go to
the threshold closest to 0.5. An image is called fake when its probability is at or above the threshold. With
--target-fpr F the threshold is instead the lowest whose false-positive rate is at most F (ml.calibration).

Calibration: the evaluation fits a calibration (ml.calibration) on the model's raw probabilities for these images,
and reports the expected calibration error before and after, the uncertain band and the threshold chosen on the
calibrated scale (reliability.png shows the bins). A model that already has a calibration (its card's
"calibration") is measured on its calibrated probabilities, where its threshold lives.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import metrics as skm
from torch import nn
from tqdm import tqdm

from ml.architectures import ARCHITECTURES, get_architecture
from ml.augment import DEGRADATIONS
from ml.calibration import (
    CalibrationError,
    expected_calibration_error,
    fpr_rule,
    save_reliability_diagram,
    threshold_for_fpr,
    with_operating_point,
)
from ml.calibration import apply as apply_calibration
from ml.calibration import fit as fit_calibration
from ml.data import CLASSES, ImageDataset, count_classes, scan_folder, stratified_split
from ml.errors import MLError, TrainingDataError
from ml.package import load_package, read_card
from ml.weights import load_model

THRESHOLD_RULE = (
    "maximise Youden's J (true-positive rate − false-positive rate) on the validation set; ties go to the threshold "
    "closest to 0.5; an image is fake when P(fake) ≥ threshold"
)
HEADLINE = ("roc_auc", "average_precision", "accuracy", "precision", "recall", "f1")


def choose_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold of THRESHOLD_RULE; 0.5 when the labels hold a single class (no ROC curve exists)."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = skm.roc_curve(labels, scores, drop_intermediate=False)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    best = np.flatnonzero(j >= j.max() - 1e-12)
    chosen = best[np.argmin(np.abs(thresholds[best] - 0.5))]
    return float(thresholds[chosen])


def calibrate(labels: np.ndarray, raw_scores: np.ndarray, *, target_fpr: float | None = None) -> dict:
    """A calibration fitted on these validation predictions (ml.calibration) with its operating point, chosen on
    the calibrated probabilities: THRESHOLD_RULE, or with target_fpr the lowest threshold whose false-positive rate
    is at most target_fpr. CalibrationError when it cannot be fitted (a single class, say)."""
    fitted = fit_calibration(labels, raw_scores)
    calibrated = apply_calibration(fitted, raw_scores)
    if target_fpr is None:
        threshold, rule = choose_threshold(labels, calibrated), {"rule": "youden", "description": THRESHOLD_RULE}
    else:
        point = threshold_for_fpr(labels, calibrated, target_fpr)
        threshold, rule = point["threshold"], fpr_rule(target_fpr, point)
    return with_operating_point(fitted, threshold=threshold, rule=rule)


def compute_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Accuracy, precision, recall, F1 at `threshold`; ROC-AUC and average precision over all thresholds."""
    labels = np.asarray(labels).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    predicted = (scores >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    matrix = skm.confusion_matrix(labels, predicted, labels=[0, 1])
    return {
        "count": len(labels),
        "counts": {name: int((labels == label).sum()) for label, name in enumerate(CLASSES)},
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, scores)) if both_classes else None,
        "average_precision": float(skm.average_precision_score(labels, scores)) if both_classes else None,
        "confusion_matrix": matrix.tolist(),  # rows: true real, true fake; columns: predicted real, predicted fake
    }


def autocast(device: torch.device, precision: str):
    """The autocast context for a resolved precision ("fp32" disables it)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def predict_scores(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int = 32,
    workers: int = 0,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    progress: bool = False,
    desc: str = "evaluating",
) -> np.ndarray:
    """P(fake) for every item of the dataset, in order."""
    device = torch.device(device)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    scores = []
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(device, precision):
        for images, _ in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
            logits = model(images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last))
            scores.append(torch.sigmoid(logits.float()).cpu())
    model.train(was_training)
    return torch.cat(scores).numpy() if scores else np.zeros(0, dtype=np.float32)


def save_curves(labels: np.ndarray, curves: dict[str, np.ndarray], output_dir: Path, *, title: str) -> dict[str, str]:
    """roc.png and pr.png, one line per condition in `curves` (name -> scores); returns the file names."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in a web process's threads

    roc_figure, pr_figure = Figure(figsize=(5.5, 5)), Figure(figsize=(5.5, 5))
    roc, pr = roc_figure.subplots(), pr_figure.subplots()
    for name, scores in curves.items():
        fpr, tpr, _ = skm.roc_curve(labels, scores)
        precision, recall, _ = skm.precision_recall_curve(labels, scores)
        roc.plot(fpr, tpr, label=f"{name} (AUC {skm.roc_auc_score(labels, scores):.3f})")
        pr.plot(recall, precision, label=f"{name} (AP {skm.average_precision_score(labels, scores):.3f})")
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    roc.set(xlabel="false-positive rate (real called fake)", ylabel="true-positive rate (fake caught)", title=title)
    pr.set(xlabel="recall (fake caught)", ylabel="precision (called fake that are fake)", title=title)
    for axes in (roc, pr):
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.01)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right" if axes is roc else "lower left", fontsize=8)
    for figure, name in ((roc_figure, "roc.png"), (pr_figure, "pr.png")):
        figure.tight_layout()
        figure.savefig(output_dir / name, dpi=110)
    return {"roc": "roc.png", "pr": "pr.png"}


def evaluate_package(
    package_dir: Path | str | None,
    data_dir: Path | str,
    *,
    output_dir: Path | str,
    weights: Path | str | None = None,
    architecture: str | None = None,
    card: dict | None = None,
    input_size: int | None = None,
    threshold: float | None = None,
    subset: str = "all",
    robustness: bool = False,
    batch_size: int = 32,
    workers: int = 0,
    device: str = "cpu",
    progress: bool = True,
    target_fpr: float | None = None,
) -> dict:
    """Evaluate a model package (or bare weights with their architecture) on data_dir/real and data_dir/fake.

    The package's card gives the architecture, input size and threshold; arguments override them. Bare weights
    take them from `card` (e.g. a registered model's settings and card) or use the architecture's default input
    size and a 0.5 threshold. subset="validation"
    evaluates only the validation part of the split the card records (same seed and fraction), so a model can be
    re-evaluated on images it did not train on. Writes report.json, roc.png and pr.png in output_dir and returns
    the report.
    """
    started = time.monotonic()
    model, card, source = _model_to_evaluate(package_dir, weights=weights, architecture=architecture, card=card)
    input_size = input_size or card["input_size"]
    threshold, threshold_source = _threshold(threshold, card)

    folder = scan_folder(data_dir, progress=progress)
    samples = folder.samples
    if subset == "validation":
        split = card.get("data", {})
        if "val_fraction" not in split:
            raise TrainingDataError("subset=validation needs a model card that records a random split.")
        _, samples = stratified_split(samples, val_fraction=split["val_fraction"], seed=split["split_seed"])
    elif subset != "all":
        raise ValueError(f"subset must be 'all' or 'validation', not {subset!r}")
    labels = np.array([s.label for s in samples])
    device = torch.device(device)
    model = model.to(device).to(memory_format=torch.channels_last)
    options = {"batch_size": batch_size, "workers": workers, "device": device, "progress": progress}

    faces = bool(card.get("faces"))  # a face model is evaluated on the faces inference would give it
    raw = predict_scores(model, ImageDataset(samples, input_size, faces=faces), **options)
    in_use = card.get("calibration") or {}  # the model's own calibration: its threshold is on that scale
    scores = {"original": apply_calibration(in_use, raw)}
    report = {
        "model": {**source, "architecture": card["architecture"], "input_size": input_size, "faces": faces},
        "data": {
            "dir": str(Path(data_dir).resolve()),
            "subset": subset,
            "counts": count_classes(samples),
            "skipped_files": len(folder.skipped),
            "skipped_examples": [f"{s.path}: {s.reason}" for s in folder.skipped[:10]],
        },
        "threshold": threshold,
        "threshold_source": threshold_source,
        "threshold_rule": card.get("threshold_rule", THRESHOLD_RULE),
        "metrics": compute_metrics(labels, scores["original"], threshold),
        # For comparison only: the threshold this rule would pick on these very images (an optimistic figure).
        "threshold_chosen_on_this_data": choose_threshold(labels, scores["original"]),
        "probabilities": f"calibrated ({in_use['method']})" if in_use.get("method") else "raw",
        **_calibration_report(labels, raw, scores["original"], in_use, target_fpr),
    }
    if robustness:
        report["robustness"] = _robustness(
            model, samples, labels, input_size, faces, threshold, report, scores, options, calibration=in_use
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if report["calibration"]:
        save_reliability_diagram(report["calibration"], output_dir / "reliability.png", title=card["architecture"])
    if len(np.unique(labels)) == 2:
        report["files"] = save_curves(
            labels, scores, output_dir, title=f"{card['architecture']} on {Path(data_dir).name}"
        )
    report["duration_s"] = round(time.monotonic() - started, 1)
    (output_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _model_to_evaluate(package_dir, *, weights, architecture, card) -> tuple[nn.Module, dict, dict]:
    """The model, its card (completed with the architecture's defaults for bare weights) and where it came from."""
    if package_dir is not None:
        model, card = load_package(package_dir)
        return (
            model,
            card,
            {"package": str(Path(package_dir).resolve()), "name": card.get("name"), "version": card.get("version")},
        )
    if weights is None or architecture is None:
        raise MLError("Give a model package, or a weights file together with its architecture.")
    arch = get_architecture(architecture)
    model = load_model(weights, architecture=arch.name)
    card = {"input_size": arch.default_input_size, **(card or {}), "architecture": arch.name}
    return (
        model,
        card,
        {"weights": str(Path(weights).resolve()), "name": card.get("name"), "version": card.get("version")},
    )


def _threshold(given: float | None, card: dict) -> tuple[float, str]:
    if given is not None:
        return given, "given"
    if "threshold" in card:
        return float(card["threshold"]), "model card"
    return 0.5, "default (0.5: the weights come without a model card)"


def _calibration_report(labels, raw, scores, in_use: dict, target_fpr: float | None) -> dict:
    """A calibration fitted on these raw predictions (or why none could be), and how calibrated the probabilities
    the model gives today are on these images."""
    try:
        fitted, error = calibrate(labels, raw, target_fpr=target_fpr), None
    except CalibrationError as exc:
        fitted, error = None, str(exc)
    current = expected_calibration_error(labels, scores) if len(labels) else None
    return {"calibration": fitted, "calibration_error": error, "ece_of_the_probabilities_given": current}


def _robustness(
    model, samples, labels, input_size, faces, threshold, report, scores, options, *, calibration: dict
) -> dict:
    """The metrics after each of DEGRADATIONS (the face found again in the degraded picture), and their drops; the
    degraded scores are added to `scores` for the curves."""
    results = {}
    for name, degrade in DEGRADATIONS.items():
        dataset = ImageDataset(samples, input_size, faces=faces, degrade=degrade)
        scores[name] = apply_calibration(calibration, predict_scores(model, dataset, desc=name, **options))
        degraded = compute_metrics(labels, scores[name], threshold)
        drop = {
            key: (report["metrics"][key] - degraded[key]) if degraded[key] is not None else None for key in HEADLINE
        }
        results[name] = {"metrics": degraded, "drop": drop}
    return results


def evaluate_folders(
    package_dir: Path | str | None, data_dirs: list[Path | str], *, output_dir: Path | str, **options
) -> dict:
    """Evaluate one model on several folders (e.g. one per kind of manipulation): a report per folder, under
    output_dir/<n>-<folder name>/, and a table with a row per folder, written to output_dir/generalisation.json.

    With subset="validation", the folder the model was trained on contributes its held-out split only, and every
    other folder all its images (a model never saw them).
    """
    output_dir = Path(output_dir)
    subset = options.pop("subset", "all")
    card = read_card(package_dir) if package_dir is not None else options.get("card") or {}
    trained_on = card.get("data", {}).get("train_dir")
    rows = []
    for number, data_dir in enumerate(data_dirs, start=1):
        own = trained_on is not None and Path(data_dir).resolve() == Path(trained_on).resolve()
        report = evaluate_package(
            package_dir,
            data_dir,
            output_dir=output_dir / f"{number}-{Path(data_dir).resolve().name}",
            subset=subset if own else "all",
            **options,
        )
        rows.append(table_row(report, trained_on_it=own))
    table = {"model": rows[0]["model"] if rows else None, "rows": rows}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "generalisation.json").write_text(json.dumps(table, indent=2) + "\n", encoding="utf-8")
    return table


def table_row(report: dict, *, trained_on_it: bool) -> dict:
    m = report["metrics"]
    return {
        "model": report["model"].get("name"),
        "data": report["data"]["dir"],
        "subset": report["data"]["subset"],
        "trained_on_this_folder": trained_on_it,
        "counts": m["counts"],
        **{key: m[key] for key in ("roc_auc", "average_precision", "accuracy", "f1")},
        "robustness_roc_auc_drop": {
            name: result["drop"]["roc_auc"] for name, result in report.get("robustness", {}).items()
        },
    }


def format_table(table: dict) -> str:
    conditions = sorted({name for row in table["rows"] for name in row["robustness_roc_auc_drop"]})
    header = ["folder", "images", "ROC-AUC", "AP", "accuracy", "F1", *(f"AUC drop {c}" for c in conditions)]
    lines = [" | ".join(header)]
    for row in table["rows"]:
        name = Path(row["data"]).name + (" (held-out)" if row["subset"] == "validation" else "")
        cells = [name, str(sum(row["counts"].values()))]
        cells += ["—" if row[key] is None else f"{row[key]:.4f}" for key in ("roc_auc", "average_precision")]
        cells += [f"{row['accuracy']:.4f}", f"{row['f1']:.4f}"]
        cells += [
            f"{row['robustness_roc_auc_drop'][c]:+.4f}" for c in conditions if c in row["robustness_roc_auc_drop"]
        ]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def format_report(report: dict) -> str:
    m = report["metrics"]
    lines = [
        f"{report['model'].get('name') or report['model']['architecture']} on {report['data']['dir']} "
        f"({m['counts']['real']} real, {m['counts']['fake']} fake; {report['data']['skipped_files']} skipped)",
        f"threshold {report['threshold']:.4f} ({report['threshold_source']})",
        "  ".join(f"{key} {m[key]:.4f}" for key in HEADLINE if m[key] is not None),
        f"confusion matrix [[real→real, real→fake], [fake→real, fake→fake]]: {m['confusion_matrix']}",
        *format_calibration(report),
    ]
    for name, result in report.get("robustness", {}).items():
        drops = "  ".join(
            f"{key} {result['metrics'][key]:.4f} (drop {result['drop'][key]:+.4f})"
            for key in ("roc_auc", "accuracy", "f1")
            if result["metrics"][key] is not None
        )
        lines.append(f"{name:>15}: {drops}")
    return "\n".join(lines)


def format_calibration(report: dict) -> list[str]:
    """The report's calibration lines: ECE before and after, and the operating point chosen with it."""
    fitted = report.get("calibration")
    if not fitted:
        return [f"calibration: none fitted ({report.get('calibration_error') or 'no predictions'})"]
    parameter = f"T = {fitted['temperature']:.3f}" if fitted["method"] == "temperature" else "isotonic regression"
    rule = fitted["threshold_rule"]
    chosen = (
        f"target FPR {rule['target_fpr']:.2%}: FPR {rule['fpr']:.4f}, TPR {rule['tpr']:.4f}"
        if rule["rule"] == "target_fpr"
        else "Youden's J"
    )
    low, high = fitted["uncertain_band"]
    return [
        f"calibration fitted on these {fitted['samples']} images ({fitted['method']}, {parameter}): "
        f"ECE {fitted['ece_before']:.4f} before → {fitted['ece_after']:.4f} after (in-sample)",
        f"calibrated threshold {fitted['threshold']:.4f} ({chosen}); uncertain band [{low:.3f}, {high:.3f})",
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml.evaluate", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--package", type=Path, help="model package folder (model.safetensors + model_card.json)")
    source.add_argument("--weights", type=Path, help="a bare weights file (.safetensors or .pth); needs --architecture")
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES))
    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="folder(s) with real/ and fake/: several give a table"
    )
    parser.add_argument("--output", type=Path, required=True, help="folder for report.json, roc.png, pr.png")
    parser.add_argument("--input-size", type=int, help="default: the model card's")
    parser.add_argument("--threshold", type=float, help="default: the model card's (0.5 for bare weights)")
    parser.add_argument(
        "--target-fpr",
        type=float,
        help="choose the calibrated threshold for this false-positive rate (e.g. 0.01) instead of Youden's J",
    )
    parser.add_argument("--subset", choices=("all", "validation"), default="all")
    parser.add_argument("--robustness", action="store_true", help="also evaluate after JPEG q95/75/50 and 0.5× size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.weights and not args.architecture:
        parser.error("--weights needs --architecture")
    if args.target_fpr is not None and not 0 < args.target_fpr < 1:
        parser.error("--target-fpr must be between 0 and 1, e.g. 0.01 for 1 %")
    options = {
        "weights": args.weights,
        "architecture": args.architecture,
        "input_size": args.input_size,
        "threshold": args.threshold,
        "subset": args.subset,
        "robustness": args.robustness,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "device": args.device,
        "progress": not args.no_progress,
        "target_fpr": args.target_fpr,
    }
    try:
        if len(args.data) > 1:
            table = evaluate_folders(args.package, args.data, output_dir=args.output, **options)
        else:
            report = evaluate_package(args.package, args.data[0], output_dir=args.output, **options)
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(args.data) > 1:
        print(format_table(table))
        print(f"wrote {args.output / 'generalisation.json'} and a report per folder")
    else:
        print(format_report(report))
        print(f"wrote {args.output / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
