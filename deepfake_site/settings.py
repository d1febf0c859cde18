"""Settings for the deepfake detection platform, read from the environment.

Without any environment variable the product runs on embedded defaults: SQLite and media under DATA_DIR, analyses
run in-process, debug on. Production is switched on by the environment (see README.md and .env.example).
"""

import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

import ml
from deepfake_site.env import env_bool, env_choice, env_float, env_int, env_list, env_str
from deepfake_site.storage_config import storages_from_env

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (at least 50 random characters).")
    SECRET_KEY = "insecure-development-key-only-used-while-DEBUG-is-on-0123456789"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "detection",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything that could read the request body.
    "detection.middleware.UploadSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "deepfake_site.urls"
WSGI_APPLICATION = "deepfake_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deepfake_site.context_processors.site",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The in-process analysis runner writes from a second thread: wait for the lock instead of failing at once.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    # A file (worker subprocesses in tests open it too), one per test run so that parallel runs never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts ---------------------------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

EMAIL_HOST = env_str("EMAIL_HOST")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
    EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Deepfake Detector <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Internationalisation ---------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and media -------------------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(DATA_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
if DEBUG:
    # WhiteNoise serves from the app folders while debugging but still expects STATIC_ROOT to exist.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))

# "default": originals, model weights, evaluation charts (MEDIA_STORAGE: local, s3). "results": thumbnails, heatmaps
# and overlays (RESULTS_STORAGE: local, s3, cloudinary; follows MEDIA_STORAGE). See deepfake_site/storage_config.py.
STORAGES = storages_from_env(media_root=MEDIA_ROOT, debug=DEBUG)

# --- Security ---------------------------------------------------------------------------------------------------

SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# The container health check probes /health over plain HTTP from inside the container.
SECURE_REDIRECT_EXEMPT = [r"^health$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# How many proxies in front of the site append to X-Forwarded-For (0: none, the peer's address is the client's).
# Per-address limits (sign-in lockout, password resets) count the client's address, never a proxy's.
NUM_PROXIES = env_int("NUM_PROXIES", 0, minimum=0, maximum=5)

# Content-Security-Policy (django-csp): everything from this site only, no inline or evaluated script. Inline
# style attributes (a meter's width, a face box's place) are allowed; scripts and styles come from static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],  # pictures are served by the site itself, never by the storage
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],  # Redoc renders in a worker made from a blob
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Sign-in lockout (django-axes), on the site's and the admin's sign-in pages: after LOGIN_FAILURE_LIMIT failed
# attempts for one username, or from one address, further attempts are refused for LOGIN_LOCKOUT_MINUTES.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=100)
AXES_COOLOFF_TIME = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own: an account, or an address
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_CLIENT_IP_CALLABLE = "deepfake_site.client_ip.client_ip"
AXES_VERBOSE = False

# --- Logging ----------------------------------------------------------------------------------------------------

LOG_LEVEL = env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")).upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Replaces Django's own handlers for its loggers, so each record is printed once.
    "loggers": {"django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}},
}

# --- Product ----------------------------------------------------------------------------------------------------

SITE_NAME = env_str("SITE_NAME", "Deepfake Detector")

# --- Uploads and analyses -------------------------------------------------------------------------------------

MAX_FILE_SIZE_MB = env_int("MAX_FILE_SIZE_MB", 16, minimum=1, maximum=200)
MAX_FILE_SIZE = MAX_FILE_SIZE_MB * 1024 * 1024
# Larger uploads go to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
MAX_IMAGE_MEGAPIXELS = env_int("MAX_IMAGE_MEGAPIXELS", 50, minimum=1, maximum=500)
# A verdict is "uncertain" when the probability of fake is closer than this to the model's threshold.
UNCERTAIN_MARGIN = env_float("UNCERTAIN_MARGIN", 0.1, minimum=0.0, maximum=0.5)
# Also score each image's re-encodings (JPEG 85 and 70, resized, cropped) in the same batch and say whether the
# verdict holds (ml.stability): 20-40 % more time per image (python -m ml.bench_stability), so it can be turned off.
STABILITY_CHECK = env_bool("STABILITY_CHECK", True)
ANALYSIS_SOFT_TIME_LIMIT = env_int("ANALYSIS_SOFT_TIME_LIMIT", 120, minimum=5)
ANALYSIS_TIME_LIMIT = env_int("ANALYSIS_TIME_LIMIT", 180, minimum=10)
if ANALYSIS_TIME_LIMIT <= ANALYSIS_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("ANALYSIS_TIME_LIMIT must be larger than ANALYSIS_SOFT_TIME_LIMIT.")
ANALYSIS_MAX_ATTEMPTS = env_int("ANALYSIS_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
# A queued analysis whose message has sat in the broker this long is sent again by the sweeper.
ANALYSIS_QUEUE_TIMEOUT = env_int("ANALYSIS_QUEUE_TIMEOUT", 3600, minimum=60)

# Videos (MP4, MOV, WebM): their own size and length limits, frames sampled at a rate with a cap, and time limits
# that grow with the frames planned (Analysis.soft_time_limit). They run on their own Celery queue.
MAX_VIDEO_SIZE_MB = env_int("MAX_VIDEO_SIZE_MB", 100, minimum=1, maximum=2000)
MAX_VIDEO_SIZE = MAX_VIDEO_SIZE_MB * 1024 * 1024
MAX_VIDEO_SECONDS = env_int("MAX_VIDEO_SECONDS", 300, minimum=1, maximum=6 * 3600)
VIDEO_FRAMES_PER_SECOND = env_float("VIDEO_FRAMES_PER_SECOND", 1.0, minimum=0.01, maximum=30.0)
VIDEO_MAX_FRAMES = env_int("VIDEO_MAX_FRAMES", 120, minimum=1, maximum=2000)
VIDEO_FRAME_TIME_LIMIT = env_int("VIDEO_FRAME_TIME_LIMIT", 5, minimum=1, maximum=600)
VIDEO_QUEUE = "videos"
# Reading a file's metadata (EXIF, XMP, PNG text, C2PA) stops after this many seconds: it never holds up a verdict.
PROVENANCE_TIME_LIMIT = env_float("PROVENANCE_TIME_LIMIT", 5.0, minimum=0.1, maximum=120.0)

# Privacy: keep uploaded originals (each upload may choose otherwise), and for how long. Without the original, an
# analysis keeps its verdict, a small thumbnail, the heatmap and the overlay.
KEEP_ORIGINALS = env_bool("KEEP_ORIGINALS", True)
# Kept originals are deleted this many days after upload (hourly by beat, or `manage.py expire_originals`); 0: never.
ORIGINALS_RETENTION_DAYS = env_int("ORIGINALS_RETENTION_DAYS", 30, minimum=0)

# --- Detector models and inference ------------------------------------------------------------------------------

# Seed-design names: a model on the Hugging Face Hub that `manage.py ensure_active_model` registers when no model
# is active (instead of training the starter model), and the default source for hub models added in the admin.
HUGGINGFACE_REPO = env_str("HUGGINGFACE_REPO")
MODEL_FILENAME = env_str("MODEL_FILENAME", "model.safetensors")
HUGGINGFACE_REVISION = env_str("HUGGINGFACE_REVISION")
HUGGINGFACE_TOKEN = env_str("HUGGINGFACE_TOKEN")
# A Hub mirror or a private Hub-compatible server; empty: huggingface_hub's default (HF_ENDPOINT, else huggingface.co).
HUGGINGFACE_ENDPOINT = env_str("HUGGINGFACE_ENDPOINT")
MODEL_ARCHITECTURE = env_choice("MODEL_ARCHITECTURE", "resnet50", ml.ARCHITECTURE_NAMES)
# Weights fetched from remote storage (S3) are kept here, named by their SHA-256.
MODEL_CACHE_DIR = Path(env_str("MODEL_CACHE_DIR", str(DATA_DIR / "model-cache")))
INFERENCE_DEVICE = env_choice("INFERENCE_DEVICE", "auto", ("auto", "cpu", "cuda"))
INFERENCE_BACKEND = env_choice("INFERENCE_BACKEND", "auto", ml.BACKENDS)
INFERENCE_PRECISION = env_choice("INFERENCE_PRECISION", "auto", ml.INFERENCE_PRECISIONS)
# PyTorch threads per worker process; 0 shares the machine's cores between CELERY_WORKER_CONCURRENCY processes.
TORCH_THREADS = env_int("TORCH_THREADS", 0, minimum=0, maximum=256)

# --- Celery -----------------------------------------------------------------------------------------------------

# Empty means no broker: analyses run in a background thread of the web process (the embedded default).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 3.0, minimum=0.1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redelivery after a worker dies is what makes acks_late safe; the timeout must outlast the longest task.
LONGEST_TASK_SECONDS = ANALYSIS_TIME_LIMIT + VIDEO_FRAME_TIME_LIMIT * VIDEO_MAX_FRAMES
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", max(3600, LONGEST_TASK_SECONDS + 60),
                                  minimum=LONGEST_TASK_SECONDS + 1)
}  # fmt: skip
# Videos go to a queue of their own, so a long video never delays anyone's image (docs/deploy.md: a worker each).
CELERY_TASK_ROUTES = {"detection.tasks.video_run_task": {"queue": VIDEO_QUEUE}}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task at a time per worker process: analyses are long, and a prefetched task would wait behind another.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 1, minimum=1, maximum=64)
# Each pool process loads the active model before it reports for work (worker_process_init); compiling it for
# OpenVINO takes longer than Celery's default 4 s allowance on a busy machine, and the pool would kill it forever.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env_float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 120.0, minimum=4.0)
CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-analyses": {"task": "detection.tasks.analysis_sweep_task", "schedule": 300.0},
    "expire-originals": {"task": "detection.tasks.analysis_originals_expire_task", "schedule": 3600.0},
}
HEALTH_BROKER_TIMEOUT = 2.0
# A secret that lets a monitoring probe read /health's details (Authorization: Bearer ...); staff see them anyway.
HEALTH_TOKEN = env_str("HEALTH_TOKEN", "")

