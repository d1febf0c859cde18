"""Detector models' calibration in the admin (a mixin of DetectorModelAdmin): the calibration panel (ECE before and
after, the reliability diagram as inline SVG from the stored bins, the threshold rule and uncertain band), applying
the calibration an evaluation fitted, and setting the threshold for a target false-positive rate. Every change
lands in the admin log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse

from detection.admin_views import error_text
from detection.models import DetectorModel, ModelEvaluation
from detection.services import calibration as calibration_services

DIAGRAM_SIDE = 200  # the reliability diagram's plot, in SVG units
DIAGRAM_MARGIN = 30


class TargetFprForm(forms.Form):
    target = forms.ChoiceField(
        label="Target false-positive rate",
        choices=[("0.01", "1 % (at most 1 real image in 100 called fake)"), ("0.05", "5 %"), ("other", "Other:")],
        initial="0.01",
        widget=forms.RadioSelect,
    )
    other = forms.FloatField(
        label="Other rate (%)",
        required=False,
        min_value=0.0,
        max_value=100.0,
        help_text="A percentage between 0 and 100, e.g. 0.5.",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("target") == "other":
            if cleaned.get("other") is None:
                raise forms.ValidationError("Give the other rate as a percentage, e.g. 0.5 for 0.5 %.")
            cleaned["target_fpr"] = cleaned["other"] / 100
        elif cleaned.get("target"):
            cleaned["target_fpr"] = float(cleaned["target"])
        return cleaned


def reliability_diagram(calibration: dict) -> dict:
    """The stored reliability bins as SVG coordinates: a polyline before and after, and a dot per bin."""

    def point(row: dict) -> tuple[float, float]:
        x = DIAGRAM_MARGIN + DIAGRAM_SIDE * row["mean_predicted"]
        y = DIAGRAM_MARGIN + DIAGRAM_SIDE * (1.0 - row["observed"])
        return round(x, 1), round(y, 1)

    lines = {}
    for name in ("before", "after"):
        points = [point(row) for row in calibration.get(f"reliability_{name}") or []]
        lines[name] = {"polyline": " ".join(f"{x},{y}" for x, y in points), "dots": points}
    return {
        "side": DIAGRAM_SIDE + 2 * DIAGRAM_MARGIN,
        "plot": DIAGRAM_SIDE,
        "low": DIAGRAM_MARGIN,
        "high": DIAGRAM_MARGIN + DIAGRAM_SIDE,
        **lines,
    }


class CalibrationPages:
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/threshold-for-fpr/",
                view(self.threshold_for_fpr_view),
                name="detection_detectormodel_threshold_for_fpr",
            ),
            path(
                "<path:object_id>/calibration-from/<int:evaluation_id>/",
                view(self.calibration_apply_view),
                name="detection_detectormodel_calibration_apply",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="calibration")
    def calibration_panel(self, obj):
        offers = [
            evaluation
            for evaluation in obj.evaluations.filter(status=ModelEvaluation.Status.DONE)[:20]
            if (evaluation.report or {}).get("calibration")
        ]
        calibration = obj.calibration or {}
        return render_to_string(  # already safe: the template escapes what it shows
            "admin/detection/detectormodel/_calibration.html",
            {
                "model": obj,
                "calibration": calibration,
                "diagram": reliability_diagram(calibration) if calibration.get("method") else None,
                "has_roc": bool(calibration.get("roc")),
                "offers": offers,
            },
        )

    @admin.action(description="Set threshold by target false-positive rate", permissions=["change"])
    def threshold_for_fpr(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one model to set the threshold of.", messages.ERROR)
            return None
        return HttpResponseRedirect(
            reverse("admin:detection_detectormodel_threshold_for_fpr", args=[queryset.get().pk])
        )

    def threshold_for_fpr_view(self, request, object_id):
        obj = self._object_for_change(request, object_id)
        if not (obj.calibration or {}).get("roc"):
            self.message_user(
                request,
                f"“{obj}” has no stored validation ROC points, so no threshold can be chosen by false-positive "
                "rate. Apply a calibration first: from the model card of a package, or from an evaluation on a "
                "labelled folder (its calibration appears on this page).",
                messages.ERROR,
            )
            return self._change_page(obj)
        form = TargetFprForm(request.POST or None)
        done = request.method == "POST" and form.is_valid()
        if done and self._threshold_set(request, obj, form.cleaned_data["target_fpr"]):
            return self._change_page(obj)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Set the threshold of {obj} by false-positive rate",
            "form": form,
            "object": obj,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/detection/detectormodel/threshold_for_fpr.html", context)

    def _threshold_set(self, request, obj: DetectorModel, target_fpr: float) -> bool:
        before = obj.threshold
        try:
            obj = calibration_services.detector_model_threshold_for_fpr(detector_model=obj, target_fpr=target_fpr)
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return False
        rule = obj.threshold_rule
        text = (
            f"Threshold {before:.4f} → {obj.threshold:.4f} for a target false-positive rate of {target_fpr:.2%} "
            f"(on the validation data: false-positive rate {rule['fpr']:.2%}, true-positive rate {rule['tpr']:.2%}); "
            f"uncertain band [{obj.uncertain_low:.3f}, {obj.uncertain_high:.3f})."
        )
        self.log_change(request, obj, text)
        self.message_user(request, f"“{obj}”: {text} Workers use it from their next analysis.", messages.SUCCESS)
        return True

    def calibration_apply_view(self, request, object_id, evaluation_id):
        obj = self._object_for_change(request, object_id)
        evaluation = obj.evaluations.filter(pk=evaluation_id).first()
        if evaluation is None:
            raise Http404("No such evaluation of this model.")
        calibration = (evaluation.report or {}).get("calibration") or {}
        if request.method == "POST":
            try:
                obj = calibration_services.detector_model_calibration_from_evaluation(evaluation=evaluation)
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                text = (
                    f"Applied the calibration fitted on {evaluation.dataset_path} ({calibration['method']}; ECE "
                    f"{calibration['ece_before']:.4f} → {calibration['ece_after']:.4f}); threshold "
                    f"{obj.threshold:.4f}, uncertain band [{obj.uncertain_low:.3f}, {obj.uncertain_high:.3f})."
                )
                self.log_change(request, obj, text)
                self.message_user(request, f"“{obj}”: {text}", messages.SUCCESS)
            return self._change_page(obj)
        if not calibration:
            self.message_user(request, "That evaluation fitted no calibration.", messages.ERROR)
            return self._change_page(obj)
        return self._confirm(
            request,
            obj,
            title=f"Calibrate {obj}?",
            text=f"Every probability “{obj}” gives becomes calibrated as fitted on the {calibration['samples']} "
            f"images of {evaluation.dataset_path} ({calibration['method']}; expected calibration error "
            f"{calibration['ece_before']:.4f} before, {calibration['ece_after']:.4f} after, measured on those same "
            f"images). The threshold moves to {calibration['threshold']:.4f}, chosen on the calibrated scale, and "
            f"the uncertain band to [{calibration['uncertain_band'][0]:.3f}, {calibration['uncertain_band'][1]:.3f}). "
            "Results already recorded keep theirs.",
            button="Apply the calibration",
        )
