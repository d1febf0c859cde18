"""The web pages: upload, live result, result page, history. Reads go through selectors, writes through services."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import TooManyFilesSent
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from detection import presentation, selectors, selectors_feedback, services
from detection.errors import SubmissionError
from detection.forms import BulkDeleteForm, HistoryFilterForm, UploadOptionsForm
from detection.models import Analysis, AnalysisFace, AnalysisFrame
from detection.services import url_submissions
from detection.throttling import UploadRateThrottle, upload_admit

HISTORY_PAGE_SIZE = 20
# Pictures are served by type from their stored extension; originals carry their checked media type.


@dataclass(frozen=True)
class UploadOutcome:
    """What became of one file of an upload: a submission, or the reason it was refused."""

    name: str
    size: int | None  # None when the file was stopped while arriving (over the size limit)
    submission: services.Submission | None = None
    error: SubmissionError | None = None


def _analysis_or_404(request, public_id) -> Analysis:
    try:
        return selectors.analysis_get(user=request.user, public_id=public_id)
    except Analysis.DoesNotExist:
        raise Http404("No such analysis.") from None


def _upload_one(request, file, *, keep_original: bool) -> UploadOutcome:
    """One file of an upload: counted against the user's upload limit, then submitted; refusals keep their reason."""
    try:
        upload_admit(request, file.name, UploadRateThrottle())
        submission = services.analysis_create(
            user=request.user, file=file, source=Analysis.Source.WEB, keep_original=keep_original
        )
    except SubmissionError as exc:
        return UploadOutcome(name=file.name, size=file.size, error=exc)
    return UploadOutcome(name=file.name, size=file.size, submission=submission)


def _upload_from_url(request, url: str, *, keep_original: bool) -> UploadOutcome:
    """A file fetched from a URL (through the SSRF guard), counted and submitted as one upload."""
    try:
        upload_admit(request, url, UploadRateThrottle())
        submission = url_submissions.analysis_create_from_url(
            user=request.user, url=url, source=Analysis.Source.WEB, keep_original=keep_original
        )
    except SubmissionError as exc:
        return UploadOutcome(name=url, size=None, error=exc)
    return UploadOutcome(name=url, size=submission.analysis.file_size, submission=submission)


def _upload_limits() -> dict:
    extensions = sorted({ext for _, ext in services.ACCEPTED_FORMATS.values()} | {"jpeg"})
    return {
        "max_bytes": settings.MAX_FILE_SIZE,
        "max_mb": settings.MAX_FILE_SIZE_MB,
        "max_video_bytes": settings.MAX_VIDEO_SIZE,
        "max_video_mb": settings.MAX_VIDEO_SIZE_MB,
        "max_video_seconds": settings.MAX_VIDEO_SECONDS,
        "video_types": ",".join(services.VIDEO_EXTENSIONS),
        "video_extensions": ",".join(f".{ext}" for ext in services.VIDEO_EXTENSIONS.values()),
        "accepted_types": ",".join(media_type for media_type, _ in services.ACCEPTED_FORMATS.values()),
        "accepted_extensions": ",".join(f".{ext}" for ext in extensions),
        "accepted_description": services.ACCEPTED_DESCRIPTION,
        "video_description": services.VIDEO_DESCRIPTION,
    }