# --- Cache ------------------------------------------------------------------------------------------------------

# Shared by every process when set (API request counts need that with several web processes); empty: each process
# keeps its own in memory.
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} is not a Redis URL (redis://host:6379/1).")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- REST API ---------------------------------------------------------------------------------------------------


def _throttle_rate(name: str, default: str) -> str | None:
    """A request rate like "120/minute" (second, minute, hour, day), or None for "off"."""
    value = env_str(name, default)
    if value.lower() == "off":
        return None
    if not re.fullmatch(r"[1-9]\d*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name}={value!r} is not a rate like 120/minute, 10/second, 1000/day or off.")
    return value


# API requests per user, whichever of their tokens (or their browser session) sends them; over the limit the answer
# is 429 with Retry-After.
API_THROTTLE_RATE = _throttle_rate("API_THROTTLE_RATE", "120/minute")
# Uploads cost an analysis each, so they have a limit of their own, per user, counted across the web pages, the API
# and every token: each file is one upload.
UPLOAD_THROTTLE_RATE = _throttle_rate("UPLOAD_THROTTLE_RATE", "30/minute")
# Files one upload page request may carry (the page itself sends one file per request).
MAX_FILES_PER_UPLOAD = env_int("MAX_FILES_PER_UPLOAD", 20, minimum=1, maximum=100)
# Files one API batch may carry, as repeated `files` fields or as the entries of one ZIP, and how much a ZIP's
# entries may add up to once extracted (checked from its headers before anything is extracted).
MAX_FILES_PER_BATCH = env_int("MAX_FILES_PER_BATCH", 100, minimum=1, maximum=1000)
MAX_BATCH_UNCOMPRESSED_MB = env_int("MAX_BATCH_UNCOMPRESSED_MB", 500, minimum=1, maximum=10_000)
MAX_BATCH_UNCOMPRESSED = MAX_BATCH_UNCOMPRESSED_MB * 1024 * 1024
# Django's parser stops a request with more files than any path accepts; each path then holds its own count.
DATA_UPLOAD_MAX_NUMBER_FILES = max(MAX_FILES_PER_UPLOAD, MAX_FILES_PER_BATCH)
# Password reset e-mails asked for, per address and per e-mail (django-ratelimit, in the cache).
PASSWORD_RESET_RATE = _throttle_rate("PASSWORD_RESET_RATE", "3/hour")
RATELIMIT_FAIL_OPEN = True  # with the shared cache down, serving requests matters more than counting them
# The longest an upload may ask to wait for its result (?wait=); keep it below the web server's request timeout.
API_MAX_WAIT_SECONDS = env_int("API_MAX_WAIT_SECONDS", 20, minimum=0, maximum=300)

# --- Requests to user-given URLs: webhooks, analyses from a URL (detection.outbound) -----------------------------

# Only for tests and closed networks: lets user-given URLs reach private, loopback and link-local addresses.
OUTBOUND_ALLOW_PRIVATE_NETWORKS = env_bool("OUTBOUND_ALLOW_PRIVATE_NETWORKS", False)
URL_FETCH_TIMEOUT_SECONDS = env_int("URL_FETCH_TIMEOUT_SECONDS", 15, minimum=1, maximum=300)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1, maximum=60)
# The first try and the retries after a failure (no 2xx): retry n waits WEBHOOK_RETRY_DELAYS[n-1] seconds (the last
# value for any retry past the list). Each wait must stay under the broker's visibility timeout: Redis hands a task
# that waited longer to a second worker, and the delivery would be sent twice.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1, maximum=20)
try:
    WEBHOOK_RETRY_DELAYS = [
        float(delay) for delay in env_list("WEBHOOK_RETRY_DELAYS", ["30", "120", "600", "1800", "3000"])
    ]
