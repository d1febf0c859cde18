"""The detector models' admin pages of their own: activate, check again and evaluate (each after a confirmation),
and the evaluation curves. A mixin of DetectorModelAdmin, which stays declarative (detection/admin.py)."""

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from detection import selectors, services
from detection.forms_admin import EvaluationForm
from detection.models import DetectorModel, ModelEvaluation
from detection.services import regression


def error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


class DetectorModelPages:
    def _activate(self, request, detector_model: DetectorModel, *, accept_worse_on: int | None = None):
        """Activate the model (the outcome is a message), or answer with the regression gate's page when it does
        worse than the active model on the regression set and that was not accepted."""
        previous = selectors.detector_model_get_active()
        comparison = regression.regression_comparison(candidate=detector_model)  # before activating changes it
        try:
            services.detector_model_activate_checked(detector_model=detector_model, accept_worse_on=accept_worse_on)
        except regression.RegressionWorse as exc:
            return self._regression_worse_page(request, detector_model, exc.comparison)
        except ValidationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return None
        if previous is not None and previous.pk != detector_model.pk:
            self.log_change(request, previous, f"Deactivated: “{detector_model}” was activated in its place.")
            replaced = f", replacing “{previous}”"
        else:
            replaced = ""
        gate = f" Confirmed although: {comparison.summary}" if comparison and comparison.worse else ""
        self.log_change(request, detector_model, f"Activated{replaced}.{gate}")
        self.message_user(
            request,
            f"“{detector_model}” is now the active model{replaced}. Workers use it from their next analysis.",
            messages.SUCCESS,
        )
        return None

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/evaluate/", view(self.evaluate_view), name="detection_detectormodel_evaluate"),
            path("<path:object_id>/activate/", view(self.activate_view), name="detection_detectormodel_activate"),
            path("<path:object_id>/recheck/", view(self.recheck_view), name="detection_detectormodel_recheck"),
            path(
                "evaluations/<int:evaluation_id>/<str:kind>.png",
                view(self.curve_view),
                name="detection_detectormodel_curve",
            ),
            *super().get_urls(),
        ]

    def _object_for_change(self, request, object_id) -> DetectorModel:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such detector model.")
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _change_page(self, obj) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:detection_detectormodel_change", args=[obj.pk]))

    def _confirm(self, request, obj, *, title: str, text: str, button: str):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "text": text,
            "button": button,
            "object": obj,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/detection/detectormodel/confirm.html", context)

    def activate_view(self, request, object_id):
        obj = self._object_for_change(request, object_id)
        if request.method == "POST":
            accepted = request.POST.get("accept_worse_on", "")
            gate_page = self._activate(request, obj, accept_worse_on=int(accepted) if accepted.isdigit() else None)
            return gate_page or self._change_page(obj)
        comparison = regression.regression_comparison(candidate=obj)
        if comparison is not None and comparison.worse:
            return self._regression_worse_page(request, obj, comparison)
        previous = selectors.detector_model_get_active()
        text = f"“{obj}” becomes the model every new analysis uses" + (
            f"; “{previous}” stops being active in the same step." if previous and previous.pk != obj.pk else "."
        )
        return self._confirm(request, obj, title=f"Activate {obj}?", text=text, button="Activate")

    def recheck_view(self, request, object_id):
        obj = self._object_for_change(request, object_id)
        if request.method == "POST":
            self.recheck(request, DetectorModel.objects.filter(pk=obj.pk))
            return self._change_page(obj)
        return self._confirm(
            request,
            obj,
            title=f"Check {obj} again?",
            text="A worker fetches the weights if needed, loads them into the architecture and runs a probe image.",
            button="Check again",
        )

    def evaluate_view(self, request, object_id):
        obj = self._object_for_change(request, object_id)
        form = EvaluationForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                evaluation = services.detector_model_evaluation_start(
                    detector_model=obj, dataset_path=form.cleaned_data["dataset_path"]
                )
            except ValidationError as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                self.log_change(request, obj, f"Started an evaluation on {evaluation.dataset_path}.")
                self.message_user(
                    request,
                    f"A worker is evaluating “{obj}” on {evaluation.dataset_path}; the results appear on this page "
                    "when it is done (reload it).",
                    messages.INFO,
                )
                self._regression_evaluation_start(request, obj, alone=False)
                return self._change_page(obj)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Evaluate {obj}",
            "form": form,
            "object": obj,
            "opts": self.opts,
        }
        return TemplateResponse(request, "admin/detection/detectormodel/evaluate.html", context)

    def curve_view(self, request, evaluation_id, kind):
        if not self.has_view_permission(request):
            raise PermissionDenied
        evaluation = ModelEvaluation.objects.filter(pk=evaluation_id).first()
        field = {"roc": "roc_curve", "pr": "pr_curve"}.get(kind)
        if evaluation is None or field is None or not getattr(evaluation, field):
            raise Http404("No such curve.")
        return FileResponse(getattr(evaluation, field).open("rb"), content_type="image/png")
