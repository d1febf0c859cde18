"""Users' reports that a verdict is wrong, and what staff make of them: flagging, confirming (keeping the file for
the regression set when its owner consented), rejecting, and evaluating models on the regression set."""

import hashlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError

from detection import selectors_feedback
from detection.errors import FlagFinal, FlagRefused
from detection.models import Analysis, DetectorModel, ModelEvaluation, RegressionSet, VerdictFlag
from detection.services.detector_models import detector_model_evaluation_start
from detection.services.regression import regression_set_label

# The fields a user fills in; the rest of a flag is recorded or decided by staff.
FLAG_INPUT_FIELDS = ("label", "note", "consent")


def verdict_flag_submit(*, analysis: Analysis, user, label: str, note: str = "", consent: bool = False) -> VerdictFlag:
    """Flag the user's finished analysis as wrong, or update their flag while it is open; FlagRefused for an
    analysis without a verdict or a bad label or note, FlagFinal once the flag was reviewed."""
    if analysis.owner_id != user.pk:
        raise FlagRefused("Only the person who uploaded a file can flag its verdict.", field=None)
    if analysis.status != Analysis.Status.DONE:
        raise FlagRefused(
            f"Only a finished analysis can be flagged, and this one is {analysis.get_status_display().lower()}.",
            field=None,
        )
    _flag_input_check(label=label, note=note, consent=consent)
    if label == analysis.verdict:
        raise FlagRefused(
            f"The verdict already says {Analysis.Verdict(label).label.lower()}: flag it only when you think it is "
            "wrong.",
            field="label",
        )
    flag = VerdictFlag.record(analysis=analysis, owner=user, label=label, note=note.strip(), consent=consent)
    if flag is None:
        reviewed = selectors_feedback.verdict_flag_get(user=user, analysis=analysis)
        raise FlagFinal(
            f"Your flag of this verdict was already reviewed ({reviewed.get_status_display().lower()}); that "
            "decision is final.",
            field=None,
        )
    return flag


def _flag_input_check(*, label: str, note: str, consent: bool) -> None:
    """The model's own rules for what users fill in (the label's choices, the note's length)."""
    longest = VerdictFlag._meta.get_field("note").max_length  # a TextField's max_length has no validator of its own
    if len(note) > longest:
        raise FlagRefused(f"Keep the note to {longest} characters (it has {len(note)}).", field="note")
    try:
        VerdictFlag(label=label, note=note, consent=consent).clean_fields(
            exclude=[field.name for field in VerdictFlag._meta.fields if field.name not in FLAG_INPUT_FIELDS]
        )
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        if field == "label":
            raise FlagRefused("Say which label is right: “real” or “fake”.", field="label") from None
        raise FlagRefused(" ".join(messages), field=field) from None


@dataclass(frozen=True)
class FlagReview:
    """What confirming or rejecting a flag did."""

    flag: VerdictFlag
    reviewed: bool  # False: it had been reviewed already, and nothing changed
    kept: bool = False  # its file was copied for the regression set
    not_kept_reason: str = ""


def verdict_flag_reject(*, flag: VerdictFlag, reviewer) -> FlagReview:
    return FlagReview(flag=flag, reviewed=flag.reject(reviewer=reviewer))


def verdict_flag_confirm(*, flag: VerdictFlag, reviewer) -> FlagReview:
    """Confirm the flag; with its owner's consent, copy the analysis's file for the regression set. A confirmation
    stands when the file cannot be kept (the reason says why)."""
    if not flag.confirm(reviewer=reviewer):
        return FlagReview(flag=flag, reviewed=False)
    if not flag.consent:
        return FlagReview(flag=flag, reviewed=True, not_kept_reason="its owner did not consent to keeping the file")
    reason = _flag_keep_original(flag)
    return FlagReview(flag=flag, reviewed=True, kept=not reason, not_kept_reason=reason)


def _flag_keep_original(flag: VerdictFlag) -> str:
    """Copy the analysis's original into the flag's own file, with its SHA-256; why not, when it cannot."""
    analysis = flag.analysis
    if analysis is None:
        return "its analysis was deleted"
    if analysis.kind != Analysis.Kind.IMAGE:
        return "the regression set holds images, and this is a video"
    if not analysis.original:
        return "the original file is no longer stored (it was not kept, or retention deleted it)"
    try:
        with analysis.original.open("rb") as original:
            sha256 = hashlib.sha256()
            for chunk in original.chunks():
                sha256.update(chunk)
            original.seek(0)
            suffix = PurePosixPath(analysis.original.name).suffix.lower()
            flag.image.save(f"flag-{flag.pk}-{sha256.hexdigest()[:12]}{suffix}", original, save=False)
    except (FileNotFoundError, OSError):
        return "the original file is missing from storage"
    flag.sha256 = sha256.hexdigest()
    flag.save(update_fields=["image", "sha256"])
    return ""


def regression_set_evaluation_start(
    *, detector_model: DetectorModel, regression_set: RegressionSet | None = None
) -> ModelEvaluation | None:
    """Queue an evaluation of the model on a regression set version (the latest by default); None when there is no
    regression set yet."""
    regression_set = regression_set or selectors_feedback.regression_set_latest()
    if regression_set is None:
        return None
    return detector_model_evaluation_start(
        detector_model=detector_model,
        dataset_path=regression_set_label(regression_set),
        regression_set=regression_set,
    )
