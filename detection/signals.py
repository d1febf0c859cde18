"""Files follow their rows: when an analysis, evaluation or model row is deleted (one by one, in bulk, or with its
owner's account), its files are deleted from whichever storage holds them, once the deletion is committed."""

import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from detection.models import Analysis, AnalysisFace, AnalysisFrame, DetectorModel, ModelEvaluation, VerdictFlag

logger = logging.getLogger(__name__)


def delete_files_on_commit(files) -> None:
    stored = [(file.storage, file.name) for file in files if file]

    def delete() -> None:
        for storage, name in stored:
            try:
                storage.delete(name)
            except Exception:  # the row is gone either way; an orphan file is logged for the operator
                logger.exception("Could not delete %s from %s", name, storage.__class__.__name__)

    transaction.on_commit(delete)


@receiver(post_delete, sender=Analysis)
def _analysis_deleted(sender, instance: Analysis, **kwargs) -> None:
    delete_files_on_commit(instance.own_files())  # its faces and frames were deleted first, each with its files


@receiver(post_delete, sender=AnalysisFace)
def _face_deleted(sender, instance: AnalysisFace, **kwargs) -> None:
    delete_files_on_commit([instance.overlay])


@receiver(post_delete, sender=AnalysisFrame)
def _frame_deleted(sender, instance: AnalysisFrame, **kwargs) -> None:
    delete_files_on_commit([instance.picture])


@receiver(post_delete, sender=VerdictFlag)
def _flag_deleted(sender, instance: VerdictFlag, **kwargs) -> None:
    delete_files_on_commit([instance.image])


@receiver(post_delete, sender=ModelEvaluation)
def _evaluation_deleted(sender, instance: ModelEvaluation, **kwargs) -> None:
    delete_files_on_commit([instance.roc_curve, instance.pr_curve])


@receiver(post_delete, sender=DetectorModel)
def _detector_model_deleted(sender, instance: DetectorModel, **kwargs) -> None:
    delete_files_on_commit([instance.weights])
