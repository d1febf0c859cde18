"""The batch endpoints: several files (or one ZIP) submitted at once, their progress, export and deletion. Reads go
through selectors and writes through services.batches; errors become the API's one error shape."""

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from detection import presentation, selectors
from detection.api import examples
from detection.api.errors import error_body
from detection.api.serializers import AnalysisSerializer, ErrorDetailSerializer, ErrorSerializer
from detection.api.views import Pagination
from detection.errors import TooManyFiles, TooManyUploads
from detection.models import Analysis, AnalysisBatch
from detection.services.batches import BatchSubmission, batch_create, batch_create_from_zip, batch_delete
from detection.throttling import UploadRateThrottle, upload_admit

# --- Serializers ------------------------------------------------------------------------------------------------


class BatchUploadSerializer(serializers.Serializer):
    """The multipart form of POST /batches/ (documentation only: the files themselves go to the services)."""

    files = serializers.ListField(
        child=serializers.FileField(),
        required=False,
        help_text="The files, one field “files” each (at most MAX_FILES_PER_BATCH): images or videos, as for a "
        "single upload.",
    )
    file = serializers.FileField(
        required=False,
        help_text="Instead of `files`: one ZIP whose files are analysed (folders, hidden files and __MACOSX "
        "entries are skipped). Its files may add up to MAX_BATCH_UNCOMPRESSED_MB once extracted.",
    )
    keep_original = serializers.BooleanField(
        required=False, help_text="Keep the originals after the analyses (default: the server's KEEP_ORIGINALS)."
    )


class BatchOptionsSerializer(serializers.Serializer):
    keep_original = serializers.BooleanField(required=False, allow_null=True, default=None)


class BatchExportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(
        choices=["csv", "json"], required=False, default="csv", help_text="csv (default) or json."
    )


class BatchProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="analyses_total", help_text="The analyses in the batch.")
    queued = serializers.IntegerField(source="analyses_queued")
    running = serializers.IntegerField(source="analyses_running")
    done = serializers.IntegerField(source="analyses_done")
    failed = serializers.IntegerField(source="analyses_failed")
    percent = serializers.SerializerMethodField(help_text="The share of analyses finished (done or failed), 0–100.")

    def get_percent(self, batch: AnalysisBatch) -> int:
        if not batch.analyses_total:
            return 100
        return (batch.analyses_done + batch.analyses_failed) * 100 // batch.analyses_total


class BatchSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    url = serializers.SerializerMethodField()
    export_url = serializers.SerializerMethodField(help_text="The batch's analyses as CSV (add ?format=json).")
    name = serializers.CharField(help_text="The ZIP's name, when the batch came as one.")
    source = serializers.ChoiceField(choices=Analysis.Source.choices)
    created_at = serializers.DateTimeField()
    progress = BatchProgressSerializer(source="*")

    def _absolute(self, route: str, batch: AnalysisBatch) -> str:
        path = reverse(route, args=[batch.public_id])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, batch: AnalysisBatch) -> str:
        return self._absolute("api:batch-detail", batch)

    @extend_schema_field(OpenApiTypes.URI)
    def get_export_url(self, batch: AnalysisBatch) -> str:
        return self._absolute("api:batch-export", batch)


class BatchDetailSerializer(BatchSerializer):
    analyses = serializers.SerializerMethodField(
        help_text="The batch's analyses in the order they were sent, as the analyses list shows them. Files "
        "refused when the batch was sent are not kept: the answer to the POST lists them."
    )

    @extend_schema_field(AnalysisSerializer(many=True))
    def get_analyses(self, batch: AnalysisBatch) -> list:
        return AnalysisSerializer(selectors.batch_analyses(batch=batch), many=True, context=self.context).data


class BatchFileSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The file's name (a ZIP entry's, without its folders).")
    analysis = AnalysisSerializer(allow_null=True, help_text="Its analysis, when it was accepted.")
    reused = serializers.BooleanField(
        help_text="True when an earlier analysis of the same file answers it; that analysis stays where it was (in "
        "no batch, or its own), so deleting this batch does not delete it."
    )
    error = ErrorDetailSerializer(allow_null=True, help_text="Why it was refused, when it was.")


class BatchSubmissionSerializer(BatchSerializer):
    files = BatchFileSerializer(many=True, help_text="What became of each file, in the order sent.")

    def to_representation(self, submission: BatchSubmission) -> dict:
        return {
            **BatchSerializer(submission.batch, context=self.context).data,
            "files": BatchFileSerializer(submission.files, many=True, context=self.context).data,
        }


class BatchRefusedSerializer(ErrorSerializer):
    files = BatchFileSerializer(
        many=True, required=False, help_text="When files were received: why each was refused, in the order sent."
    )


# --- Examples ---------------------------------------------------------------------------------------------------

