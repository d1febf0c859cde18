"""Detector models and analyses in the Django admin (staff only; every action lands in the admin log).

Models are added from an upload, the Hugging Face Hub or a path on the server; a worker fetches and checks the
weights (load into the architecture, run a probe image) before the model can be activated or evaluated.
"""

import json
import uuid

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html

from detection import presentation, selectors, services
from detection.admin_calibration import CalibrationPages
from detection.admin_feedback import RegressionGatePages
from detection.admin_views import DetectorModelPages, error_text
from detection.forms_admin import DetectorModelAddForm, DetectorModelChangeForm
from detection.models import Analysis, AnalysisFace, DetectorModel, ModelEvaluation
from detection.services import calibration as calibration_services

# The admin's metric columns: the result page's metrics (presentation.METRIC_LABELS), counts and threshold first.
METRIC_COLUMNS = tuple(
    (key, presentation.METRIC_LABELS[key])
    for key in ("count", "threshold", "accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")
)


def _metric_rows(metrics: dict) -> list[dict]:
    """One row per metric set (validation, test, evaluation…) with its values in METRIC_COLUMNS order."""
    rows = []
    for name, values in metrics.items():
        if not isinstance(values, dict) or "accuracy" not in values:
            continue
        cells = []
        for key, _ in METRIC_COLUMNS:
            value = values.get(key)
            cells.append(f"{value:.4f}" if isinstance(value, float) else ("—" if value is None else value))
        rows.append(
            {
                "name": name,
                "detail": values.get("dataset", ""),
                "cells": cells,
                "confusion_matrix": values.get("confusion_matrix"),
            }
        )
    return rows


