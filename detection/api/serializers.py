"""What the API reads (query parameters, upload fields) and what it answers (analyses, models, errors)."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from detection import selectors, selectors_feedback
from detection.api.serializers_feedback import VerdictFlagSummarySerializer
from detection.models import Analysis, DetectorModel

# --- Input ------------------------------------------------------------------------------------------------------


class AnalysisURLSerializer(serializers.Serializer):
    """POST /analyses/ as a form or JSON: a file to fetch from a URL (documentation only)."""

    url = serializers.URLField(
        required=False,
        max_length=2000,
        help_text="Instead of `file`: the http(s) address of the image or video, fetched by the server (public "
        "internet addresses only; same size limits; URL_FETCH_TIMEOUT_SECONDS to fetch it). Refused with 400 "
        "`unsafe_url` (not http(s), or a private network address) or `url_fetch_failed` (unreachable, too slow, or "
        "not a 2xx answer), 413 when too large, 415 when not an image or video.",
    )
    keep_original = serializers.BooleanField(
        required=False,
        help_text="Keep the uploaded original after the analysis (default: the server's KEEP_ORIGINALS setting). "
        "Without it the analysis keeps its verdict, thumbnail, heatmap and overlay.",
    )


class AnalysisUploadSerializer(AnalysisURLSerializer):
    """The multipart form of POST /analyses/ (documentation only: the file itself goes to the services)."""

    file = serializers.FileField(
        required=False,
        help_text="The image (JPEG, PNG or WebP, up to MAX_FILE_SIZE_MB megabytes) or video (MP4, MOV or WebM, up to "
        "MAX_VIDEO_SIZE_MB megabytes and MAX_VIDEO_SECONDS seconds). The type is decided by the content. Send "
        "either `file` or `url`.",
    )


class SubmitOptionsSerializer(serializers.Serializer):
    wait = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        help_text="Seconds to wait for the result (query parameter). When the analysis finishes in time the answer "
        "is 201 with the result, otherwise 202 with the analysis to poll. Values above the server's "
        "API_MAX_WAIT_SECONDS are treated as that maximum.",
    )
    keep_original = serializers.BooleanField(required=False, allow_null=True, default=None)

    def validate_wait(self, value: int) -> int:
        return min(value, settings.API_MAX_WAIT_SECONDS)


class AnalysisFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=Analysis.Status.choices, required=False, help_text="Only analyses in this state."
    )
    label = serializers.ChoiceField(
        choices=Analysis.Label.choices, required=False, help_text="Only this detector label."
    )
    verdict = serializers.ChoiceField(
        choices=Analysis.Verdict.choices,
        required=False,
        help_text="Only this verdict; “uncertain” means the probability is near the model's threshold.",
    )
    created_from = serializers.DateField(
        required=False, help_text="Created on or after this day (YYYY-MM-DD, server time zone)."
    )
    created_to = serializers.DateField(required=False, help_text="Created on or before this day (YYYY-MM-DD).")
    ordering = serializers.ChoiceField(
        choices=list(selectors.ANALYSIS_SORTS),
        required=False,
        default="newest",
        help_text="newest (default), oldest, name, most_fake or most_real.",
    )

    def validate(self, data: dict) -> dict:
        start, end = data.get("created_from"), data.get("created_to")
        if start and end and start > end:
            raise serializers.ValidationError({"created_to": "created_to must not be before created_from."})
        return data


# --- Output -----------------------------------------------------------------------------------------------------


class ResultSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=Analysis.Label.choices, help_text="The detector's decision.")
    verdict = serializers.ChoiceField(
        choices=Analysis.Verdict.choices,
        help_text="real or fake, or uncertain when the probability sits near the threshold.",
    )
    probability_fake = serializers.FloatField(min_value=0, max_value=1)
    confidence = serializers.FloatField(min_value=0, max_value=1, help_text="The probability of the chosen label.")
    threshold = serializers.FloatField(min_value=0, max_value=1, help_text="Fake at or above this probability.")
    model_version = serializers.CharField(help_text="The detector model that produced this result.")
    probability_raw = serializers.FloatField(
        min_value=0,
        max_value=1,
        allow_null=True,
        help_text="The model's own probability before its calibration: equal to probability_fake for a model without "
        "one; null for a calibrated model's video, whose probability is a mean of its frames' calibrated ones.",
    )
    uncertain_band = serializers.ListField(
        child=serializers.FloatField(min_value=0, max_value=1),
        min_length=2,
        max_length=2,
        allow_null=True,
        help_text="[low, high): calibrated probabilities in this band are called uncertain. Null for a model without "
        "a calibration: then uncertain means within the server's UNCERTAIN_MARGIN of the threshold.",
    )
    calibration = serializers.SerializerMethodField(
        help_text="What probability_fake is calibrated on, in a sentence; null when it is the model's raw output."
    )

    def to_representation(self, analysis: Analysis):
        if analysis.status != Analysis.Status.DONE or analysis.probability_fake is None:
            return None
        return super().to_representation(analysis)

    def get_calibration(self, analysis: Analysis) -> str | None:
        if analysis.uncertain_band is None or analysis.detector_model is None:
            return None
        return analysis.detector_model.calibration_summary or None


class TimingsSerializer(serializers.Serializer):
    decode_ms = serializers.FloatField(allow_null=True)
    faces_ms = serializers.FloatField(allow_null=True, help_text="Finding faces (face models only).")
    inference_ms = serializers.FloatField(allow_null=True)
    heatmap_ms = serializers.FloatField(allow_null=True)
    total_ms = serializers.FloatField(allow_null=True)


class ImageLinksSerializer(serializers.Serializer):
    original = serializers.URLField(allow_null=True, help_text="The upload, unless it was not kept.")
    thumbnail = serializers.URLField(allow_null=True)
    heatmap = serializers.URLField(
        allow_null=True, help_text="Grad-CAM heatmap: where the model looked (a video's: its most suspicious frame's)."
    )
    overlay = serializers.URLField(allow_null=True, help_text="The heatmap laid over the image.")
    frames = serializers.ListField(
        child=serializers.URLField(),
        required=False,
        help_text="In an analysis's detail: a video's sampled frames, each with its heatmap and face boxes, in time "
        "order; empty for an image.",
    )


class FaceBoxSerializer(serializers.Serializer):
    left = serializers.IntegerField()
    top = serializers.IntegerField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class FaceSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the largest face, then by size.")
    box = FaceBoxSerializer(help_text="Where the face is, in the image's pixels (upright, after EXIF rotation).")
    detection_score = serializers.FloatField(help_text="The face detector's confidence that this is a face.")
    probability_fake = serializers.FloatField(min_value=0, max_value=1)
    label = serializers.ChoiceField(choices=Analysis.Label.choices)
    verdict = serializers.ChoiceField(choices=Analysis.Verdict.choices)
    image = serializers.SerializerMethodField(help_text="The framed face the model saw, with its heatmap.")

    @extend_schema_field(OpenApiTypes.URI)
    def get_image(self, face) -> str:
        path = reverse("api:analysis-face-image", args=[face.analysis.public_id, face.number])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class VideoSerializer(serializers.Serializer):
    duration_s = serializers.FloatField()
    frame_rate = serializers.FloatField()
    frames_planned = serializers.IntegerField(
        help_text="Frames sampled for analysis (VIDEO_FRAMES_PER_SECOND, capped)."
    )
    frames_done = serializers.IntegerField(help_text="Frames analysed so far.")
    aggregation = serializers.DictField(
        source="verdict_rule", help_text="How the frames made the verdict: the rule, k (frames averaged), frames."
    )
    stopped_reason = serializers.CharField(
        allow_blank=True,
        help_text="Why the analysis stopped before its last frame (time limit, damaged file), if it did.",
    )


class FindingSerializer(serializers.Serializer):
    kind = serializers.CharField(
        help_text="content_credentials, ai_generated, edited, camera, software, dates, no_metadata or metadata_error."
    )
    severity = serializers.ChoiceField(choices=["info", "notice", "warning"])
    message = serializers.CharField(help_text="The finding, for a person.")
    source = serializers.CharField(help_text="Where it was read: EXIF, XMP, PNG text, C2PA or container.")
    details = serializers.DictField()


class FrameFaceSerializer(FaceBoxSerializer):
    track = serializers.IntegerField(help_text="The same number for the same face across frames.")
    detection_score = serializers.FloatField()
    probability_fake = serializers.FloatField(min_value=0, max_value=1)


class FrameSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the first sampled frame, then in time order.")
    timestamp_s = serializers.FloatField()
    probability_fake = serializers.FloatField(min_value=0, max_value=1)
    label = serializers.ChoiceField(choices=Analysis.Label.choices)
    verdict = serializers.ChoiceField(choices=Analysis.Verdict.choices)
    scope = serializers.ChoiceField(choices=Analysis.Scope.choices)
    faces = FrameFaceSerializer(many=True)
    image = serializers.SerializerMethodField(help_text="The frame with its heatmap and face boxes.")

    @extend_schema_field(OpenApiTypes.URI)
    def get_image(self, frame) -> str:
        path = reverse("api:analysis-frame-image", args=[frame.analysis.public_id, frame.number])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class TimelinePointSerializer(serializers.Serializer):
    t = serializers.FloatField(source="timestamp_s", help_text="Seconds from the start.")
    probability_fake = serializers.FloatField(min_value=0, max_value=1)


class StabilitySerializer(serializers.Serializer):
    stable = serializers.BooleanField(
        help_text="False when a re-encoding flips the label (at the model's threshold) or the spread exceeds "
        "max_spread: then treat the verdict with caution."
    )
    spread = serializers.FloatField(
        min_value=0, max_value=1, help_text="Largest minus smallest P(fake) over the image and its re-encodings."
    )
    variants = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=1),
        help_text="P(fake) of each re-encoding: jpeg85 and jpeg70 (re-saved as JPEG at that quality), resize75 "
        "(resized to 75 %), crop4 (4 % cropped off each side).",
    )
    flips = serializers.ListField(
        child=serializers.CharField(), help_text="The re-encodings whose label differs from the image's."
    )
    max_spread = serializers.FloatField(help_text="The largest spread a stable verdict may have.")


class AnalysisSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    url = serializers.SerializerMethodField()
    kind = serializers.ChoiceField(choices=Analysis.Kind.choices)
    status = serializers.ChoiceField(choices=Analysis.Status.choices)
    progress = serializers.IntegerField(
        allow_null=True, help_text="A video's percentage of frames analysed (100 once done); null for an image."
    )
    error_message = serializers.SerializerMethodField()
    source = serializers.ChoiceField(choices=Analysis.Source.choices)
    file_name = serializers.CharField(source="original_name")
    media_type = serializers.CharField()
    file_size = serializers.IntegerField(help_text="Bytes.")
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField()
    keep_original = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    result = ResultSerializer(source="*", allow_null=True, help_text="Present once the analysis is done.")
    scope = serializers.SerializerMethodField(
        help_text="What the model looked at: `faces` (each face; the most suspicious face decides the verdict), "
        "`image` (the whole image: the model is a whole-image model) or `no_face` (a face model found no face it "
        "could judge and looked at the whole image, which lies outside what it was trained on). Null until done."
    )
    faces = FaceSerializer(many=True, help_text="The faces analysed, largest first; empty unless scope is `faces`.")
    small_faces = serializers.IntegerField(help_text="Faces found but too small to judge (not analysed).")
    video = serializers.SerializerMethodField()
    provenance = FindingSerializer(
        many=True,
        help_text="What the file's metadata says of its origin (EXIF, XMP, PNG text, C2PA): informs, never changes "
        "the verdict. Empty until the analysis has run.",
    )
    stability = serializers.SerializerMethodField()
    timings = TimingsSerializer(source="*")
    images = serializers.SerializerMethodField()

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, analysis: Analysis) -> str:
        return self._absolute(reverse("api:analysis-detail", args=[analysis.public_id]))

    @extend_schema_field(serializers.ChoiceField(choices=Analysis.Scope.choices, allow_null=True))
    def get_scope(self, analysis: Analysis) -> str | None:
        return analysis.scope or None

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Why the analysis failed."))
    def get_error_message(self, analysis: Analysis) -> str | None:
        return analysis.error_message or None

    @extend_schema_field(
        StabilitySerializer(
            allow_null=True,
            help_text="Whether the verdict holds when the image is re-saved as JPEG, resized or cropped: each "
            "re-encoding is scored with the image. Null for videos, before the result, or with the check turned off.",
        )
    )
    def get_stability(self, analysis: Analysis) -> dict | None:
        return StabilitySerializer(analysis.stability).data if analysis.stability else None

    @extend_schema_field(VideoSerializer(allow_null=True))
    def get_video(self, analysis: Analysis) -> dict | None:
        return VideoSerializer(analysis).data if analysis.kind == Analysis.Kind.VIDEO else None

    @extend_schema_field(ImageLinksSerializer)
    def get_images(self, analysis: Analysis) -> dict:
        return {
            kind: self._absolute(reverse("api:analysis-image", args=[analysis.public_id, kind]))
            if getattr(analysis, kind)
            else None
            for kind in Analysis.PICTURES
        }


class AnalysisDetailSerializer(AnalysisSerializer):
    """One analysis, with a video's frames and timeline (the list leaves them out)."""

    frames = FrameSerializer(
        source="video_frames",
        many=True,
        help_text="A video's sampled frames analysed so far, in time order; empty for an image.",
    )
    timeline = TimelinePointSerializer(
        source="video_frames", many=True, help_text="P(fake) over time: one point per sampled frame."
    )
    flag = serializers.SerializerMethodField()

    @extend_schema_field(
        VerdictFlagSummarySerializer(allow_null=True, help_text="Your flag of the verdict (its details: `flag/`).")
    )
    def get_flag(self, analysis: Analysis) -> dict | None:
        flag = selectors_feedback.verdict_flag_get(analysis=analysis)
        return VerdictFlagSummarySerializer(flag).data if flag else None

    @extend_schema_field(ImageLinksSerializer)
    def get_images(self, analysis: Analysis) -> dict:
        frames = [
            reverse("api:analysis-frame-image", args=[analysis.public_id, f.number]) for f in analysis.video_frames
        ]
        return {**super().get_images(analysis), "frames": [self._absolute(path) for path in frames]}