BATCH_ID = "3c9a7e1f-5d2b-4a80-b6e4-91f0c2d7a5e3"
_BATCH = {
    "id": BATCH_ID,
    "url": f"{examples.BASE}/batches/{BATCH_ID}/",
    "export_url": f"{examples.BASE}/batches/{BATCH_ID}/export.csv",
    "name": "holiday.zip",
    "source": "api",
    "created_at": "2026-01-14T09:30:12.104Z",
    "progress": {"total": 2, "queued": 1, "running": 0, "done": 1, "failed": 0, "percent": 50},
}
_REFUSED_FILE = {
    "name": "notes.txt",
    "analysis": None,
    "reused": False,
    "error": {
        "code": "unsupported_media_type",
        "message": "“notes.txt” is neither an image (JPEG, PNG or WebP) nor a video (MP4, MOV or WebM).",
        "field": "file",
    },
}
BATCH = OpenApiExample("A batch", value=_BATCH, response_only=True)
BATCH_DETAIL = OpenApiExample(
    "A batch half done",
    value={**_BATCH, "analyses": [examples.ANALYSIS_DONE.value, examples.SUBMISSION_QUEUED.value]},
    response_only=True,
)
BATCH_SUBMITTED = OpenApiExample(
    "Two files accepted, one refused",
    value={
        **_BATCH,
        "files": [
            {"name": "portrait.jpg", "analysis": examples.ANALYSIS_DONE.value, "reused": True, "error": None},
            {"name": "beach.jpg", "analysis": examples.SUBMISSION_QUEUED.value, "reused": False, "error": None},
            _REFUSED_FILE,
        ],
    },
    response_only=True,
    status_codes=["202"],
)
BATCH_REFUSED = OpenApiExample(
    "No file accepted",
    value={**error_body("unsupported_media_type", "No file of the batch could be analysed.", "files"),
           "files": [_REFUSED_FILE]},
    response_only=True,
)  # fmt: skip
BATCH_ERRORS = {
    400: "Nothing sent, too many files, both `files` and `file`, a damaged or password-protected ZIP, a ZIP holding "
    "no file, or every file refused for a reason of that kind (then `files` says why for each).",
    413: "The body, a file, or the ZIP's extracted size is over its limit; or every file was too large.",
    415: "Every file was of an unsupported type (`files` says which).",
    429: "Over the upload limit for every file of the batch; `Retry-After` says how many seconds to wait.",
}


def _batch_error_responses(*codes: int) -> dict:
    return {
        code: OpenApiResponse(
            BatchRefusedSerializer,
            description=BATCH_ERRORS[code],
            examples=[examples.error_example(code), BATCH_REFUSED],
        )
        for code in codes
    }


# --- Views ------------------------------------------------------------------------------------------------------


def _batch_or_404(request, public_id) -> AnalysisBatch:
    try:
        return selectors.batch_get(user=request.user, public_id=public_id)
    except AnalysisBatch.DoesNotExist:
        # Someone else's batch reads exactly like one that never existed.
        raise NotFound("There is no batch with this ID among yours.", code="not_found") from None


class UploadCounter:
    """Counts each file of the batch as one upload against UPLOAD_THROTTLE_RATE, as the upload page does; remembers
    how long to wait once over it."""

    def __init__(self, request):
        self.request, self.throttle = request, UploadRateThrottle()

    def __call__(self, name: str) -> None:
        upload_admit(self.request, name, self.throttle)

    def retry_after(self) -> int:
        return max(1, round(self.throttle.wait() or 1))


def _refused_response(submission: BatchSubmission, counter: UploadCounter) -> Response:
    """Not one file was accepted: the shared code and status when all were refused alike, else a 400; a 429 when
    waiting may help (some were over the upload limit)."""
    errors = [file.error for file in submission.files]
    codes = {error.code for error in errors}
    throttled = TooManyUploads.code in codes
    code = TooManyUploads.code if throttled else (codes.pop() if len(codes) == 1 else "no_file_accepted")
    statuses = {error.status for error in errors}
    http_status = TooManyUploads.status if throttled else (statuses.pop() if len(statuses) == 1 else 400)
    message = errors[0].message if len(errors) == 1 else "No file of the batch could be analysed; `files` says why."
    body = {
        **error_body(code, message, errors[0].field),
        "files": BatchFileSerializer(submission.files, many=True).data,
    }
    headers = {"Retry-After": str(counter.retry_after())} if throttled else None
    return Response(body, status=http_status, headers=headers)


