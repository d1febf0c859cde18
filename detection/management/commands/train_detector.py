"""`manage.py train_detector DATA_DIR`: train a detector (same code and options as `python -m ml.train`) and register
the resulting package as a detector model, validated and, with --activate, made the active one.

Several processes: `torchrun --nproc_per_node N manage.py train_detector ...`; only the first process registers.
"""

import time
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from detection import services


class Command(BaseCommand):
    help = "Train a detector on DATA_DIR/real and DATA_DIR/fake and register it as a detector model."

    def add_arguments(self, parser):
        from ml.train import add_arguments

        add_arguments(parser, output_required=False)
        parser.add_argument(
            "--register",
            action="store_true",
            default=True,
            help="register the trained package as a detector model (the default)",
        )
        parser.add_argument("--no-register", dest="register", action="store_false", help="only write the package")
        parser.add_argument("--activate", action="store_true", help="make the new model the active one")

    def handle(self, *args, **options):
        import argparse

        from ml.errors import MLError
        from ml.train import config_from_args, train

        if options["output"] is None:
            options["output"] = Path(settings.DATA_DIR) / "training" / time.strftime("%Y%m%d-%H%M%S")
        config = config_from_args(argparse.Namespace(**options))
        self.stdout.write(f"Training {config.architecture} on {config.data_dir}; run folder {config.output_dir}")
        try:
            result = train(config)
        except MLError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            raise CommandError(
                f"Interrupted; continue with --resume {Path(config.output_dir) / 'checkpoints' / 'last.pth'}"
            ) from None
        if result.package_dir is None:  # not the first of several processes
            return
        m = result.metrics
        self.stdout.write(
            f"Wrote {result.package_dir}: validation ROC-AUC {m['roc_auc']:.4f}, accuracy {m['accuracy']:.4f}, "
            f"F1 {m['f1']:.4f} at threshold {result.card['threshold']:.4f} "
            f"({result.card['training']['stopped_because']})."
        )
        if options["register"]:
            try:
                model = services.detector_model_register_package(
                    package_dir=result.package_dir, activate=options["activate"]
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
            self.stdout.write(self.style.SUCCESS(f"Registered “{model}” ({model.get_status_display().lower()})."))
            if model.is_active:
                self.stdout.write(self.style.SUCCESS(f"“{model}” is now the active model."))
