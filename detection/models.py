import hashlib
import json
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property

import ml
from detection.storage import get_results_storage


class DetectorModelQuerySet(models.QuerySet):
    def delete(self):
        """Refused while the set holds the active model, however it is deleted (the admin's bulk action included):
        analyses always need one."""
        active = self.filter(is_active=True).first()
        if active is not None:
            raise ValidationError(active.undeletable_reason())
        return super().delete()


class DetectorModel(models.Model):
    """A trained detector: its weights, where they came from, how good it is, and whether it is the active one."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Uploaded weights file"
        HUB = "hub", "Hugging Face Hub"
        PATH = "path", "File on the server"
        TRAINING = "training", "Trained by this product"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for its weights"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=50)
    architecture = models.CharField(max_length=30, choices=[(name, name) for name in ml.ARCHITECTURE_NAMES])
    input_size = models.PositiveIntegerField(default=224, validators=[MinValueValidator(32), MaxValueValidator(1024)])
    threshold = models.FloatField(
        default=0.5,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Images whose probability of being fake is at least this are labelled fake.",
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.UPLOAD)
    weights = models.FileField(upload_to="models/", blank=True, max_length=300)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    hub_repo = models.CharField("Hugging Face repository", max_length=200, blank=True)
    hub_filename = models.CharField("file in the repository", max_length=200, blank=True)
    hub_revision = models.CharField("revision", max_length=100, blank=True)
    server_path = models.CharField("path on the server", max_length=500, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    status_message = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Validation metrics from training.")
    card = models.JSONField("model card", default=dict, blank=True)
    description = models.TextField(
        blank=True, help_text="What the model detects and its limits, shown with every result it produces."
    )
    is_active = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The last failure to load these weights in a worker, so /health and the admin can show it.
    load_error = models.TextField(blank=True, editable=False)
    precision_check = models.JSONField(
        "bf16 or fp32", default=dict, blank=True, editable=False,
        help_text="bf16 measured against fp32 on this model when it was checked (ml.precision), and the choice.",
    )  # fmt: skip
    # Calibration fitted on the validation split (ml.calibration): applied to every probability the model gives, so
    # that "70 % fake" means fake 70 % of the time on data like the validation split. Empty: uncalibrated.
    calibration = models.JSONField(default=dict, blank=True)
    # How the threshold was chosen, e.g. {"rule": "youden"} or {"rule": "target_fpr", "target_fpr": 0.01, "fpr": ...}.
    threshold_rule = models.JSONField(default=dict, blank=True)
    # The band of calibrated probabilities called "uncertain"; empty: within UNCERTAIN_MARGIN of the threshold.
    uncertain_low = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    uncertain_high = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    face_framing = models.FloatField(
        "face framing",
        null=True,
        blank=True,
        validators=[MinValueValidator(1.0), MaxValueValidator(4.0)],
        help_text="For a model trained on face crops: the crop's side divided by the face box's longer side (1.25 for "
        "models trained with --faces). Every face of a photo is then framed so and analysed; empty: the model looks "
        "at whole images.",
    )

    objects = DetectorModelQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_detector_model_version"),
            models.UniqueConstraint(
                fields=["is_active"], condition=models.Q(is_active=True), name="one_active_detector_model"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    def undeletable_reason(self) -> str:
        return f"“{self}” is the only active model and cannot be deleted. Activate another model first."

    def delete(self, *args, **kwargs):
        if self.is_active:
            raise ValidationError(self.undeletable_reason())
        return super().delete(*args, **kwargs)

    @property
    def expects_faces(self) -> bool:
        return self.face_framing is not None

    @property
    def cache_key(self) -> str:
        """Changes whenever what a loaded detector depends on changes, so workers reload it."""
        measured = self.precision_check.get("precision", "")
        calibrated = hashlib.sha256(json.dumps(self.calibration or {}, sort_keys=True).encode()).hexdigest()[:16]
        return f"{self.sha256}:{self.architecture}:{self.input_size}:{self.threshold}:{measured}:{calibrated}"

    @property
    def uncertain_band(self) -> tuple[float, float] | None:
        if self.uncertain_low is None or self.uncertain_high is None:
            return None
        return self.uncertain_low, self.uncertain_high

    @property
    def calibration_summary(self) -> str:
        """What the model's probabilities are calibrated on, in a sentence; empty without a calibration."""
        calibration = self.calibration or {}
        if not calibration.get("method"):
            return ""
        method = {"temperature": "temperature scaling", "isotonic": "isotonic regression"}.get(calibration["method"])
        counts = calibration.get("counts") or {}
        before, after = calibration.get("ece_before", float("nan")), calibration.get("ece_after", float("nan"))
        return (
            f"Calibrated ({method or calibration['method']}) on {calibration.get('samples', '?')} validation images "
            f"({counts.get('real', '?')} real, {counts.get('fake', '?')} fake): a probability of fake of p means "
            f"fake about p of the time on images like those. Expected calibration error {before:.3f} before, "
            f"{after:.3f} after (measured on those same images: optimistic)."
        )

    def operating_point_set(self, *, threshold: float, rule: dict, band: list[float] | None) -> None:
        """Move the threshold, recording the rule that chose it and the uncertain band that goes with it (None: the
        UNCERTAIN_MARGIN rule, for a model without a calibration)."""
        self.threshold = threshold
        self.threshold_rule = rule
        self.uncertain_low, self.uncertain_high = band if band else (None, None)

    def calibration_set(self, calibration: dict) -> None:
        """Adopt a calibration (ml.calibration) together with the operating point fitted with it: a threshold on
        another probability scale would mean nothing."""
        self.calibration = calibration
        self.operating_point_set(
            threshold=calibration["threshold"],
            rule=calibration.get("threshold_rule") or {},
            band=calibration.get("uncertain_band"),
        )

    def precision_for(self, configured: str) -> str:
        """The precision to run this model in: INFERENCE_PRECISION when set; with "auto", what measuring the model
        chose (ml.precision), else fp32."""
        return configured if configured != "auto" else self.precision_check.get("precision", "fp32")


