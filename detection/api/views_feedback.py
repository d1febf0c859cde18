"""Flagging a verdict as wrong through the API: POST records or updates your flag, GET reads it."""

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from detection import selectors_feedback
from detection.api import examples
from detection.api.serializers import ErrorSerializer
from detection.api.serializers_feedback import VerdictFlagInputSerializer, VerdictFlagSerializer
from detection.api.views import _analysis_or_404
from detection.services import feedback

FLAG_EXAMPLE = OpenApiExample(
    "A flag waiting for review",
    value={
        "status": "open",
        "label": "real",
        "note": "This is my own photo, taken with my phone.",
        "consent": True,
        "model_version": "reference-mobilenet-v2 2026.12",
        "probability_fake": 0.91,
        "created_at": "2026-01-14T09:40:02.118Z",
        "reviewed_at": None,
    },
    response_only=True,
)


class AnalysisFlagView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        operation_id="analyses_flag_retrieve",
        summary="Your flag of an analysis's verdict",
        responses={200: VerdictFlagSerializer, **examples.error_responses(401, 404, 429)},
        examples=[FLAG_EXAMPLE],
    )
    def get(self, request, public_id):
        flag = selectors_feedback.verdict_flag_get(user=request.user, analysis=_analysis_or_404(request, public_id))
        if flag is None:
            raise NotFound("You have not flagged this analysis's verdict.", code="not_found")
        return Response(VerdictFlagSerializer(flag).data)

    @extend_schema(
        operation_id="analyses_flag",
        summary="Flag a verdict as wrong",
        description=(
            "Say which label is right for one of your finished analyses, optionally why (`note`) and whether the "
            "file may be kept to test future models (`consent`). Flagging again updates your flag while it waits "
            "for review; once staff confirmed or rejected it, it is final (409 `flag_reviewed`). JSON or form data."
        ),
        request={
            "application/json": VerdictFlagInputSerializer,
            "application/x-www-form-urlencoded": VerdictFlagInputSerializer,
            "multipart/form-data": VerdictFlagInputSerializer,
        },
        responses={
            201: VerdictFlagSerializer,
            **examples.error_responses(400, 401, 403, 404, 429),
            409: OpenApiResponse(
                ErrorSerializer,
                description="Your flag was already reviewed; that is final.",
                examples=[
                    OpenApiExample(
                        "Already reviewed",
                        value={
                            "error": {
                                "code": "flag_reviewed",
                                "message": "Your report on this verdict was already reviewed; that is final.",
                                "field": None,
                            }
                        },
                        response_only=True,
                        status_codes=["409"],
                    )
                ],
            ),
        },
        examples=[FLAG_EXAMPLE],
    )
    def post(self, request, public_id):
        analysis = _analysis_or_404(request, public_id)
        given = VerdictFlagInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        flag = feedback.verdict_flag_submit(analysis=analysis, user=request.user, **given.validated_data)
        return Response(VerdictFlagSerializer(flag).data, status=status.HTTP_201_CREATED)