class SubmissionSerializer(AnalysisDetailSerializer):
    reused = serializers.SerializerMethodField(
        help_text="True when you had already submitted this exact image and the same model version answered it: "
        "the earlier analysis is returned instead of a new one."
    )

    def get_reused(self, analysis: Analysis) -> bool:
        return bool(self.context.get("reused"))


class DetectorModelSerializer(serializers.ModelSerializer):
    metrics = serializers.DictField(help_text="Validation metrics from training, e.g. accuracy, roc_auc.")
    expects_faces = serializers.BooleanField(
        read_only=True, help_text="True for a face model: photos are analysed face by face (see `face_framing`)."
    )

    class Meta:
        model = DetectorModel
        fields = [
            "name",
            "version",
            "architecture",
            "input_size",
            "threshold",
            "expects_faces",
            "face_framing",
            "metrics",
            "description",
            "is_active",
            "activated_at",
            "created_at",
        ]


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="A stable identifier, e.g. file_too_large, invalid_token, not_found.")
    message = serializers.CharField(help_text="What went wrong, for a person.")
    field = serializers.CharField(allow_null=True, help_text="The parameter or form field at fault, if any.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class QueueUnavailableSerializer(ErrorSerializer):
    analysis = SubmissionSerializer(
        required=False,
        help_text="With queue_unavailable: the stored analysis, which runs as soon as the queue is back.",
    )
