"""The regression set: the files of confirmed, consented flags with the labels users said were right, frozen into
numbered versions, laid out for engine.evaluate, and the activation gate that compares a candidate model with the
active one on the same version.

Kept free of detection.services.detector_models, which uses it (evaluating, activating).
"""

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from detection import engine, selectors, selectors_feedback
from detection.models import Analysis, DetectorModel, ModelEvaluation, RegressionSet, VerdictFlag


def regression_set_build(*, user=None) -> RegressionSet:
    """Freeze the confirmed, consented flags' files into the next version; ValidationError when there is nothing
    to freeze, a class is missing, or nothing changed since the last version."""
    manifest = [
        {"flag": flag.pk, "sha256": flag.sha256, "label": flag.label, "file": flag.image.name}
        for flag in selectors_feedback.verdict_flag_list_for_regression_set()
    ]
    if not manifest:
        raise ValidationError(
            "The regression set would be empty: no confirmed flag with the owner's consent has a kept file yet."
        )
    missing = [label for label in Analysis.Label.values if all(entry["label"] != label for entry in manifest)]
    if missing:
        # engine.evaluate (ml.evaluate) measures a model on both classes and refuses a folder without one.
        raise ValidationError(
            f"The regression set needs both real and fake files to evaluate models on, and it has no {missing[0]} "
            f"one yet ({len(manifest)} {'file' if len(manifest) == 1 else 'files'} in all)."
        )
    try:
        with transaction.atomic():
            last = RegressionSet.objects.select_for_update().order_by("-version").first()
            if last is not None and last.manifest == manifest:
                raise ValidationError(
                    f"Nothing changed since regression set v{last.version}: it already holds these "
                    f"{len(manifest)} files."
                )
            version = (last.version if last else 0) + 1
            return RegressionSet.objects.create(version=version, manifest=manifest, created_by=user)
    except IntegrityError:
        raise ValidationError(
            "Another version of the regression set was built at the same moment; try again."
        ) from None


@dataclass(frozen=True)
class Materialised:
    """A regression set version laid out as engine.evaluate reads datasets: path/real/… and path/fake/…"""

    path: Path
    files: int
    missing: list[int]  # the flags whose file is gone (their owner deleted their account) or changed


@contextmanager
def regression_set_materialise(*, regression_set: RegressionSet) -> Iterator[Materialised]:
    """The version's files copied from storage into a temporary folder, removed afterwards."""
    storage = VerdictFlag._meta.get_field("image").storage
    with tempfile.TemporaryDirectory(prefix=f"regression-set-v{regression_set.version}-") as root:
        for label in Analysis.Label.values:
            (Path(root) / label).mkdir()
        missing = [
            entry["flag"]
            for entry in regression_set.manifest
            if not _copy_entry(storage, entry, Path(root) / entry["label"])
        ]
        yield Materialised(Path(root), len(regression_set.manifest) - len(missing), missing)


def _copy_entry(storage, entry: dict, folder: Path) -> bool:
    """Copy one manifest entry's file into the folder; False when it is gone or no longer has its SHA-256."""
    target = folder / f"flag-{entry['flag']}{PurePosixPath(entry['file']).suffix.lower()}"
    digest = hashlib.sha256()
    try:
        with storage.open(entry["file"], "rb") as source, target.open("wb") as copy:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
                copy.write(chunk)
    except (FileNotFoundError, OSError):
        target.unlink(missing_ok=True)
        return False
    if digest.hexdigest() != entry["sha256"]:
        target.unlink()
        return False
    return True


def regression_set_label(regression_set: RegressionSet) -> str:
    """What an evaluation on the version records as its dataset."""
    return f"regression set v{regression_set.version}"


# --- The activation gate ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegressionComparison:
    """A candidate's and the active model's results on the same regression set version."""

    candidate: ModelEvaluation
    active: ModelEvaluation

    @property
    def version(self) -> int:
        return self.candidate.regression_set.version

    @property
    def candidate_accuracy(self) -> float:
        return self.candidate.report["metrics"]["accuracy"]

    @property
    def active_accuracy(self) -> float:
        return self.active.report["metrics"]["accuracy"]

    @property
    def worse(self) -> bool:
        return self.candidate_accuracy < self.active_accuracy

    @property
    def summary(self) -> str:
        return (
            f"Model “{self.candidate.detector_model}” does worse than the active model “{self.active.detector_model}” "
            f"on regression set v{self.version}: {self.candidate_accuracy:.2f} vs {self.active_accuracy:.2f} accuracy."
        )


class RegressionWorse(ValidationError):
    """Activation refused until confirmed: the candidate does worse than the active model on the regression set."""

    def __init__(self, comparison: RegressionComparison):
        super().__init__(f"{comparison.summary} Confirm to activate it anyway.")
        self.comparison = comparison


def regression_comparison(*, candidate: DetectorModel) -> RegressionComparison | None:
    """The candidate against the active model on the newest regression set version both have results on; None
    without such results (or when the candidate is the active model)."""
    active = selectors.detector_model_get_active()
    if active is None or active.pk == candidate.pk:
        return None
    pair = selectors_feedback.regression_evaluations_on_common_version(detector_model=candidate, other=active)
    return RegressionComparison(*pair) if pair else None


def regression_gate_check(*, candidate: DetectorModel, accepted_version: int | None = None) -> None:
    """RegressionWorse when the candidate does worse than the active model on a regression set version, unless
    the administrator accepted exactly that version's comparison."""
    comparison = regression_comparison(candidate=candidate)
    if comparison is not None and comparison.worse and comparison.version != accepted_version:
        raise RegressionWorse(comparison)


def regression_set_evaluate(*, detector_model: DetectorModel, regression_set: RegressionSet) -> tuple[dict, dict]:
    """engine.evaluate's report and curves on the version's files, with which of them could be used."""
    with regression_set_materialise(regression_set=regression_set) as folder:
        report, curves = engine.evaluate(detector_model, str(folder.path))
    report["regression_set"] = {
        "version": regression_set.version,
        "files": folder.files,
        "missing_flags": folder.missing,
    }
    return report, curves
