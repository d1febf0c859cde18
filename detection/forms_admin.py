"""Forms of the detector-model admin: adding a model from one of three sources, and evaluating one on a folder."""

import re
from pathlib import Path

from django import forms
from django.conf import settings

from detection import services
from detection.models import DetectorModel

WEIGHTS_SUFFIXES = (".safetensors", ".pth", ".pt")
WEIGHTS_DESCRIPTION = ".safetensors (preferred) or .pth"
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
SOURCES = [(value, label) for value, label in DetectorModel.Source.choices if value != DetectorModel.Source.TRAINING]


def _weights_suffix_error(name: str) -> str | None:
    if Path(name).suffix.lower() in WEIGHTS_SUFFIXES:
        return None
    return f"“{Path(name).name}” is not a weights file this product reads; use {WEIGHTS_DESCRIPTION}."


class DetectorModelAddForm(forms.ModelForm):
    source = forms.ChoiceField(choices=SOURCES, initial=DetectorModel.Source.UPLOAD, widget=forms.RadioSelect)
    weights_file = forms.FileField(
        required=False,
        label="Weights file",
        help_text=f"For an upload: the trained weights, {WEIGHTS_DESCRIPTION}. Its SHA-256 is recorded on arrival.",
    )

    class Meta:
        model = DetectorModel
        fields = [
            "name",
            "version",
            "description",
            "architecture",
            "input_size",
            "threshold",
            "face_framing",
            "source",
            "hub_repo",
            "hub_filename",
            "hub_revision",
            "server_path",
            "sha256",
        ]
        labels = {"sha256": "Expected SHA-256"}
        help_texts = {
            "hub_repo": "For the Hub: owner/name, e.g. my-org/deepfake-detector.",
            "hub_filename": "For the Hub: the weights file in the repository.",
            "hub_revision": "For the Hub: a branch, tag or commit; empty means main. A commit pins the exact file.",
            "server_path": "For a file on the server: its absolute path, readable by the web server and the workers.",
            "sha256": "Optional: the checksum the weights must have. Anything else is refused.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["architecture"].initial = settings.MODEL_ARCHITECTURE
        self.fields["hub_repo"].initial = settings.HUGGINGFACE_REPO
        self.fields["hub_filename"].initial = settings.MODEL_FILENAME
        self.fields["hub_revision"].initial = settings.HUGGINGFACE_REVISION

    def clean_sha256(self) -> str:
        value = self.cleaned_data["sha256"].strip().lower()
        if value and not SHA256.match(value):
            raise forms.ValidationError("A SHA-256 is 64 hexadecimal characters.")
        return value

    def clean(self):
        cleaned = super().clean()
        source = cleaned.get("source")
        if source == DetectorModel.Source.UPLOAD:
            self._clean_upload(cleaned)
        elif source == DetectorModel.Source.HUB:
            self._clean_hub(cleaned)
        elif source == DetectorModel.Source.PATH:
            self._clean_path(cleaned)
        return cleaned

    def _clear(self, cleaned: dict, *names: str) -> None:
        for name in names:
            cleaned[name] = ""

    def _clean_upload(self, cleaned: dict) -> None:
        self._clear(cleaned, "hub_repo", "hub_filename", "hub_revision", "server_path")
        upload = cleaned.get("weights_file")
        if not upload:
            self.add_error("weights_file", "Choose the weights file to upload.")
            return
        if error := _weights_suffix_error(upload.name):
            self.add_error("weights_file", error)
            return
        if upload.size == 0:
            self.add_error("weights_file", f"“{upload.name}” is empty (0 bytes).")
            return
        expected = cleaned.get("sha256")
        actual = services.uploaded_file_sha256(upload)
        if expected and actual != expected:
            self.add_error(
                "weights_file",
                f"The uploaded file has SHA-256 {actual}, but {expected} was expected: it is not the file that was "
                "meant. Nothing was stored.",
            )

    def _clean_hub(self, cleaned: dict) -> None:
        self._clear(cleaned, "server_path")
        cleaned["weights_file"] = None
        repo, filename = cleaned.get("hub_repo", "").strip(), cleaned.get("hub_filename", "").strip()
        cleaned["hub_repo"], cleaned["hub_filename"] = repo, filename
        cleaned["hub_revision"] = cleaned.get("hub_revision", "").strip()
        if not repo:
            self.add_error("hub_repo", "Name the Hugging Face repository (owner/name).")
        elif not HUB_REPO_ID.match(repo):
            self.add_error("hub_repo", f"“{repo}” is not a repository name; it looks like owner/name.")
        if not filename:
            self.add_error("hub_filename", "Name the weights file in the repository.")
        elif error := _weights_suffix_error(filename):
            self.add_error("hub_filename", error)

    def _clean_path(self, cleaned: dict) -> None:
        self._clear(cleaned, "hub_repo", "hub_filename", "hub_revision")
        cleaned["weights_file"] = None
        raw = cleaned.get("server_path", "").strip()
        cleaned["server_path"] = raw
        path = Path(raw)
        if not raw:
            self.add_error("server_path", "Give the absolute path of the weights file on the server.")
        elif not path.is_absolute():
            self.add_error("server_path", f"“{raw}” is not an absolute path (it must start with /).")
        elif error := _weights_suffix_error(raw):
            self.add_error("server_path", error)
        elif not path.is_file():
            self.add_error("server_path", f"There is no file at {raw} on this server.")


class DetectorModelChangeForm(forms.ModelForm):
    class Meta:
        model = DetectorModel
        fields = ["name", "version", "description", "architecture", "input_size", "threshold", "face_framing"]


class EvaluationForm(forms.Form):
    dataset_path = forms.CharField(
        label="Dataset folder",
        max_length=500,
        help_text="Absolute path of a folder with real/ and fake/ subfolders of images, readable by the workers.",
    )

    def clean_dataset_path(self) -> str:
        raw = self.cleaned_data["dataset_path"].strip()
        path = Path(raw)
        if not path.is_absolute():
            raise forms.ValidationError(f"“{raw}” is not an absolute path (it must start with /).")
        if not path.is_dir():
            raise forms.ValidationError(f"There is no folder at {raw} on this server.")
        missing = [name for name in ("real", "fake") if not (path / name).is_dir()]
        if missing:
            raise forms.ValidationError(
                f"{raw} has no {' and no '.join(f'{name}/' for name in missing)} subfolder; an evaluation needs "
                "labelled images in real/ and fake/."
            )
        return str(path)
