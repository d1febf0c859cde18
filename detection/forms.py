import uuid

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from detection.models import Analysis
from detection.selectors import ANALYSIS_SORTS

SORT_CHOICES = [(key, label) for key, (label, _) in ANALYSIS_SORTS.items()]


class UploadOptionsForm(forms.Form):
    """What goes with the files of an upload; the files themselves are checked one by one by the service."""

    keep_original = forms.BooleanField(
        required=False,
        label="Keep my original image",
        help_text="Unticked, the original is deleted once analysed; the verdict, a thumbnail and the heatmap stay.",
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {"keep_original": settings.KEEP_ORIGINALS})
        super().__init__(*args, **kwargs)


class HistoryFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=255,
        label="File name",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "e.g. holiday", "autocomplete": "off"}),
    )
    verdict = forms.ChoiceField(required=False, choices=[("", "Any verdict"), *Analysis.Verdict.choices])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Analysis.Status.choices])
    created_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    created_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES, label="Sort by")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            self.add_error("created_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """The valid filters as keyword arguments for selectors.analysis_filter; invalid ones are left out."""
        data = getattr(self, "cleaned_data", {})
        return {
            "name": (data.get("q") or "").strip(),
            "verdict": data.get("verdict") or "",
            "status": data.get("status") or "",
            "created_from": data.get("created_from"),
            "created_to": data.get("created_to"),
            "sort": data.get("sort") or "newest",
        }


class MultipleUUIDField(forms.Field):
    widget = forms.MultipleHiddenInput
    default_error_messages = {"invalid": "“%(value)s” is not an analysis ID."}

    def to_python(self, value):
        if not value:
            return []
        ids = []
        for item in value if isinstance(value, list | tuple) else [value]:
            try:
                ids.append(uuid.UUID(str(item)))
            except ValueError:
                raise ValidationError(self.error_messages["invalid"], code="invalid", params={"value": item}) from None
        return ids


class BulkDeleteForm(forms.Form):
    analyses = MultipleUUIDField(error_messages={"required": "Select at least one analysis to delete."})
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)