class BatchListCreateView(GenericAPIView):
    pagination_class = Pagination
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="batches_list",
        summary="List your batches",
        description="Your batches, newest first, each with its progress, in pages of `page_size`.",
        responses={200: BatchSerializer(many=True), **examples.error_responses(400, 401, 404, 429)},
        examples=[BATCH],
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.batch_list(user=request.user))
        return self.get_paginated_response(BatchSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        operation_id="batches_create",
        summary="Submit several files at once",
        description=(
            "Upload several files as multipart form data, each in a field `files` (repeat it), or one ZIP in the "
            "field `file`. Each file becomes an analysis under the same rules as a single upload (type by content, "
            "sizes, an identical earlier file reused) and counts as one upload against the upload limit. A refused "
            "file does not refuse the others: the answer (202) lists what became of each, in order, with the "
            "batch's ID and `url` to follow its progress. Only when not one file is accepted is the answer an "
            "error, with the same `files` list."
        ),
        request={"multipart/form-data": BatchUploadSerializer},
        parameters=[
            OpenApiParameter(
                "keep_original",
                OpenApiTypes.BOOL,
                OpenApiParameter.QUERY,
                description="Keep the originals after the analyses (also accepted as a form field).",
            )
        ],
        responses={
            202: OpenApiResponse(BatchSubmissionSerializer, description="Accepted: poll `url` for the progress."),
            **examples.error_responses(401, 403, 411),
            **_batch_error_responses(400, 413, 415, 429),
            503: OpenApiResponse(
                BatchRefusedSerializer,
                description="No file could be taken: no detector model is active, or storage is down.",
                examples=[examples.error_example(503)],
            ),
        },
        examples=[BATCH_SUBMITTED],
    )
    def post(self, request):
        try:
            files, archive = request.FILES.getlist("files"), request.FILES.get("file")
            raw = {"keep_original": request.query_params.get("keep_original", request.data.get("keep_original"))}
        except TooManyFilesSent:  # Django's parser stopped counting at the largest number any path takes
            raise TooManyFiles(
                f"Send at most {settings.MAX_FILES_PER_BATCH} files in one batch.", field="files"
            ) from None
        options = BatchOptionsSerializer(data={name: value for name, value in raw.items() if value is not None})
        options.is_valid(raise_exception=True)
        oversized = getattr(request, "oversized_uploads", {})
        if archive is not None and (files or oversized):
            raise ValidationError({"file": "Send either the files in “files” or one ZIP in “file”, not both."})
        counter = UploadCounter(request)
        common = {"user": request.user, "source": Analysis.Source.API, "admit": counter}
        common["keep_original"] = options.validated_data["keep_original"]
        if archive is not None:
            submission = batch_create_from_zip(archive=archive, **common)
        else:
            submission = batch_create(files=files, oversized=oversized, **common)
        if submission.batch is None:
            return _refused_response(submission, counter)
        submitted = BatchSubmission(selectors.batch_get(user=request.user, public_id=submission.batch.public_id),
                                    submission.files)  # fmt: skip
        data = BatchSubmissionSerializer(submitted, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


class BatchDetailView(APIView):
    @extend_schema(
        operation_id="batches_retrieve",
        summary="One of your batches",
        description="Its progress, and each of its analyses as the analyses list shows them.",
        responses={200: BatchDetailSerializer, **examples.error_responses(401, 404, 429)},
        examples=[BATCH_DETAIL],
    )
    def get(self, request, public_id):
        batch = _batch_or_404(request, public_id)
        return Response(BatchDetailSerializer(batch, context={"request": request}).data)

    @extend_schema(
        operation_id="batches_destroy",
        summary="Delete one of your batches",
        description="Deletes the batch and its analyses, with their originals and pictures. An earlier analysis "
        "that a file of the batch reused is not part of it and stays.",
        responses={204: OpenApiResponse(description="Deleted."), **examples.error_responses(401, 403, 404, 429)},
    )
    def delete(self, request, public_id):
        batch_delete(batch=_batch_or_404(request, public_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class BatchExportView(APIView):
    @extend_schema(
        operation_id="batches_export",
        summary="Export a batch's analyses",
        description="The batch's analyses as a CSV file (the columns of the history's CSV export), or with "
        "`?format=json` as JSON, as the analyses list shows them.",
        parameters=[BatchExportSerializer],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): OpenApiResponse(
                AnalysisSerializer(many=True),
                examples=[OpenApiExample("Analyses", value=[examples.ANALYSIS_DONE.value], response_only=True)],
            ),
            **{
                (code, "application/json"): response
                for code, response in examples.error_responses(400, 401, 404, 429).items()
            },
        },
    )
    def get(self, request, public_id):
        options = BatchExportSerializer(data=request.query_params)
        options.is_valid(raise_exception=True)
        batch = _batch_or_404(request, public_id)
        analyses = selectors.batch_analyses(batch=batch)
        filename = f"batch-{batch.public_id}"
        if options.validated_data["format"] == "json":
            data = AnalysisSerializer(analyses, many=True, context={"request": request}).data
            return Response(data, headers={"Content-Disposition": f'attachment; filename="{filename}.json"'})
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
        presentation.analyses_write_csv(analyses, response)
        return response
