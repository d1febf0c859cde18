"""The feedback loop in the admin: triage of users' flags (confirm, reject), regression set versions, and the
detector models' regression-set results and activation gate (a mixin of DetectorModelAdmin). Every action lands in
the admin log."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from detection import selectors, selectors_feedback
from detection.admin_views import error_text
from detection.models import Analysis, DetectorModel, RegressionSet, VerdictFlag
from detection.services import feedback, regression


@admin.register(VerdictFlag)
class VerdictFlagAdmin(admin.ModelAdmin):
    list_display = ("analysis_link", "owner", "said_vs_verdict", "consent", "status", "kept", "created_at")
    list_filter = ("status", "consent", "label", "created_at")
    search_fields = ("owner__username", "owner__email", "analysis__original_name", "model_version", "note")
    list_select_related = ("analysis", "owner", "reviewed_by")
    date_hierarchy = "created_at"
    actions = ["confirm", "reject", "build_regression_set"]
    fields = readonly_fields = (
        "analysis_link",
        "owner",
        "said_vs_verdict",
        "note",
        "consent",
        "status",
        "model_version",
        "probability_fake",
        "image",
        "sha256",
        "created_at",
        "reviewed_at",
        "reviewed_by",
    )

    def has_add_permission(self, request):
        return False  # flags come from the people who uploaded the files

    @admin.display(description="analysis", ordering="analysis__original_name")
    def analysis_link(self, obj):
        if obj.analysis is None:
            return "(deleted)"
        url = reverse("admin:detection_analysis_change", args=[obj.analysis.pk])
        return format_html('<a href="{}">{}</a>', url, obj.analysis.original_name)

    @admin.display(description="said vs verdict", ordering="label")
    def said_vs_verdict(self, obj):
        verdict = obj.analysis.verdict if obj.analysis else None
        said = obj.get_label_display().lower()
        if obj.probability_fake is None:
            return f"{said}; the verdict is unknown"
        called = Analysis.Verdict(verdict).label.lower() if verdict else "—"
        return f"{said}; the verdict said {called} (P(fake) {obj.probability_fake:.3f}, {obj.model_version})"

    @admin.display(description="file kept", boolean=True)
    def kept(self, obj):
        return bool(obj.image)

    @admin.action(description="Confirm the selected flags (keeps consented files for the regression set)")
    def confirm(self, request, queryset):
        for flag in queryset.select_related("analysis"):
            review = feedback.verdict_flag_confirm(flag=flag, reviewer=request.user)
            if not review.reviewed:
                self.message_user(
                    request, f"“{flag}” was already {flag.get_status_display().lower()}.", messages.WARNING
                )
                continue
            if review.kept:
                outcome = "its file joins the regression set at its next version."
            else:
                outcome = f"its file was not added to the regression set: {review.not_kept_reason}."
            self.log_change(request, flag, f"Confirmed; {outcome}")
            self.message_user(request, f"Confirmed “{flag}”; {outcome}", messages.SUCCESS)

    @admin.action(description="Reject the selected flags")
    def reject(self, request, queryset):
        for flag in queryset:
            if not feedback.verdict_flag_reject(flag=flag, reviewer=request.user).reviewed:
                self.message_user(
                    request, f"“{flag}” was already {flag.get_status_display().lower()}.", messages.WARNING
                )
                continue
            self.log_change(request, flag, "Rejected.")
            self.message_user(request, f"Rejected “{flag}”.", messages.SUCCESS)

    @admin.action(description="Build a new regression set version (from every confirmed, consented flag)")
    def build_regression_set(self, request, queryset):
        try:
            regression_set = regression.regression_set_build(user=request.user)
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return
        self.log_addition(request, regression_set, f"Built from {len(regression_set.manifest)} confirmed flags.")
        self.message_user(request, f"Built {regression_set}.", messages.SUCCESS)


@admin.register(RegressionSet)
class RegressionSetAdmin(admin.ModelAdmin):
    """Read-only: versions are built from the flags (their action, or `manage.py build_regression_set`)."""

    list_display = ("__str__", "version", "files", "created_by", "created_at")
    fields = readonly_fields = ("version", "files", "manifest", "created_by", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="files")
    def files(self, obj):
        counts = {label: sum(entry["label"] == label for entry in obj.manifest) for label in Analysis.Label.values}
        return ", ".join(f"{count} {label}" for label, count in counts.items())


class RegressionGatePages:
    """DetectorModelAdmin's regression-set pieces: the results panel, the evaluation action, the gate's page."""

    @admin.display(description="regression set")
    def regression_panel(self, obj):
        comparison = regression.regression_comparison(candidate=obj)
        if comparison is not None:
            evaluations = [comparison.candidate, comparison.active]
        else:
            evaluations = [e for e in [selectors_feedback.regression_evaluation_latest(detector_model=obj)] if e]
        latest = selectors_feedback.regression_set_latest()
        return render_to_string(
            "admin/detection/detectormodel/_regression.html",
            {
                "evaluations": evaluations,
                "comparison": comparison,
                "active": selectors.detector_model_get_active(),
                "latest": latest,
                "model": obj,
            },
        )

    @admin.action(description="Evaluate on the regression set", permissions=["change"])
    def evaluate_regression_set(self, request, queryset):
        for detector_model in queryset:
            self._regression_evaluation_start(request, detector_model, alone=True)

    def _regression_evaluation_start(self, request, detector_model: DetectorModel, *, alone: bool) -> None:
        """Queue the model's evaluation on the latest regression set version; alone, say when there is none."""
        try:
            evaluation = feedback.regression_set_evaluation_start(detector_model=detector_model)
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return
        if evaluation is None:
            if alone:
                self.message_user(
                    request,
                    "There is no regression set yet: confirm flags with consent, then build a version.",
                    messages.ERROR,
                )
            return
        self.log_change(request, detector_model, f"Started an evaluation on {evaluation.dataset_path}.")
        self.message_user(
            request, f"A worker is evaluating “{detector_model}” on {evaluation.dataset_path} too.", messages.INFO
        )

    def _regression_worse_page(self, request, obj, comparison: regression.RegressionComparison):
        context = {
            **self.admin_site.each_context(request),
            "title": f"Activate {obj} anyway?",
            "text": f"{comparison.summary} Activate anyway?",
            "button": "Activate anyway",
            "object": obj,
            "opts": self.opts,
            "accept_worse_on": comparison.version,
        }
        return TemplateResponse(request, "admin/detection/detectormodel/confirm_worse.html", context)
