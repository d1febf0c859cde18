"""Make sure a detector model is active before the product serves: the run command and compose's release step call it.

Order of preference: the model already active; else the Hugging Face model named by HUGGINGFACE_REPO and
MODEL_FILENAME (downloaded, validated and activated); else the reference model bundled in the repository
(models/reference, docs/model-results.md), registered and activated in seconds; else, when that folder is missing,
the starter model, trained here on generated data.
"""

import json
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from detection import services
from detection.models import DetectorModel
from detection.selectors import detector_model_get_active

BUNDLED_MODEL_DIR = Path(settings.BASE_DIR) / "models" / "reference"


class Command(BaseCommand):
    help = (
        "Activate a detector model if none is active: the configured Hugging Face model, else the bundled reference "
        "model, else the starter model."
    )

    def handle(self, *args, **options):
        active = detector_model_get_active()
        if active is not None:
            self.stdout.write(f"Active detector model: {active} ({active.architecture}).")
            return
        if settings.HUGGINGFACE_REPO:
            model = self._activate_hub_model()
        elif (BUNDLED_MODEL_DIR / "model_card.json").is_file():
            model = self._activate_bundled_model()
        else:
            self.stdout.write(
                f"No detector model is active and {BUNDLED_MODEL_DIR} is missing: making the starter model."
            )
            call_command("make_starter_model", stdout=self.stdout, stderr=self.stderr)
            model = detector_model_get_active()
            if model is None:
                raise CommandError("make_starter_model finished without activating a model.")
        self.stdout.write(self.style.SUCCESS(f"Active detector model: {model} ({model.architecture})."))

    def _activate_bundled_model(self) -> DetectorModel:
        card = json.loads((BUNDLED_MODEL_DIR / "model_card.json").read_text(encoding="utf-8"))
        # Registered before and since replaced: the same weights, already checked, are activated again.
        earlier = DetectorModel.objects.filter(sha256=card["sha256"], status=DetectorModel.Status.READY).first()
        try:
            if earlier is not None:
                self.stdout.write(
                    f"No detector model is active: activating the bundled reference model “{earlier}” again."
                )
                return services.detector_model_activate_checked(detector_model=earlier)
            self.stdout.write(
                f"No detector model is active: registering the bundled reference model from {BUNDLED_MODEL_DIR}."
            )
            return services.detector_model_register_package(package_dir=BUNDLED_MODEL_DIR, activate=True)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None

    def _activate_hub_model(self) -> DetectorModel:
        repo, filename = settings.HUGGINGFACE_REPO, settings.MODEL_FILENAME
        revision = settings.HUGGINGFACE_REVISION or ""
        self.stdout.write(f"No detector model is active: fetching {filename} from the Hugging Face repo {repo}.")
        model, _ = DetectorModel.objects.get_or_create(
            source=DetectorModel.Source.HUB,
            hub_repo=repo,
            hub_filename=filename,
            hub_revision=revision,
            defaults={
                "name": repo.rsplit("/", 1)[-1],
                "version": revision or "main",
                "architecture": settings.MODEL_ARCHITECTURE,
            },
        )
        model = services.detector_model_prepare(detector_model_id=model.pk)
        if model.status != DetectorModel.Status.READY:
            raise CommandError(
                f"The model {filename} from {repo} could not be used: {model.status_message} "
                "Fix HUGGINGFACE_REPO / MODEL_FILENAME / HUGGINGFACE_TOKEN, or unset HUGGINGFACE_REPO to use the "
                "bundled reference model."
            )
        return services.detector_model_activate(detector_model=model)