except ValueError:
    raise ImproperlyConfigured("WEBHOOK_RETRY_DELAYS must be seconds separated by commas, e.g. 30,120,600.") from None
if not WEBHOOK_RETRY_DELAYS or not all(
    0 <= delay < CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] - 60 for delay in WEBHOOK_RETRY_DELAYS
):
    raise ImproperlyConfigured(
        "WEBHOOK_RETRY_DELAYS must each be at least 0 and a minute shorter than CELERY_VISIBILITY_TIMEOUT "
        f"({CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']} s): a longer wait is delivered twice."
    )
WEBHOOK_MAX_ENDPOINTS = env_int("WEBHOOK_MAX_ENDPOINTS", 10, minimum=1, maximum=100)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "detection.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "detection.api.negotiation.JsonFallbackNegotiation",
    "DEFAULT_METADATA_CLASS": "detection.api.metadata.EndpointMetadata",
    "DEFAULT_THROTTLE_CLASSES": ["detection.throttling.ApiRateThrottle"],
    "EXCEPTION_HANDLER": "detection.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "multipart",
}

SPECTACULAR_SETTINGS = {
    "TITLE": f"{SITE_NAME} API",
    "DESCRIPTION": (
        "Submit images for deepfake detection and read the verdicts, heatmaps and detector models. "
        "Authenticate with a personal API token: `Authorization: Bearer <token>`. Every error has the shape "
        '`{"error": {"code": ..., "message": ..., "field": ...}}`.'
    ),
    "VERSION": "1",
    # Named apart from the analyses' own status, which shares the field name.
    "ENUM_NAME_OVERRIDES": {
        "AnalysisStatusEnum": "detection.models.Analysis.Status",
        "VerdictFlagStatusEnum": "detection.models.VerdictFlag.Status",
    },
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