def verdict_of(
    probability_fake: float | None, threshold: float | None, band: tuple[float, float] | None = None
) -> str | None:
    """Real or fake by the threshold, or uncertain: within the result's band [low, high) of calibrated
    probabilities when it has one (ml.calibration.BAND_RULE), else within UNCERTAIN_MARGIN of the threshold."""
    if probability_fake is None or threshold is None:
        return None
    if band is not None:
        uncertain = band[0] <= probability_fake < band[1]
    else:
        uncertain = abs(probability_fake - threshold) < settings.UNCERTAIN_MARGIN
    if uncertain:
        return Analysis.Verdict.UNCERTAIN
    return Analysis.Verdict.FAKE if probability_fake >= threshold else Analysis.Verdict.REAL


def verdict_condition(verdict: str) -> tuple[models.Q, dict]:
    """verdict_of in the database, for filters on analyses: the same rule, the band when the row has one."""
    margin = settings.UNCERTAIN_MARGIN
    p, threshold = models.F("probability_fake"), models.F("threshold")
    annotations = {"_above": p - threshold, "_below": threshold - p}  # how far past the threshold, either way
    known = models.Q(probability_fake__isnull=False, threshold__isnull=False)
    banded = models.Q(uncertain_low__isnull=False, uncertain_high__isnull=False)
    unbanded = models.Q(uncertain_low__isnull=True) | models.Q(uncertain_high__isnull=True)
    in_band = models.Q(probability_fake__gte=models.F("uncertain_low"), probability_fake__lt=models.F("uncertain_high"))
    outside_band = models.Q(probability_fake__lt=models.F("uncertain_low")) | models.Q(
        probability_fake__gte=models.F("uncertain_high")
    )
    conditions = {
        Analysis.Verdict.UNCERTAIN: (banded & in_band) | (unbanded & models.Q(_above__lt=margin, _below__lt=margin)),
        Analysis.Verdict.FAKE: models.Q(probability_fake__gte=threshold)
        & ((banded & outside_band) | (unbanded & models.Q(_above__gte=margin))),
        Analysis.Verdict.REAL: models.Q(probability_fake__lt=threshold)
        & ((banded & outside_band) | (unbanded & models.Q(_below__gte=margin))),
    }
    return known & conditions[verdict], annotations