@admin.register(DetectorModel)
class DetectorModelAdmin(CalibrationPages, RegressionGatePages, DetectorModelPages, admin.ModelAdmin):
    list_display = ("__str__", "architecture", "threshold", "status", "is_active", "analyses_link", "created_at")
    list_filter = ("is_active", "status", "architecture", "source")
    search_fields = ("name", "version", "sha256", "hub_repo")
    actions = ["activate", "recheck", "evaluate", "evaluate_regression_set", "threshold_for_fpr"]
    change_form_template = "admin/detection/detectormodel/change_form.html"
    add_fieldsets = (
        (None, {"fields": ("name", "version", "description")}),
        ("Detector", {"fields": ("architecture", "input_size", "threshold", "face_framing")}),
        (
            "Weights",
            {
                "fields": (
                    "source",
                    "weights_file",
                    ("hub_repo", "hub_filename", "hub_revision"),
                    "server_path",
                    "sha256",
                ),
                "description": "Upload a file, or name a Hugging Face repository and file, or a path on the server. "
                "A worker fetches the weights, loads them into the architecture and runs a probe image; the model "
                "can be activated once that succeeded.",
            },
        ),
    )
    fieldsets = (
        (None, {"fields": ("name", "version", "description")}),
        ("Detector", {"fields": ("architecture", "input_size", "threshold", "face_framing")}),
        (
            "State",
            {
                "fields": (
                    *("status", "status_message", "load_error", "is_active", "activated_at"),
                    *("precision_display", "analyses_link"),
                )
            },
        ),
        (
            "Weights",
            {"fields": ("source", "sha256", "weights", "hub_repo", "hub_filename", "hub_revision", "server_path")},
        ),
        (
            "Quality",
            {
                "fields": (
                    *("metrics_table", "generalisation_table", "regression_panel"),
                    *("calibration_panel", "evaluations_panel"),
                )
            },
        ),
        ("Model card", {"fields": ("card_text", "created_at"), "classes": ("collapse",)}),
    )
    readonly_fields = (
        "status",
        "status_message",
        "load_error",
        "is_active",
        "activated_at",
        "precision_display",
        "analyses_link",
        "source",
        "sha256",
        "weights",
        "hub_repo",
        "hub_filename",
        "hub_revision",
        "server_path",
        "metrics_table",
        "generalisation_table",
        "regression_panel",
        "calibration_panel",
        "evaluations_panel",
        "card_text",
        "created_at",
    )

    # --- Pages -------------------------------------------------------------------------------------------------

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(analyses_count=Count("analyses"))

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        if obj.is_active:  # the live model's shape stays as it was checked
            return (*self.readonly_fields, "architecture", "input_size")
        return self.readonly_fields

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = DetectorModelAddForm if obj is None else DetectorModelChangeForm
        return super().get_form(request, obj, **kwargs)

    @admin.display(description="analyses", ordering="analyses_count")
    def analyses_link(self, obj):
        count = getattr(obj, "analyses_count", None)
        if count is None:
            count = obj.analyses.count()
        url = reverse("admin:detection_analysis_changelist") + f"?detector_model__id__exact={obj.pk}"
        return format_html('<a href="{}">{} analys{}</a>', url, count, "is" if count == 1 else "es")

    @admin.display(description="bf16 or fp32")
    def precision_display(self, obj):
        configured = settings.INFERENCE_PRECISION
        check = obj.precision_check
        if configured != "auto":
            return f"{configured}, as INFERENCE_PRECISION says (the model's measurement is not used)."
        if not check:
            return (
                "fp32: not measured (it was checked while INFERENCE_PRECISION was set); checking the weights again "
                "measures it."
            )
        if "pictures" not in check:  # the measurement failed
            return f"{check['precision']}: {check['reason']}."
        return (
            f"{check['precision']}: {check['reason']}. On {check['pictures']} pictures with {check['backend']}: "
            f"largest |Δp| {check['max_abs_dp']:.4f}, lowest heatmap correlation {check['min_heatmap_corr']:.4f}, "
            f"{check['fp32_ms']:.1f} ms per picture in fp32 and {check['bf16_ms']:.1f} in bf16."
        )

    @admin.display(description="metrics")
    def metrics_table(self, obj):
        rows = _metric_rows(obj.metrics or {})
        if not rows:
            return "No metrics yet: evaluate the model on a dataset folder (action “Evaluate on a dataset folder”)."
        return render_to_string(  # already safe: the template escapes what it shows
            "admin/detection/detectormodel/_metrics.html",
            {"columns": [label for _, label in METRIC_COLUMNS], "rows": rows},
        )

    @admin.display(description="across kinds of manipulation")
    def generalisation_table(self, obj):
        table = (obj.card or {}).get("generalisation") or {}
        if not table.get("rows"):
            return "Not in the model card: `evaluate_detector` with a folder per kind of manipulation measures it."
        seen = {True: "the kind it was trained on (held-out images)", False: "a kind it never saw in training"}
        rows = _metric_rows(
            {
                row["data"]: {
                    **row,
                    "count": sum(row["counts"].values()),
                    "dataset": seen[row["trained_on_this_folder"]],
                }
                for row in table["rows"]
            }
        )
        return render_to_string(
            "admin/detection/detectormodel/_metrics.html",
            {"columns": [label for _, label in METRIC_COLUMNS], "rows": rows, "about": table.get("about", "")},
        )

    @admin.display(description="evaluations")
    def evaluations_panel(self, obj):
        evaluations = list(obj.evaluations.all()[:20])
        if not evaluations:
            return "None yet."
        for evaluation in evaluations:
            evaluation.rows = _metric_rows({"metrics": evaluation.report.get("metrics", {})})
            evaluation.curves = [
                (name, reverse("admin:detection_detectormodel_curve", args=[evaluation.pk, kind]))
                for kind, name, field in (
                    ("roc", "ROC curve", evaluation.roc_curve),
                    ("pr", "PR curve", evaluation.pr_curve),
                )
                if field
            ]
        latest_done = next((e for e in evaluations if e.status == ModelEvaluation.Status.DONE), None)
        return render_to_string(
            "admin/detection/detectormodel/_evaluations.html",
            {"evaluations": evaluations, "columns": [label for _, label in METRIC_COLUMNS], "latest": latest_done},
        )

    @admin.display(description="model card")
    def card_text(self, obj):
        if not obj.card:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(obj.card, indent=2, ensure_ascii=False))

    # --- Saving and deleting -----------------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if not change:
            upload = form.cleaned_data.get("weights_file") if obj.source == DetectorModel.Source.UPLOAD else None
            services.detector_model_add(detector_model=obj, upload=upload)
            where = {
                DetectorModel.Source.UPLOAD: "its uploaded weights",
                DetectorModel.Source.HUB: f"{obj.hub_repo}/{obj.hub_filename} from the Hugging Face Hub",
                DetectorModel.Source.PATH: f"{obj.server_path}",
            }[obj.source]
            self.message_user(
                request,
                f"A worker is now loading {where} into {obj.architecture} and running a probe image. "
                "Reload this model's page to see the outcome; it can be activated once it is ready.",
                messages.INFO,
            )
            return
        obj.save()
        if "threshold" in form.changed_data:  # the uncertain band follows a calibrated model's threshold
            calibration_services.detector_model_threshold_set(detector_model=obj, threshold=obj.threshold)
        if {"architecture", "input_size"} & set(form.changed_data):
            services.detector_model_recheck(detector_model=obj)
            self.message_user(
                request, f"The architecture or input size of “{obj}” changed: its weights are being checked again."
            )

    def delete_model(self, request, obj):
        services.detector_model_delete(detector_model=obj)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and obj.is_active:
            self.message_user(request, obj.undeletable_reason(), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:detection_detectormodel_change", args=[obj.pk]))
        return super().delete_view(request, object_id, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (type(self).guarded_delete_selected, name, description)
        return actions

    def guarded_delete_selected(self, request, queryset):
        active = queryset.filter(is_active=True).first()
        if active is not None:
            self.message_user(request, f"Nothing was deleted: {active.undeletable_reason()}", messages.ERROR)
            return None
        return django_delete_selected(self, request, queryset)

    # --- Actions -----------------------------------------------------------------------------------------------

    @admin.action(description="Activate the selected model", permissions=["change"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request, "Choose exactly one model to activate: only one model can be active.", messages.ERROR
            )
            return
        return self._activate(request, queryset.get())

    @admin.action(description="Check the weights again (load and probe)", permissions=["change"])
    def recheck(self, request, queryset):
        for detector_model in queryset:
            try:
                services.detector_model_recheck(detector_model=detector_model)
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
                continue
            self.log_change(request, detector_model, "Asked a worker to check the weights again.")
            self.message_user(request, f"A worker is checking “{detector_model}” again.", messages.INFO)

    @admin.action(description="Evaluate on a dataset folder", permissions=["change"])
    def evaluate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one model to evaluate.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:detection_detectormodel_evaluate", args=[queryset.get().pk]))


class AnalysisFaceInline(admin.TabularInline):
    """The faces a face model analysed, read-only: where each is, and what the model said of it."""

    model = AnalysisFace
    extra = 0
    can_delete = False
    fields = readonly_fields = ("number", "box_display", "detection_score", "probability_fake", "label")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="box (left, top, width, height)")
    def box_display(self, obj):
        return f"{obj.left}, {obj.top}, {obj.width} × {obj.height}"


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    inlines = [AnalysisFaceInline]
    list_display = (
        "original_name",
        "owner",
        "kind",
        "status",
        "verdict_display",
        "probability_display",
        "model_version",
        "source",
        "created_at",
    )
    list_filter = ("kind", "status", "label", "source", "detector_model", "created_at")
    search_fields = ("original_name", "owner__username", "owner__email", "sha256", "model_version")
    list_select_related = ("owner", "detector_model")
    date_hierarchy = "created_at"
    actions = ["rerun_with_active_model"]
    fieldsets = (
        (None, {"fields": ("public_id", "owner", "kind", "source", "status", "error_message")}),
        (
            "Result",
            {
                "fields": (
                    "verdict_display",
                    "probability_display",
                    "threshold",
                    "scope",
                    "small_faces",
                    "detector_model",
                    "model_version",
                    "provenance",
                )
            },
        ),
        (
            "Video",
            {
                "fields": (
                    "duration_s",
                    "frame_rate",
                    "frames_planned",
                    "frames_done",
                    "verdict_rule",
                    "stopped_reason",
                ),
                "classes": ("collapse",),
            },
        ),
        ("Pictures", {"fields": ("pictures",)}),
        (
            "File",
            {"fields": ("original_name", "media_type", "file_size", "width", "height", "sha256", "keep_original")},
        ),
        (
            "Timings",
            {
                "fields": (
                    "created_at",
                    "enqueued_at",
                    "started_at",
                    "finished_at",
                    "attempts",
                    "decode_ms",
                    "inference_ms",
                    "heatmap_ms",
                    "total_ms",
                ),
                "classes": ("collapse",),
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        return [name for _, options in self.fieldsets for name in options["fields"]]

    def get_search_results(self, request, queryset, search_term):
        """The usual search, plus the analysis whose public ID (as in its page's URL) was pasted."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            public_id = uuid.UUID(search_term.strip())
        except ValueError:
            return results, may_have_duplicates
        return results | queryset.filter(public_id=public_id), may_have_duplicates

    def has_add_permission(self, request):
        return False  # analyses come from people's uploads

    def has_change_permission(self, request, obj=None):
        # Results are read-only; the permission still gates the re-run action on the list.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="verdict", ordering="label")
    def verdict_display(self, obj):
        verdict = obj.verdict
        return Analysis.Verdict(verdict).label if verdict else "—"

    @admin.display(description="P(fake)", ordering="probability_fake")
    def probability_display(self, obj):
        return "—" if obj.probability_fake is None else f"{obj.probability_fake:.3f}"

    @admin.display(description="pictures")
    def pictures(self, obj):
        def url(kind):
            return reverse("admin:detection_analysis_image", args=[obj.pk, kind]) if getattr(obj, kind) else None

        if not any(url(kind) for kind in Analysis.PICTURES):
            return "No pictures stored."
        return render_to_string(
            "admin/detection/analysis/_pictures.html",
            {
                "analysis": obj,
                "overlay_url": url("overlay"),
                "heatmap_url": url("heatmap"),
                "thumbnail_url": url("thumbnail"),
                "original_url": url("original"),
            },
        )

    @admin.action(description="Re-run with the active model", permissions=["change"])
    def rerun_with_active_model(self, request, queryset):
        active = selectors.detector_model_get_active()
        started = 0
        for analysis in queryset:
            previous = (
                f"{analysis.label or analysis.status} (P(fake) {analysis.probability_fake:.3f}) by "
                f"{analysis.model_version or 'an unknown model'}"
                if analysis.probability_fake is not None
                else f"{analysis.status}: {analysis.error_message or 'no result'}"
            )
            try:
                services.analysis_rerun(analysis=analysis)
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
                continue
            self.log_change(request, analysis, f"Re-run with {active}; the previous result was {previous}.")
            started += 1
        if started:
            self.message_user(
                request,
                f"{started} analys{'is' if started == 1 else 'es'} queued again with “{active}”.",
                messages.SUCCESS,
            )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/image/<str:kind>/",
                self.admin_site.admin_view(self.image_view),
                name="detection_analysis_image",
            ),
            *super().get_urls(),
        ]

    def image_view(self, request, object_id, kind):
        """Any analysis's pictures for staff with view permission, whoever uploaded it."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such analysis.")
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        try:
            return presentation.analysis_picture_response(obj, kind)
        except presentation.PictureMissing as exc:
            raise Http404(str(exc)) from None
