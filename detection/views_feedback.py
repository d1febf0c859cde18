"""The result page's "this verdict is wrong" form: its owner flags the verdict (htmx swaps the flag's card in place;
without script the page reloads with a message). Reads through selectors, writes through services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from detection import selectors, selectors_feedback
from detection.errors import SubmissionError
from detection.models import Analysis
from detection.services import feedback

CHECKED = {"on", "true", "1", "yes"}


@login_required
@require_POST
def analysis_flag(request, public_id):
    try:
        analysis = selectors.analysis_get(user=request.user, public_id=public_id)
    except Analysis.DoesNotExist:
        raise Http404("No such analysis.") from None
    context, status = {"analysis": analysis}, 200
    try:
        context["flag"] = feedback.verdict_flag_submit(
            analysis=analysis,
            user=request.user,
            label=request.POST.get("label", ""),
            note=request.POST.get("note", ""),
            consent=request.POST.get("consent", "").lower() in CHECKED,
        )
        context["flag_saved"] = True
    except SubmissionError as exc:
        context["flag"] = selectors_feedback.verdict_flag_get(user=request.user, analysis=analysis)
        context["flag_error"], status = exc.message, exc.status
    if request.htmx:
        return render(request, "detection/_flag.html", context, status=status)
    if status == 200:
        messages.success(request, "Thank you: your report is recorded and will be reviewed.")
    else:
        messages.error(request, context["flag_error"])
    return redirect(analysis)