class Analysis(models.Model):
    """One uploaded image or video and what the detector said about it."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"

    class Label(models.TextChoices):
        REAL = "real", "Real"
        FAKE = "fake", "Fake"

    class Verdict(models.TextChoices):
        REAL = "real", "Real"
        FAKE = "fake", "Fake"
        UNCERTAIN = "uncertain", "Uncertain"

    class Scope(models.TextChoices):
        """What the model looked at (ml.analysis): the values are ml.analysis's IMAGE, FACES and NO_FACE."""

        IMAGE = "image", "The whole image"
        FACES = "faces", "Each face"
        NO_FACE = "no_face", "The whole image: no face found"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="analyses")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the task last went to the broker; None while it could not be queued (the sweeper retries).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The task delivery that claimed the analysis: a redelivery of the same task may take over a dead run.
    task_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error_message = models.TextField(blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.WEB)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.IMAGE)
    # Submitted together with others (one API request, a ZIP): the batch lists them all.
    batch = models.ForeignKey(
        "AnalysisBatch", on_delete=models.SET_NULL, null=True, blank=True, related_name="analyses"
    )
    # Fetched from this address rather than uploaded.
    source_url = models.URLField(max_length=2000, blank=True)

    original_name = models.CharField(max_length=255)
    sha256 = models.CharField("SHA-256", max_length=64, db_index=True)
    media_type = models.CharField(max_length=50)
    file_size = models.PositiveIntegerField()
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # A video's length and frame rate, and how many of its frames are sampled (VIDEO_FRAMES_PER_SECOND, capped at
    # VIDEO_MAX_FRAMES) and analysed so far: its progress.
    duration_s = models.FloatField(null=True, blank=True)
    frame_rate = models.FloatField(null=True, blank=True)
    frames_planned = models.PositiveIntegerField(default=0)
    frames_done = models.PositiveIntegerField(default=0)

    keep_original = models.BooleanField(default=True)
    original = models.FileField(upload_to="originals/", blank=True, max_length=300)
    thumbnail = models.FileField(storage=get_results_storage, upload_to="results/", blank=True, max_length=300)
    heatmap = models.FileField(storage=get_results_storage, upload_to="results/", blank=True, max_length=300)
    overlay = models.FileField(storage=get_results_storage, upload_to="results/", blank=True, max_length=300)

    probability_fake = models.FloatField(null=True, blank=True)
    # The model's probability before its calibration (DetectorModel.calibration); equal when it has none.
    probability_raw = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    # The model's uncertain band when the result was recorded (DetectorModel.uncertain_low/high), kept with it.
    uncertain_low = models.FloatField(null=True, blank=True)
    uncertain_high = models.FloatField(null=True, blank=True)
    # The verdict under realistic re-encodings of the input: {"stable": bool, "spread": float, "variants": {...}}.
    stability = models.JSONField(default=dict, blank=True)
    detector_model = models.ForeignKey(
        DetectorModel, on_delete=models.SET_NULL, null=True, blank=True, related_name="analyses"
    )
    # Kept as text too, so the result still names its model after the model itself is deleted.
    model_version = models.CharField(max_length=160, blank=True)

    scope = models.CharField(max_length=10, choices=Scope.choices, blank=True)
    # Faces the detector found but too small to judge (under ml.faces.MIN_FACE_SIDE pixels): not analysed.
    small_faces = models.PositiveSmallIntegerField(default=0)
    # How a video's frames made its verdict (ml.video_analysis.video_verdict), and why it stopped before its last
    # planned frame (time limit, damaged file), if it did: its verdict then rests on the frames it reached.
    verdict_rule = models.JSONField(default=dict, blank=True)
    stopped_reason = models.TextField(blank=True)
    # What the file's metadata says of its origin (detection.provenance findings): informs, never decides.
    provenance = models.JSONField(default=list, blank=True)

    decode_ms = models.FloatField(null=True, blank=True)
    faces_ms = models.FloatField(null=True, blank=True)
    inference_ms = models.FloatField(null=True, blank=True)
    heatmap_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "analyses"
        indexes = [models.Index(fields=["owner", "-created_at"], name="analysis_owner_recent")]
        constraints = [
            # Uploads of the same image that arrive together share one analysis (detection.services).
            models.UniqueConstraint(
                fields=["owner", "sha256"],
                condition=models.Q(status__in=["queued", "running"]),
                name="one_unfinished_analysis_per_image",
            )
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display().lower()})"

    def get_absolute_url(self) -> str:
        return reverse("detection:analysis_detail", args=[self.public_id])

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.FAILED}

    @property
    def waiting_for_queue(self) -> bool:
        """Stored, but not handed to the workers yet: the queue was unreachable, and the sweeper will send it."""
        return self.status == self.Status.QUEUED and self.enqueued_at is None

    # --- State transitions: queued → running → done or failed -------------------------------------------------

    @classmethod
    def claim(cls, *, analysis_id: int, task_id: str) -> "Analysis | None":
        """Mark the analysis running for this task delivery, or None when there is nothing for it to do.

        Finished analyses are left alone (a duplicate delivery). A running one is taken over only by a redelivery of
        the task that claimed it (its worker died) or once its time limit has passed; otherwise another worker has it.
        """
        with transaction.atomic():
            analysis = cls.objects.select_for_update().filter(pk=analysis_id).first()
            if analysis is None or analysis.is_finished:
                return None
            now = timezone.now()
            if (
                analysis.status == cls.Status.RUNNING
                and analysis.task_id != task_id
                and analysis.started_at
                and now - analysis.started_at < timedelta(seconds=analysis.time_limit)
            ):
                return None
            analysis.status = cls.Status.RUNNING
            analysis.started_at = now
            analysis.attempts += 1
            analysis.task_id = task_id
            analysis.save(update_fields=["status", "started_at", "attempts", "task_id"])
            return analysis

    @property
    def soft_time_limit(self) -> int:
        """Seconds the analysis may run before it is stopped: a video gets VIDEO_FRAME_TIME_LIMIT more per frame."""
        frames = self.frames_planned if self.kind == self.Kind.VIDEO else 0
        return settings.ANALYSIS_SOFT_TIME_LIMIT + settings.VIDEO_FRAME_TIME_LIMIT * frames

    @property
    def time_limit(self) -> int:
        """Seconds after which its worker is killed, and another may take the analysis over."""
        return self.soft_time_limit + settings.ANALYSIS_TIME_LIMIT - settings.ANALYSIS_SOFT_TIME_LIMIT

    @property
    def progress(self) -> int | None:
        """Percent of a video's planned frames analysed; None for an image."""
        if self.kind != self.Kind.VIDEO or not self.frames_planned:
            return None
        return 100 if self.status == self.Status.DONE else min(99, 100 * self.frames_done // self.frames_planned)

    def fail(self, message: str) -> None:
        self.status = self.Status.FAILED
        self.error_message = message
        self.finished_at = timezone.now()
        self.save(update_fields=["status", "error_message", "finished_at"])

    def record_result(self, outcome, *, detector_model: "DetectorModel", faces: list, total_ms: float) -> bool:
        """Store the engine's outcome (detection.engine.Outcome) and the faces' rows; False when the analysis was
        deleted while it ran (by its owner, or with the account): then nothing is saved, the row stays gone."""
        self.probability_fake = outcome.probability_fake
        self.probability_raw = outcome.probability_fake if outcome.probability_raw is None else outcome.probability_raw
        self.operating_point_keep(detector_model)
        self.label = outcome.label
        self.scope = outcome.scope
        self.small_faces = outcome.small_faces
        self.stability = outcome.stability or {}
        self.detector_model = detector_model
        self.model_version = detector_model.label
        for name, value in outcome.timings.items():
            setattr(self, name, value)
        self.total_ms = total_ms
        self.status = self.Status.DONE
        self.finished_at = timezone.now()
        self.error_message = ""
        with transaction.atomic():
            if not Analysis.objects.select_for_update().filter(pk=self.pk).exists():
                return False
            self.save()
            AnalysisFace.objects.bulk_create(faces)
        return True

    def frames_record(self, frames: list) -> bool:
        """Store a batch of a running video's analysed frames (AnalysisFrame rows) and advance its progress; False
        when the analysis was deleted meanwhile (nothing is saved)."""
        with transaction.atomic():
            if not Analysis.objects.select_for_update().filter(pk=self.pk).exists():
                return False
            AnalysisFrame.objects.bulk_create(frames)
            self.frames_done = self.frames.count()
            Analysis.objects.filter(pk=self.pk).update(frames_done=self.frames_done)
        return True

    def record_video_result(
        self, verdict, *, detector_model: "DetectorModel", timings: dict, total_ms: float, stopped_reason: str = ""
    ) -> bool:
        """Store a video's verdict (ml.video_analysis.VideoVerdict) from the frames recorded; False when the analysis
        was deleted while it ran."""
        self.probability_fake = verdict.probability_fake
        # A mean of the frames' calibrated probabilities: no one raw probability stands behind it.
        self.probability_raw = None if detector_model.calibration else verdict.probability_fake
        self.label = verdict.label
        self.verdict_rule = verdict.rule
        self.stopped_reason = stopped_reason
        self.operating_point_keep(detector_model)
        self.detector_model = detector_model
        self.model_version = detector_model.label
        decisive = self.frames.order_by("-probability_fake", "number").first()
        self.scope = decisive.scope if decisive else ""
        for name, value in timings.items():
            setattr(self, name, value)
        self.total_ms = total_ms
        self.status = self.Status.DONE
        self.finished_at = timezone.now()
        self.error_message = ""
        with transaction.atomic():
            if not Analysis.objects.select_for_update().filter(pk=self.pk).exists():
                return False
            self.save()
        return True

    def requeue(self) -> None:
        """Back to the queue as if just uploaded, for another run with the active model (its result forgotten)."""
        for name in ("probability_fake", "threshold", "detector_model", "started_at", "finished_at", "enqueued_at"):
            setattr(self, name, None)
        self.probability_raw = self.uncertain_low = self.uncertain_high = None
        for name in ("decode_ms", "faces_ms", "inference_ms", "heatmap_ms", "total_ms"):
            setattr(self, name, None)
        self.scope, self.small_faces, self.label = "", 0, ""
        self.frames_done, self.verdict_rule, self.stopped_reason, self.provenance = 0, {}, "", []
        self.stability = {}
        self.heatmap = self.overlay = ""
        self.model_version = self.error_message = self.task_id = ""
        self.attempts = 0
        self.status = self.Status.QUEUED

    def operating_point_keep(self, detector_model: "DetectorModel") -> None:
        """The threshold and uncertain band the result was judged by, kept with it: the model's may change later."""
        self.threshold = detector_model.threshold
        self.uncertain_low, self.uncertain_high = detector_model.uncertain_band or (None, None)

    @property
    def uncertain_band(self) -> tuple[float, float] | None:
        if self.uncertain_low is None or self.uncertain_high is None:
            return None
        return self.uncertain_low, self.uncertain_high

    def verdict_for(self, probability_fake: float | None) -> str | None:
        """The verdict of a probability (the analysis's own, a face's, a frame's) by this result's threshold, band."""
        return verdict_of(probability_fake, self.threshold, self.uncertain_band)

    @property
    def verdict(self) -> str | None:
        return self.verdict_for(self.probability_fake)

    @property
    def confidence(self) -> float | None:
        """How sure the detector is of its label: the probability of the class it chose."""
        if self.probability_fake is None:
            return None
        return self.probability_fake if self.label == self.Label.FAKE else 1.0 - self.probability_fake

    @cached_property
    def video_frames(self) -> list:
        """A video's frames, read once however often a page or an answer shows them; none for an image (no query)."""
        return list(self.frames.all()) if self.kind == self.Kind.VIDEO else []

    # Its pictures, by the name pages and the API use for them: each is a file field of the same name.
    PICTURES = ("original", "thumbnail", "heatmap", "overlay")

    def own_files(self) -> list:
        """The stored files on the analysis's own row (its faces' pictures are on theirs)."""
        return [f for f in (getattr(self, kind) for kind in self.PICTURES) if f]

    def owned_files(self) -> list:
        """Every stored file of the analysis, its faces' and frames' pictures included."""
        faces = [face.overlay for face in self.faces.all() if face.overlay]
        return self.own_files() + faces + [frame.picture for frame in self.frames.all() if frame.picture]


class IdempotencyKey(models.Model):
    """An API client's Idempotency-Key and the upload it answered: a retry of the same request gets that analysis."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    sha256 = models.CharField("SHA-256 of the file", max_length=64)
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="idempotency_keys")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="unique_idempotency_key")]

    def __str__(self) -> str:
        return f"{self.key} → {self.analysis_id}"


class AnalysisFace(models.Model):
    """One face of an analysed image, as a face model saw it: where it is and what the model said of it."""

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="faces")
    number = models.PositiveSmallIntegerField(help_text="1 for the largest face, then by size.")
    # The face box in the uploaded image's pixels (after its EXIF orientation).
    left = models.PositiveIntegerField()
    top = models.PositiveIntegerField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    detection_score = models.FloatField(help_text="The face detector's confidence.")
    probability_fake = models.FloatField()
    label = models.CharField(max_length=10, choices=Analysis.Label.choices)
    # The framed face the model saw, with its Grad-CAM heatmap laid over it.
    overlay = models.FileField(storage=get_results_storage, upload_to="results/", blank=True, max_length=300)

    class Meta:
        ordering = ["analysis", "number"]
        constraints = [models.UniqueConstraint(fields=["analysis", "number"], name="unique_face_number")]

    def __str__(self) -> str:
        return f"face {self.number} of {self.analysis}"

    @property
    def verdict(self) -> str | None:
        return self.analysis.verdict_for(self.probability_fake)

    @property
    def box(self) -> dict:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}


class AnalysisFrame(models.Model):
    """One sampled frame of an analysed video: when it is shown, what the model said of it and of each face."""

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="frames")
    number = models.PositiveIntegerField(help_text="1 for the first sampled frame, then in time order.")
    timestamp_s = models.FloatField("time (s)")
    probability_fake = models.FloatField(help_text="The frame's most suspicious face's, or the whole frame's.")
    label = models.CharField(max_length=10, choices=Analysis.Label.choices)
    scope = models.CharField(max_length=10, choices=Analysis.Scope.choices)
    # Each judged face: {"track", "left", "top", "width", "height", "detection_score", "probability_fake"}; the box
    # in the video's displayed pixels, "track" the same number for the same face across frames.
    faces = models.JSONField(default=list, blank=True)
    # The frame with its heatmap and face boxes drawn over it.
    picture = models.FileField(storage=get_results_storage, upload_to="results/", blank=True, max_length=300)

    class Meta:
        ordering = ["analysis", "number"]
        constraints = [models.UniqueConstraint(fields=["analysis", "number"], name="unique_frame_number")]

    def __str__(self) -> str:
        return f"frame {self.number} ({self.timestamp_s:.1f} s) of {self.analysis}"

    @property
    def verdict(self) -> str | None:
        return self.analysis.verdict_for(self.probability_fake)


class ModelEvaluation(models.Model):
    """The metrics of a detector model on one dataset folder, measured by a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    detector_model = models.ForeignKey(DetectorModel, on_delete=models.CASCADE, related_name="evaluations")
    dataset_path = models.CharField(max_length=500)
    # An evaluation on a version of the regression set (confirmed user reports) rather than a dataset folder.
    regression_set = models.ForeignKey(
        "RegressionSet", on_delete=models.SET_NULL, null=True, blank=True, related_name="evaluations"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    error_message = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True)
    roc_curve = models.FileField(upload_to="evaluations/", blank=True, max_length=300)
    pr_curve = models.FileField(upload_to="evaluations/", blank=True, max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.detector_model} on {self.dataset_path}"


class AnalysisBatch(models.Model):
    """Files submitted together (several in one API request, or one ZIP): one ID for their progress and results."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="analysis_batches")
    source = models.CharField(max_length=10, choices=Analysis.Source.choices, default=Analysis.Source.API)
    name = models.CharField(max_length=255, blank=True, help_text="The ZIP's name, if it came as one.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "analysis batches"

    def __str__(self) -> str:
        return f"batch {self.public_id}"


class VerdictFlag(models.Model):
    """A user's report that a verdict is wrong: the label they say is right, why, and whether the image may join the
    regression set. Staff confirm or reject it."""

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for review"
        CONFIRMED = "confirmed", "Confirmed"
        REJECTED = "rejected", "Rejected"

    # Kept when the analysis is deleted: a confirmed flag's copy was consented to for the regression set. Deleting the
    # account deletes the flags and their copies.
    analysis = models.ForeignKey(Analysis, on_delete=models.SET_NULL, null=True, blank=True, related_name="flags")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="verdict_flags")
    label = models.CharField("the right label", max_length=10, choices=Analysis.Label.choices)
    note = models.TextField(blank=True, max_length=2000)
    # Recorded when flagging: the owner agreed that the file may be kept in the regression set.
    consent = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # What the analysis said when it was flagged (the analysis may be re-run or deleted later).
    model_version = models.CharField(max_length=160, blank=True)
    probability_fake = models.FloatField(null=True, blank=True)
    # A copy of the file, kept once a flag with consent is confirmed: the regression set's own, whatever retention
    # later does to the original.
    image = models.FileField(upload_to="regression/", blank=True, max_length=300)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["analysis", "owner"], name="one_flag_per_analysis_and_user")]

    def __str__(self) -> str:
        return f"{self.analysis} flagged as {self.label}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    @classmethod
    def record(cls, *, analysis: Analysis, owner, label: str, note: str, consent: bool) -> "VerdictFlag | None":
        """The owner's flag of the analysis, created or (while still open) updated, with what the analysis says now;
        None when it was already reviewed: a review is final."""
        values = {
            "label": label,
            "note": note,
            "consent": consent,
            "model_version": analysis.model_version,
            "probability_fake": analysis.probability_fake,
        }
        with transaction.atomic():
            flag, created = cls.objects.select_for_update().get_or_create(
                analysis=analysis, owner=owner, defaults=values
            )
            if created:
                return flag
            if not flag.is_open:
                return None
            for name, value in values.items():
                setattr(flag, name, value)
            flag.save(update_fields=list(values))
        return flag

    def confirm(self, *, reviewer) -> bool:
        """Open → confirmed by this reviewer; False (nothing changes) when it was already reviewed."""
        return self._review(self.Status.CONFIRMED, reviewer)

    def reject(self, *, reviewer) -> bool:
        """Open → rejected by this reviewer; False (nothing changes) when it was already reviewed."""
        return self._review(self.Status.REJECTED, reviewer)

    def _review(self, status: str, reviewer) -> bool:
        with transaction.atomic():
            current = VerdictFlag.objects.select_for_update().filter(pk=self.pk).first()
            if current is None or not current.is_open:  # reviewed meanwhile, by someone else or in another tab
                return False
            self.status, self.reviewed_by, self.reviewed_at = status, reviewer, timezone.now()
            self.save(update_fields=["status", "reviewed_by", "reviewed_at"])
        return True


class RegressionSet(models.Model):
    """A version of the regression set: the confirmed, consented flags' files with their right labels, frozen."""

    version = models.PositiveIntegerField(unique=True)
    # [{"flag": id, "sha256": ..., "label": "real"|"fake", "file": storage name}, ...]
    manifest = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"regression set v{self.version} ({len(self.manifest)} files)"


class WebhookEndpoint(models.Model):
    """Where a user wants finished analyses POSTed, signed with the endpoint's secret (HMAC-SHA256)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    secret = models.CharField(max_length=128)
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to an endpoint, with every attempt's outcome: the delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    analysis = models.ForeignKey(
        Analysis, on_delete=models.SET_NULL, null=True, blank=True, related_name="webhook_deliveries"
    )
    event = models.CharField(max_length=50)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint}"

    # --- State transitions: pending → succeeded (a 2xx answer) or failed (no attempts left) ---------------------

    def record_attempt(self, *, response_status: int | None = None, error: str = "", max_attempts: int) -> bool:
        """Note one attempt's outcome (the receiver's status, or why there was none); True when it is to be tried
        again. Each failed attempt adds a line to `error`, so the log keeps every attempt, not just the last."""
        now = timezone.now()
        self.attempts += 1
        self.last_attempt_at = now
        self.response_status = response_status
        if not error and response_status is not None and 200 <= response_status < 300:
            self.status, self.delivered_at = self.Status.SUCCEEDED, now
        else:
            reason = error or f"the receiver answered HTTP {response_status}"
            self.error = f"{self.error}\n" if self.error else ""
            self.error += f"{now:%Y-%m-%d %H:%M:%S} attempt {self.attempts}: {reason}"
            if self.attempts >= max_attempts:
                self.status = self.Status.FAILED
        fields = ["attempts", "last_attempt_at", "response_status", "status", "delivered_at", "error"]
        self.save(update_fields=fields)
        return self.status == self.Status.PENDING

    def give_up(self, reason: str) -> None:
        """Pending → failed without another attempt, the reason added to the log."""
        self.error = (f"{self.error}\n" if self.error else "") + f"{timezone.now():%Y-%m-%d %H:%M:%S} {reason}"
        self.status = self.Status.FAILED
        self.save(update_fields=["status", "error"])

    @property
    def last_error(self) -> str:
        return self.error.rsplit("\n", 1)[-1]
