"""`manage.py evaluate_detector DATA_DIR [DATA_DIR ...]`: evaluate a detector model (the active one by default) on
DATA_DIR/real and DATA_DIR/fake with ml.evaluate: metrics at the model's threshold, ROC and precision-recall curves as
PNG, a JSON report, and with --robustness the drop after JPEG re-compression and 0.5x downscaling. Several folders
(one per kind of manipulation, say) give one table with a row per folder: how the model generalises.
"""

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from detection import engine
from detection.errors import ModelUnusable
from detection.models import DetectorModel
from detection.selectors import detector_model_get_active


class Command(BaseCommand):
    help = "Evaluate a detector model on a folder with real/ and fake/ images; writes report.json, roc.png, pr.png."

    def add_arguments(self, parser):
        parser.add_argument("data_dir", type=Path, nargs="+", help="folder(s) with real/ and fake/ images")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--model", type=int, help="ID of the detector model (default: the active one)")
        source.add_argument("--package", type=Path, help="a model package folder instead of a registered model")
        parser.add_argument("--output", type=Path, help="folder for the report (default: DATA_DIR/evaluations/…)")
        parser.add_argument("--robustness", action="store_true", help="also after JPEG q95/75/50 and 0.5× size")
        parser.add_argument(
            "--subset",
            choices=("all", "validation"),
            default="all",
            help="validation: of the folder the model trained on, only the held-out part of the split recorded in its "
            "card (other folders are used whole)",
        )
        parser.add_argument("--threshold", type=float, help="default: the model's")
        parser.add_argument(
            "--target-fpr",
            type=float,
            help="choose the calibrated threshold for this false-positive rate (e.g. 0.01) instead of Youden's J",
        )
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--workers", type=int, default=0, help="data-loading processes")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        from ml.errors import MLError
        from ml.evaluate import evaluate_folders, evaluate_package, format_report, format_table

        if options["batch_size"] < 1 or options["workers"] < 0:
            raise CommandError("--batch-size must be at least 1 and --workers cannot be negative.")
        if options["target_fpr"] is not None and not 0 < options["target_fpr"] < 1:
            raise CommandError("--target-fpr must be between 0 and 1, e.g. 0.01 for a 1 % false-positive rate.")
        model, source = self._source(options)
        name = str(model) if model is not None else Path(source["package"]).name
        output = options["output"] or (
            Path(settings.DATA_DIR) / "evaluations" / f"{slugify(name)}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        evaluation = {
            "output_dir": output,
            "threshold": options["threshold"],
            "subset": options["subset"],
            "robustness": options["robustness"],
            "batch_size": options["batch_size"],
            "workers": options["workers"],
            "progress": not options["no_progress"],
            "target_fpr": options["target_fpr"],
            **source.get("weights", {}),
        }
        folders = options["data_dir"]
        try:
            if len(folders) > 1:
                table = evaluate_folders(source.get("package"), folders, **evaluation)
            else:
                report = evaluate_package(source.get("package"), folders[0], **evaluation)
        except MLError as exc:
            raise CommandError(str(exc)) from None
        if len(folders) > 1:
            self.stdout.write(format_table(table))
            self.stdout.write(f"Wrote {Path(output) / 'generalisation.json'} and a report per folder.")
        else:
            self.stdout.write(format_report(report))
            self.stdout.write(f"Wrote {Path(output) / 'report.json'} and the ROC and precision-recall curves.")

    def _source(self, options) -> tuple[DetectorModel | None, dict]:
        """The model to evaluate and the arguments that point ml.evaluate at its weights."""
        if options["package"] is not None:
            return None, {"package": options["package"]}
        if options["model"] is not None:
            model = DetectorModel.objects.filter(pk=options["model"]).first()
            if model is None:
                raise CommandError(f"There is no detector model with ID {options['model']}.")
        else:
            model = detector_model_get_active()
            if model is None:
                raise CommandError(
                    "No detector model is active. Give --model ID or --package DIR, or activate a model first."
                )
        try:
            weights = engine.weights_local_path(model)
        except ModelUnusable as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Evaluating “{model}” ({model.architecture}, {model.input_size} px).")
        # The registered settings win over the card's: an administrator may have changed the threshold.
        card = {
            **(model.card or {}),
            "name": model.name,
            "version": model.version,
            "input_size": model.input_size,
            "threshold": model.threshold,
            "calibration": model.calibration,  # the threshold is on its scale
        }
        return model, {"weights": {"weights": weights, "architecture": model.architecture, "card": card}}
