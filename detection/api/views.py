"""The API endpoints. Reads go through selectors and writes through services; errors become the one error shape."""

from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, UnsupportedMediaType, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from detection import presentation, selectors, services
from detection.api import examples
from detection.api.errors import error_body, error_json_response
from detection.api.serializers import (
    AnalysisDetailSerializer,
    AnalysisFilterSerializer,
    AnalysisSerializer,
    AnalysisUploadSerializer,
    AnalysisURLSerializer,
    DetectorModelSerializer,
    QueueUnavailableSerializer,
    SubmissionSerializer,
    SubmitOptionsSerializer,
)
from detection.models import Analysis, AnalysisFace, AnalysisFrame
from detection.services import url_submissions
from detection.throttling import UploadRateThrottle


class Pagination(PageNumberPagination):
    """Pages of `page_size` (default 20, at most 100); a malformed page or size is a 400, a page past the end a 404."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param) or ""
        if not raw:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError({"page_size": f"page_size must be a whole number from 1 to {self.max_page_size}."})
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        raw = request.query_params.get(self.page_query_param) or ""
        if raw and raw not in self.last_page_strings and not (raw.isdigit() and int(raw) >= 1):
            raise ValidationError({"page": "page must be a whole number from 1 (or “last”)."})
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = self.max_page_size
        return parameters


def _analysis_or_404(request, public_id) -> Analysis:
    try:
        return selectors.analysis_get(user=request.user, public_id=public_id)
    except Analysis.DoesNotExist:
        # Someone else's analysis reads exactly like one that never existed.
        raise NotFound("There is no analysis with this ID among yours.", code="not_found") from None


IDEMPOTENCY_KEY_MAX_LENGTH = 255


def _idempotency_key(request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if len(key) > IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable():
        raise ValidationError(
            {"Idempotency-Key": f"Use a key of at most {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters."}
        )
    return key


def _source_url(request) -> str:
    if not isinstance(request.data, dict):
        raise ValidationError({"url": 'Send a JSON object, such as {"url": "https://example.com/photo.jpg"}.'})
    if "file" in request.data and not request.content_type.startswith("multipart/"):
        raise UnsupportedMediaType(request.content_type)  # files travel only as multipart; JSON and forms carry a url
    url = request.data.get("url") or ""
    if not isinstance(url, str):
        raise ValidationError({"url": "url must be a string: the web address of an image or a video."})
    return url


class AnalysisListCreateView(GenericAPIView):
    pagination_class = Pagination
    parser_classes = [MultiPartParser, FormParser, JSONParser]  # a file is multipart; a URL may come as any of them

    def get_throttles(self):
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles.append(UploadRateThrottle())
        return throttles

    @extend_schema(
        operation_id="analyses_list",
        summary="List your analyses",
        description="Your analyses, newest first unless `ordering` says otherwise, in pages of `page_size`.",
        parameters=[AnalysisFilterSerializer],
        responses={
            200: AnalysisSerializer(many=True),
            **examples.error_responses(400, 401, 404, 429),
        },
        examples=[examples.ANALYSIS_LIST],
    )
    def get(self, request):
        filters = AnalysisFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        options = filters.validated_data
        analyses = selectors.analysis_filter(
            user=request.user,
            verdict=options.get("verdict", ""),
            label=options.get("label", ""),
            status=options.get("status", ""),
            created_from=options.get("created_from"),
            created_to=options.get("created_to"),
            sort=options["ordering"],
        )
        page = self.paginate_queryset(analyses)
        return self.get_paginated_response(AnalysisSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="analyses_create",
        summary="Submit an image or a video",
        description=(
            "Upload an image or a video as multipart form data in the field `file`, or give the address it can be "
            "fetched from in the field `url` (form or JSON; http(s) on the public internet only, with the same size "
            "limits as uploads): one of the two, never both. The answer is 202 with the queued analysis "
            "(poll its `url`), or 201 with the finished result when you pass `wait` and the analysis finishes in "
            "time, or when you had already submitted this exact image (`reused`). When the work queue is down the "
            "upload is still kept: the answer is 503 `queue_unavailable` with the analysis, which runs once the "
            "queue is back."
        ),
        request={
            "multipart/form-data": AnalysisUploadSerializer,
            "application/x-www-form-urlencoded": AnalysisURLSerializer,
            "application/json": AnalysisURLSerializer,
        },
        parameters=[
            OpenApiParameter(
                "wait",
                {"type": "integer", "minimum": 0},
                OpenApiParameter.QUERY,
                description=SubmitOptionsSerializer().fields["wait"].help_text,
            ),
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
                OpenApiParameter.HEADER,
                description="Any unique string of yours (a UUID, say) to make retries safe: the same key with the "
                "same file is answered by the first request's analysis, never a second one; the same key with "
                "another file is refused with 422 `idempotency_key_reused`.",
            ),
        ],
        responses={
            201: OpenApiResponse(SubmissionSerializer, description="Finished (done or failed)."),
            202: OpenApiResponse(SubmissionSerializer, description="Queued or running: poll `url`."),
            **examples.error_responses(400, 401, 403, 411, 413, 415, 422, 429),
            503: OpenApiResponse(
                QueueUnavailableSerializer,
                description="The work cannot be queued (`queue_unavailable`, the analysis is kept and returned), "
                "or no detector model is active (`no_active_model`), or storage is down (`storage_unavailable`).",
                examples=[examples.QUEUE_UNAVAILABLE, examples.error_example(503)],
            ),
        },
        examples=[examples.SUBMISSION_QUEUED, examples.SUBMISSION_DONE],
    )
    def post(self, request):
        url = _source_url(request)  # first: it checks that the body is a form or a JSON object
        raw_options = {
            name: request.query_params.get(name, request.data.get(name))
            for name in ("wait", "keep_original")
            if name in request.query_params or name in request.data
        }
        options = SubmitOptionsSerializer(data=raw_options)
        options.is_valid(raise_exception=True)
        if oversized := getattr(request, "oversized_uploads", {}):  # stopped while arriving: never stored
            raise services.file_too_large(next(iter(oversized.values())), None)
        submission = url_submissions.analysis_create_from_source(
            user=request.user,
            file=request.FILES.get("file"),
            url=url,
            source=Analysis.Source.API,
            keep_original=options.validated_data["keep_original"],
            idempotency_key=_idempotency_key(request),
        )
        analysis = submission.analysis
        context = {"request": request, "reused": submission.reused}
        location = {"Location": SubmissionSerializer(analysis, context=context).data["url"]}
        if not submission.queued:
            body = error_body(
                "queue_unavailable",
                "The image is stored, but the analysis queue cannot be reached right now. It will run automatically "
                "once the queue is back; poll the analysis URL for the result.",
            )
            body["analysis"] = SubmissionSerializer(analysis, context=context).data
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE, headers=location)
        try:
            analysis = selectors.analysis_wait(analysis=analysis, seconds=options.validated_data["wait"])
        except Analysis.DoesNotExist:
            raise NotFound("The analysis was deleted while waiting for it.") from None
        return Response(
            SubmissionSerializer(analysis, context=context).data,
            status=status.HTTP_201_CREATED if analysis.is_finished else status.HTTP_202_ACCEPTED,
            headers=location,
        )


class AnalysisDetailView(APIView):
    @extend_schema(
        operation_id="analyses_retrieve",
        summary="One of your analyses",
        responses={200: AnalysisDetailSerializer, **examples.error_responses(401, 404, 429)},
        examples=[examples.ANALYSIS_DONE],
    )
    def get(self, request, public_id):
        analysis = _analysis_or_404(request, public_id)
        return Response(AnalysisDetailSerializer(analysis, context={"request": request}).data)

    @extend_schema(
        operation_id="analyses_destroy",
        summary="Delete one of your analyses",
        description="Deletes the analysis with its original, thumbnail, heatmap and overlay.",
        responses={204: OpenApiResponse(description="Deleted."), **examples.error_responses(401, 403, 404, 429)},
    )
    def delete(self, request, public_id):
        analysis = _analysis_or_404(request, public_id)
        services.analysis_delete(analysis=analysis)
        return Response(status=status.HTTP_204_NO_CONTENT)


def picture_responses(*media_types: str) -> dict:
    """A picture endpoint's documented answers: the picture in each media type, or the JSON errors."""
    pictures = {(200, media_type): OpenApiTypes.BINARY for media_type in media_types}
    errors = examples.error_responses(401, 404, 429)
    return {**pictures, **{(code, "application/json"): response for code, response in errors.items()}}