@login_required
@require_http_methods(["GET", "POST"])
def analysis_upload(request):
    """Each file is its own analysis: a refused file gets its reason next to it and the others go through.

    The page's script sends one file per request (for per-file progress) and shows the fragment it gets back; without
    script, the form sends them all at once and the page lists every outcome.
    """
    context = {"options": UploadOptionsForm(), **_upload_limits()}
    if request.method == "GET":
        return render(request, "detection/upload.html", context)
    template = "detection/_upload_error.html" if request.htmx else "detection/upload.html"
    try:
        options = context["options"] = UploadOptionsForm(request.POST)
        files = request.FILES.getlist("files")
        # Django's own limit is the API batches' larger one (settings.DATA_UPLOAD_MAX_NUMBER_FILES).
        if len(files) + len(getattr(request, "oversized_uploads", {})) > settings.MAX_FILES_PER_UPLOAD:
            raise TooManyFilesSent
    except TooManyFilesSent:
        context["form_error"] = f"Send at most {settings.MAX_FILES_PER_UPLOAD} files at once."
        return render(request, template, context, status=400)

    keep_original = options.cleaned_data["keep_original"] if options.is_valid() else settings.KEEP_ORIGINALS
    oversized = getattr(request, "oversized_uploads", {})  # stopped while arriving: never stored
    url = request.POST.get("url", "").strip()
    if url and (files or oversized):
        context["form_error"] = "Send either files or the address of one on the web, not both."
        return render(request, template, context, status=400)
    if url:
        outcome = _upload_from_url(request, url, keep_original=keep_original)
        context["outcomes"] = [outcome]
        return render(request, "detection/upload.html", context, status=outcome.error.status if outcome.error else 201)
    if not files and not oversized:
        context["form_error"] = f"Choose at least one file to analyse: {services.ACCEPTED_UPLOADS}."
        return render(request, template, context, status=400)

    received = iter(files)
    outcomes = [
        UploadOutcome(name=oversized[position], size=None, error=services.file_too_large(oversized[position], None))
        if position in oversized
        else _upload_one(request, next(received), keep_original=keep_original)
        for position in range(len(files) + len(oversized))
    ]
    refused = {outcome.error.status for outcome in outcomes if outcome.error}
    if not all(outcome.error for outcome in outcomes):
        status = 201
    else:
        status = refused.pop() if len(refused) == 1 else 400
    context["outcomes"] = outcomes
    template = "detection/_upload_outcomes.html" if request.htmx else "detection/upload.html"
    return render(request, template, context, status=status)


def _result_context(analysis: Analysis) -> dict:
    columns, rows = presentation.metrics_table(analysis.detector_model.metrics if analysis.detector_model else {})
    frames = list(analysis.frames.all())
    suspicious = sorted(frames, key=lambda frame: (-frame.probability_fake, frame.number))[:3]
    return {
        "analysis": analysis,
        "chart": presentation.probability_chart(analysis),
        "timeline": presentation.timeline_chart(analysis, frames),
        "suspicious_frames": suspicious,
        "shown_frame": suspicious[0] if suspicious else None,
        "metric_columns": columns,
        "metric_rows": rows,
        "uncertain_margin": settings.UNCERTAIN_MARGIN,
        "waiting_for_queue": analysis.waiting_for_queue,
        "flag": selectors_feedback.verdict_flag_get(analysis=analysis),
        "queue_wait_ms": (analysis.started_at - analysis.created_at).total_seconds() * 1000
        if analysis.started_at
        else None,
    }


@login_required
@require_GET
def analysis_detail(request, public_id):
    analysis = _analysis_or_404(request, public_id)
    return render(request, "detection/analysis_detail.html", _result_context(analysis))


@login_required
@require_GET
def analysis_status(request, public_id):
    """The polled fragment: it polls again while the analysis is unfinished and stops once it is done or failed."""
    try:
        analysis = selectors.analysis_get(user=request.user, public_id=public_id)
    except Analysis.DoesNotExist:
        # Deleted meanwhile (in another tab): the fragment says so, and its 404 ends the polling.
        return render(request, "detection/_analysis_gone.html", status=404)
    if request.GET.get("compact"):
        return render(
            request, "detection/_analysis_card.html", {"analysis": analysis, "slow_poll": analysis.waiting_for_queue}
        )
    return render(request, "detection/_result.html", _result_context(analysis))


@login_required
@require_safe
def analysis_image(request, public_id, kind):
    """An analysis's picture for its owner only: media never sits at a public, guessable address."""
    analysis = _analysis_or_404(request, public_id)
    try:
        return presentation.analysis_picture_response(analysis, kind)
    except presentation.PictureMissing as exc:
        raise Http404(str(exc)) from None


@login_required
@require_safe
def analysis_face_image(request, public_id, number):
    """One face as the model saw it, with its heatmap: for the analysis's owner only."""
    analysis = _analysis_or_404(request, public_id)
    try:
        return presentation.face_picture_response(selectors.analysis_face_get(analysis=analysis, number=number))
    except (AnalysisFace.DoesNotExist, presentation.PictureMissing):
        raise Http404("This analysis has no such face picture.") from None


