import time
from datetime import date

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Lower

from accounts.models import User
from detection.models import Analysis, AnalysisBatch, AnalysisFace, AnalysisFrame, DetectorModel, verdict_condition

MAX_FACE_NUMBER = 32767  # AnalysisFace.number is a small integer
MAX_FRAME_NUMBER = 2**31 - 1  # AnalysisFrame.number is an integer


def detector_model_get_active() -> DetectorModel | None:
    return DetectorModel.objects.filter(is_active=True).first()


def detector_model_list_ready() -> QuerySet[DetectorModel]:
    """The validated models, newest first: the ones that can produce (or have produced) results."""
    return DetectorModel.objects.filter(status=DetectorModel.Status.READY).order_by("-created_at", "-id")


def analysis_get(*, user: User, public_id) -> Analysis:
    """The user's analysis with this public ID; Analysis.DoesNotExist for anyone else's, so it reads as a 404."""
    return (
        Analysis.objects.select_related("detector_model").prefetch_related("faces").get(owner=user, public_id=public_id)
    )


def analysis_face_get(*, analysis: Analysis, number: int) -> AnalysisFace:
    """One face of the analysis by its number; AnalysisFace.DoesNotExist when it has no such face."""
    if not 1 <= number <= MAX_FACE_NUMBER:  # a number from a URL, which the database column could not even hold
        raise AnalysisFace.DoesNotExist
    return analysis.faces.select_related("analysis").get(number=number)


def analysis_frame_get(*, analysis: Analysis, number: int) -> AnalysisFrame:
    """One sampled frame of a video analysis by its number; AnalysisFrame.DoesNotExist when it has no such frame."""
    if not 1 <= number <= MAX_FRAME_NUMBER:
        raise AnalysisFrame.DoesNotExist
    return analysis.frames.select_related("analysis").get(number=number)


def analysis_find_reusable(*, user: User, sha256: str, detector_model: DetectorModel | None) -> Analysis | None:
    """An earlier analysis of the same content by the same user that a new upload would only repeat.

    Finished results count when the same model version produced them; unfinished ones count whatever the model,
    since they will run with the active model anyway.
    """
    mine = Analysis.objects.filter(owner=user, sha256=sha256)
    unfinished = mine.filter(status__in=[Analysis.Status.QUEUED, Analysis.Status.RUNNING]).first()
    if unfinished is not None or detector_model is None:
        return unfinished
    return mine.filter(status=Analysis.Status.DONE, detector_model=detector_model).first()


def analysis_list(*, user: User) -> QuerySet[Analysis]:
    return Analysis.objects.filter(owner=user).select_related("detector_model").prefetch_related("faces")


# How the history can be ordered: the key travels in the URL (and the API's `ordering`), with its label and ordering.
ANALYSIS_SORTS = {
    "newest": ("Newest first", (F("created_at").desc(), F("id").desc())),
    "oldest": ("Oldest first", (F("created_at").asc(), F("id").asc())),
    "name": ("File name A–Z", (Lower("original_name").asc(), F("created_at").desc())),
    "most_fake": ("Most likely fake first", (F("probability_fake").desc(nulls_last=True), F("created_at").desc())),
    "most_real": ("Most likely real first", (F("probability_fake").asc(nulls_last=True), F("created_at").desc())),
}


def analysis_filter(
    *,
    user: User,
    verdict: str = "",
    label: str = "",
    status: str = "",
    created_from: date | None = None,
    created_to: date | None = None,
    name: str = "",
    sort: str = "newest",
) -> QuerySet[Analysis]:
    """The user's analyses narrowed by verdict (real, fake, uncertain), label (the model's side of the threshold),
    status, creation day (inclusive, site time zone) and file name."""
    analyses = analysis_list(user=user)
    if verdict:
        condition, annotations = verdict_condition(verdict)
        analyses = analyses.alias(**annotations).filter(condition)
    if label:
        analyses = analyses.filter(label=label)
    if status:
        analyses = analyses.filter(status=status)
    if created_from:
        analyses = analyses.filter(created_at__date__gte=created_from)
    if created_to:
        analyses = analyses.filter(created_at__date__lte=created_to)
    if name:
        analyses = analyses.filter(original_name__icontains=name)
    return analyses.order_by(*ANALYSIS_SORTS.get(sort, ANALYSIS_SORTS["newest"])[1])


def analysis_list_by_ids(*, user: User, public_ids) -> QuerySet[Analysis]:
    """Those of the given analyses the user owns; anyone else's are silently absent."""
    return analysis_list(user=user).filter(public_id__in=list(public_ids))


# A waiting request looks at its analysis again after 10 ms, then 1.25 times later each time, up to every 0.5 s: a
# result is seen within a quarter of the time it took (an eighth on average), and a long wait costs few queries. The
# load benchmark measured a fixed 0.2 s adding 100 ms to every wait, and a 0.1 s cap costing a quarter of the
# throughput at 16 clients on 2 cores (6.3 against 8.0 analyses/s at 1 megapixel).
WAIT_FIRST_POLL_SECONDS = 0.01
WAIT_POLL_GROWTH = 1.25
WAIT_POLL_SECONDS = 0.5


def analysis_wait(*, analysis: Analysis, seconds: float) -> Analysis:
    """The analysis once it is finished, or as it is when `seconds` have passed; Analysis.DoesNotExist when it was
    deleted meanwhile."""
    deadline, interval = time.monotonic() + seconds, WAIT_FIRST_POLL_SECONDS
    while True:
        analysis.refresh_from_db()
        remaining = deadline - time.monotonic()
        if analysis.is_finished or remaining <= 0:
            return analysis
        time.sleep(min(interval, remaining))
        interval = min(interval * WAIT_POLL_GROWTH, WAIT_POLL_SECONDS)


def batch_list(*, user: User) -> QuerySet[AnalysisBatch]:
    """The user's batches, newest first, each with its analyses counted: `analyses_total` and one
    `analyses_<status>` per status."""
    per_status = {
        f"analyses_{status}": Count("analyses", filter=Q(analyses__status=status)) for status in Analysis.Status.values
    }
    return (
        AnalysisBatch.objects.filter(owner=user)
        .annotate(analyses_total=Count("analyses"), **per_status)
        .order_by("-created_at", "-id")
    )


def batch_get(*, user: User, public_id) -> AnalysisBatch:
    """The user's batch with this public ID, counted as in batch_list; AnalysisBatch.DoesNotExist for anyone else's."""
    return batch_list(user=user).get(public_id=public_id)


def batch_analyses(*, batch: AnalysisBatch) -> QuerySet[Analysis]:
    """The batch's analyses in the order they were submitted."""
    return (
        Analysis.objects.filter(batch=batch).select_related("detector_model").prefetch_related("faces").order_by("id")
    )