class AnalysisImageView(APIView):
    @extend_schema(
        operation_id="analyses_image",
        summary="A picture of one of your analyses",
        description="The original upload (if kept), the thumbnail, the Grad-CAM heatmap or the overlay. Only the "
        "owner can fetch them; the links in an analysis's `images` point here.",
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(Analysis.PICTURES)),
        ],
        responses=picture_responses("image/png", "image/webp", "image/jpeg"),
    )
    def get(self, request, public_id, kind):
        if kind not in Analysis.PICTURES:  # before the lookup: an unknown kind is not found for any ID
            raise NotFound(f"There is no picture called “{kind}”; ask for one of: {', '.join(Analysis.PICTURES)}.")
        try:
            return presentation.analysis_picture_response(_analysis_or_404(request, public_id), kind)
        except presentation.PictureMissing as exc:
            raise NotFound(str(exc)) from None


class AnalysisFaceImageView(APIView):
    @extend_schema(
        operation_id="analyses_face_image",
        summary="One face of your analysis, as the model saw it",
        description="The framed face the model analysed, with its Grad-CAM heatmap laid over it. The links are in "
        "each entry of an analysis's `faces`.",
        responses=picture_responses("image/webp"),
    )
    def get(self, request, public_id, number):
        analysis = _analysis_or_404(request, public_id)
        try:
            return presentation.face_picture_response(selectors.analysis_face_get(analysis=analysis, number=number))
        except (AnalysisFace.DoesNotExist, presentation.PictureMissing):
            raise NotFound(f"This analysis has no picture of a face number {number}.") from None


