"""The bundled reference model: `python -m ml.reference DATA_DIR --output models/reference` (`make reference-model`).

Trains with exactly the options of `manage.py train_detector` listed in RECIPE (ml.train, the same code), measures
the held-out split with and without degradations (ml.evaluate), and writes the package (weights and model card) with
what the card must say about the data's terms. Anyone with the OpenForensics crops re-creates the model with it:

    manage.py train_detector DATA_DIR --no-register <RECIPE>

The data (../shared/datasets/openforensics-train, PROVENANCE.md) is for research and evaluation only, and so are the
weights: commercial users train their own with the same command on their own data.
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from ml.errors import MLError
from ml.evaluate import evaluate_folders, evaluate_package, table_row
from ml.kinds import make_unseen_kinds
from ml.package import CARD_FILE, WEIGHTS_FILE, read_card
from ml.train import build_parser, config_from_args, train

RECIPE = [
    *("--architecture", "mobilenet_v2", "--input-size", "160", "--faces", "--cache-images", "--workers", "0"),
    *("--batch-size", "32", "--lr", "5e-4", "--schedule", "cosine", "--epochs", "8", "--seed", "0"),
    *("--downscale-prob", "0.7", "--blur-prob", "0.1", "--jpeg-prob", "0.3"),
    # One self-blended pseudo-fake per two real faces beside the real fakes: the model learns blending boundaries
    # and colour mismatches too, which carried it from 0.47 to 0.75 on classic face swaps (docs/model-results.md).
    *("--self-blended", "0.5"),
]

NAME = "Reference face-swap detector (MobileNetV2, OpenForensics faces)"
TERMS = (
    "Research and evaluation use only. Trained on face crops of OpenForensics (Le et al., “OpenForensics: Large-Scale "
    "Challenging Dataset For Multi-Face Forgery Detection And Segmentation In-The-Wild”, ICCV 2021), whose authors "
    "publish it for academic purposes only; its real faces come from Google Open Images photos. Not for commercial "
    "use: train your own model with the same command (`make reference-model`, or `manage.py train_detector` with "
    "the recipe) on data you may use."
)
DETECTS = (
    "Finds faces in the image and judges each: trained on real faces and GAN-based face swaps blended into "
    "in-the-wild photos (OpenForensics), and on self-blended pseudo-fakes made from the real faces (a face blended "
    "into a slightly altered copy of itself: the boundaries and colour mismatches most face manipulations leave), "
    "framed and resized alike so that neither framing nor resolution gives the class away."
)
LIMITATIONS = (
    "Validated on one real kind of manipulation (GAN face swaps as OpenForensics makes them) and on two kinds made "
    "here from held-out real faces (classic face swaps, self-blends: the generalisation table), where it is far "
    "weaker. Other kinds (diffusion-generated faces, hand-made splices, whole generated images) are not validated. "
    "Faces smaller than 32 pixels are not judged; an image without a face is judged whole, outside what the model "
    "was trained on."
)

KINDS_NOTE = (
    "ROC-AUC per kind of manipulation. The first row is the kind the model was trained on (its held-out split); "
    "the others are stand-ins made by ml.kinds from the same held-out real faces: classic landmark-aligned face "
    "swaps between different people (Poisson or feathered blending) and self-blended faces. The kinds of issue 21 "
    "(hand-made splices, classic swaps, diffusion faces) are kept outside the project; evaluate_detector gives "
    "their rows where they are available."
)


def make_reference_model(data_dir: Path, output: Path, *, run_dir: Path, progress: bool = True) -> dict:
    """Train, evaluate and write the reference package into `output`; returns its card."""
    args = build_parser().parse_args(
        [str(data_dir), "--output", str(run_dir), *RECIPE, "--name", NAME, *([] if progress else ["--no-progress"])]
    )
    config = config_from_args(args)
    config.card_extra = {"detects": DETECTS, "limitations": LIMITATIONS, "terms": TERMS}
    result = train(config)
    with tempfile.TemporaryDirectory(prefix="reference-evaluation-") as scratch:
        report = evaluate_package(
            result.package_dir,
            data_dir,
            output_dir=Path(scratch) / "in-kind",
            subset="validation",
            robustness=True,
            progress=progress,
        )
        generalisation = cross_kind_table(result.package_dir, data_dir, report, Path(scratch), progress=progress)
    card = {
        **result.card,
        "robustness": {
            "subset": "validation",
            **{name: {k: r["metrics"][k] for k in ("roc_auc", "accuracy")} for name, r in report["robustness"].items()},
            "drop": {
                name: {k: r["drop"][k] for k in ("roc_auc", "accuracy")} for name, r in report["robustness"].items()
            },
        },
        "generalisation": generalisation,
        "recipe": {
            "command": "manage.py train_detector DATA_DIR --no-register " + " ".join(RECIPE),
            "data": "openforensics-train (6,000 real and 6,000 fake 256 × 256 face crops; PROVENANCE.md)",
        },
    }
    output.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.package_dir / WEIGHTS_FILE, output / WEIGHTS_FILE)
    (output / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return card


def cross_kind_table(package_dir: Path, data_dir: Path, in_kind: dict, scratch: Path, *, progress: bool) -> dict:
    """The card's generalisation table: the held-out split (in kind), then the stand-in kinds of ml.kinds, made
    from the same held-out real faces, which the model never saw."""
    split = read_card(package_dir)["data"]
    kinds = make_unseen_kinds(data_dir, scratch / "kinds", seed=split["split_seed"], val_fraction=split["val_fraction"])
    table = evaluate_folders(
        package_dir, list(kinds.values()), output_dir=scratch / "kinds-evaluation", progress=progress
    )
    rows = [table_row(in_kind, trained_on_it=True), *table["rows"]]
    for row, kind in zip(rows, [f"{Path(data_dir).name} (held-out)", *kinds], strict=True):
        row["data"] = kind
    return {"about": KINDS_NOTE, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.reference", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="the OpenForensics crops: real/ and fake/")
    parser.add_argument("--output", type=Path, default=Path("models/reference"), help="where the package goes")
    parser.add_argument("--run-dir", type=Path, required=True, help="training run folder (checkpoints)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        card = make_reference_model(args.data_dir, args.output, run_dir=args.run_dir, progress=not args.no_progress)
    except MLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    validation, training = card["metrics"]["validation"], card["training"]
    print(
        f"wrote {args.output}: validation ROC-AUC {validation['roc_auc']:.4f}, accuracy {validation['accuracy']:.4f} "
        f"({training['epochs_run']} epochs, {training['duration_s']:.0f} s)"
    )
    for name, drop in card["robustness"]["drop"].items():
        print(f"  {name}: ROC-AUC drop {drop['roc_auc']:+.4f}, accuracy drop {drop['accuracy']:+.4f}")
    for row in card["generalisation"]["rows"]:
        print(f"  {row['data']}: ROC-AUC {row['roc_auc']:.4f}, accuracy {row['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
