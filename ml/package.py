"""Model packages: a directory with the weights (`model.safetensors`) and a JSON model card (`model_card.json`).

The model card says what the model is, how it was made and how good it is. Keys:

- name, version: a human name and a version string (the creation time, e.g. "2026.11.25-1502").
- architecture: a name from ml.architectures (resnet18, resnet50, mobilenet_v2); input_size: the side in pixels
  every image is resized to before the model sees it (inference must use this value).
- threshold: probability of "fake" at or above which an image is called fake; threshold_rule: how it was chosen.
- calibration (optional, ml.calibration): fitted on the validation predictions; every probability the model gives
  is calibrated by it, and threshold and metrics are then on the calibrated scale. Holds method, temperature or
  x/y, ece_before/ece_after, reliability_before/after, samples, counts, roc (validation points for choosing a
  threshold by false-positive rate later), threshold, threshold_rule and uncertain_band.
- metrics: {"validation": {...}} and, when there is one, {"test": {...}}; each holds count, threshold, accuracy,
  precision, recall, f1 (fake is the positive class), roc_auc, average_precision and confusion_matrix
  ([[true real→real, true real→fake], [true fake→real, true fake→fake]]). Validation metrics at the threshold
  are optimistic: the threshold was chosen on the same images.
- data: description (text), the folders, the split, counts per split and class ({"train": {"real": n, "fake": n},
  "validation": {...}}), skipped_files (unreadable images) and a few examples with their reasons.
- training: hyperparameters (optimizer, lr, weight decay, batch size, scheduler, early-stopping patience,
  augmentation, seed, pretrained or not and why), epochs_run, best_epoch, stopped_because, duration_s, device,
  precision, distributed (world size, backend, and the SHA-256 of the final weights on every rank).
- created_at: ISO 8601 UTC; code_version: the git commit of the code that trained it (null outside a git checkout);
  sha256: the SHA-256 of model.safetensors.
- faces: for a face model, how its training crops were made ({"framing": 1.25, "detector": ..., "min_face_side":
  32}, ml.faces.face_card): photos are then analysed face by face, framed the same way; null or absent for a model
  that looks at whole images.
- detects, limitations: plain-language text on what the model picks up and where it has not been validated
  (required for the starter model; optional otherwise); terms: the conditions the training data puts on the
  weights (the bundled reference model: research and evaluation only).
- robustness, recipe (the bundled reference model, ml.reference): held-out figures after JPEG and downscaling, and
  the command that re-creates it.
"""

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from torch import nn

from ml.architectures import DeepfakeNet
from ml.errors import MLError
from ml.weights import load_model, save_weights

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
REQUIRED_CARD_KEYS = ("name", "architecture", "input_size", "threshold", "sha256")
REPOSITORY = Path(__file__).resolve().parent.parent


class PackageError(MLError):
    """A model package directory is missing, incomplete, or its card cannot be read."""


def code_version() -> str | None:
    """The git commit of this checkout, or None when the code does not run from a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 (git from PATH is what a developer's checkout uses)
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_package(model: nn.Module, package_dir: Path | str, card: dict) -> dict:
    """Write the weights and the card (completed with sha256, created_at, code_version); returns the card."""
    package_dir = Path(package_dir)
    package_dir.mkdir(parents=True, exist_ok=True)
    sha256 = save_weights(model, package_dir / WEIGHTS_FILE, metadata={"architecture": card["architecture"]})
    card = {"created_at": now_iso(), "code_version": code_version(), **card, "sha256": sha256}
    (package_dir / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return card


def read_card(package_dir: Path | str) -> dict:
    package_dir = Path(package_dir)
    card_path = package_dir / CARD_FILE
    if not package_dir.is_dir():
        raise PackageError(f"There is no model package at {package_dir} (expected a folder).")
    if not card_path.is_file():
        raise PackageError(f"{package_dir} has no {CARD_FILE}; a model package holds {WEIGHTS_FILE} and {CARD_FILE}.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{card_path} is not readable JSON ({exc}).") from None
    missing = [key for key in REQUIRED_CARD_KEYS if key not in card] if isinstance(card, dict) else REQUIRED_CARD_KEYS
    if missing:
        raise PackageError(f"{card_path} lacks {', '.join(missing)}.")
    return card


def load_package(package_dir: Path | str) -> tuple[DeepfakeNet, dict]:
    """The model (in eval mode, weights checked against the card's SHA-256) and its card."""
    card = read_card(package_dir)
    model = load_model(
        Path(package_dir) / WEIGHTS_FILE, architecture=card["architecture"], expected_sha256=card["sha256"]
    )
    return model, card