@login_required
@require_GET
def analysis_frame(request, public_id, number):
    """One sampled frame of a video, as the timeline shows it when a point is chosen (a fragment for htmx, else the
    result page)."""
    analysis = _analysis_or_404(request, public_id)
    try:
        frame = selectors.analysis_frame_get(analysis=analysis, number=number)
    except AnalysisFrame.DoesNotExist:
        raise Http404("This video analysis has no such frame.") from None
    if not request.htmx:
        return render(request, "detection/analysis_detail.html", {**_result_context(analysis), "shown_frame": frame})
    return render(request, "detection/_frame.html", {"analysis": analysis, "frame": frame})


@login_required
@require_safe
def analysis_frame_image(request, public_id, number):
    """One sampled frame with its heatmap and face boxes: for the analysis's owner only."""
    analysis = _analysis_or_404(request, public_id)
    try:
        return presentation.frame_picture_response(selectors.analysis_frame_get(analysis=analysis, number=number))
    except (AnalysisFrame.DoesNotExist, presentation.PictureMissing):
        raise Http404("This analysis has no such frame picture.") from None


@login_required
@require_GET
def analysis_json(request, public_id):
    analysis = _analysis_or_404(request, public_id)
    response = JsonResponse(
        presentation.analysis_export(analysis, request=request), json_dumps_params={"indent": 2, "ensure_ascii": False}
    )
    response["Content-Disposition"] = f'attachment; filename="analysis-{analysis.public_id}.json"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def analysis_delete(request, public_id):
    """GET asks for confirmation; POST deletes the analysis and its pictures."""
    analysis = _analysis_or_404(request, public_id)
    if request.method == "GET":
        return render(request, "detection/analysis_delete.html", {"analysis": analysis})
    services.analysis_delete(analysis=analysis)
    messages.success(request, f"The analysis of “{analysis.original_name}” and its pictures are deleted.")
    return redirect("detection:history")


def _history_filters(request) -> tuple[HistoryFilterForm, dict]:
    form = HistoryFilterForm(request.GET)
    form.is_valid()
    return form, form.filters()


@login_required
@require_GET
def analysis_history(request):
    form, filters = _history_filters(request)
    analyses = selectors.analysis_filter(user=request.user, **filters)
    page = Paginator(analyses, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "filtered": any(value for key, value in filters.items() if key != "sort"),
        "has_any": page.paginator.count > 0 or selectors.analysis_list(user=request.user).exists(),
    }
    template = "detection/_history_results.html" if request.htmx else "detection/history.html"
    response = render(request, template, context, status=200 if form.is_valid() else 400)
    # The same address answers with the whole page or only the results: caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


@login_required
@require_GET
def analysis_history_csv(request):
    form, filters = _history_filters(request)
    if not form.is_valid():
        problems = "; ".join(f"{form[name].label}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"The filters are not valid. {problems}", status=400, content_type="text/plain")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="analyses-{timezone.localdate():%Y-%m-%d}.csv"'
    presentation.analyses_write_csv(selectors.analysis_filter(user=request.user, **filters), response)
    return response


@login_required
@require_POST
def analysis_bulk_delete(request):
    """The first POST lists the selected analyses for confirmation; the second, with confirm set, deletes them."""
    back = request.POST.get("next") or reverse("detection:history")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("detection:history")
    form = BulkDeleteForm(request.POST)
    if not form.is_valid():
        return render(request, "detection/analysis_bulk_delete.html", {"form": form, "next": back}, status=400)
    analyses = list(selectors.analysis_list_by_ids(user=request.user, public_ids=form.cleaned_data["analyses"]))
    if not analyses:
        raise Http404("None of the selected analyses exist.")
    if not form.cleaned_data["confirm"]:
        return render(
            request, "detection/analysis_bulk_delete.html", {"form": form, "analyses": analyses, "next": back}
        )
    count = services.analysis_delete_many(analyses=analyses)
    messages.success(request, f"Deleted {count} {'analysis' if count == 1 else 'analyses'} and their pictures.")
    return redirect(back)