class AnalysisFrameImageView(APIView):
    @extend_schema(
        operation_id="analyses_frame_image",
        summary="One sampled frame of your video analysis",
        description="The frame with its Grad-CAM heatmap and the boxes of the faces judged. The links are in the "
        "analysis's `images.frames` and in each entry of its `frames`.",
        responses=picture_responses("image/webp"),
    )
    def get(self, request, public_id, number):
        analysis = _analysis_or_404(request, public_id)
        try:
            return presentation.frame_picture_response(selectors.analysis_frame_get(analysis=analysis, number=number))
        except (AnalysisFrame.DoesNotExist, presentation.PictureMissing):
            raise NotFound(f"This analysis has no picture of a frame number {number}.") from None


class DetectorModelListView(GenericAPIView):
    pagination_class = Pagination

    @extend_schema(
        operation_id="models_list",
        summary="Detector models",
        description="The validated detector models, newest first; `is_active` marks the one analysing uploads.",
        responses={200: DetectorModelSerializer(many=True), **examples.error_responses(400, 401, 404, 429)},
        examples=[examples.MODEL_LIST],
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.detector_model_list_ready())
        return self.get_paginated_response(DetectorModelSerializer(page, many=True).data)


class ActiveDetectorModelView(APIView):
    @extend_schema(
        operation_id="models_active",
        summary="The active detector model",
        description="The model that analyses new uploads: its version, architecture, threshold and metrics.",
        responses={200: DetectorModelSerializer, **examples.error_responses(401, 404, 429)},
        examples=[examples.MODEL],
    )
    def get(self, request):
        detector_model = selectors.detector_model_get_active()
        if detector_model is None:
            raise NotFound("No detector model is active yet.", code="no_active_model")
        return Response(DetectorModelSerializer(detector_model).data)


@csrf_exempt  # it changes nothing, and must answer every method with the API's 404
def api_not_found(request, *args, **kwargs):
    """Any other address under /api/: a 404 in the API's error shape rather than an HTML page."""
    return error_json_response(404, "not_found", "Nothing was found at this address. The API lives under /api/v1/.")
