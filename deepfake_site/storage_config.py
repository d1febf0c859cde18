"""settings.STORAGES from the environment: where originals, model weights and result pictures are kept.

MEDIA_STORAGE (local, s3) holds uploaded originals, model weights and evaluation charts; RESULTS_STORAGE (local, s3,
cloudinary) holds thumbnails, heatmaps and overlays and follows MEDIA_STORAGE unless set. A choice whose required
variables are missing or malformed stops the process at start-up, naming the variable.

Nothing in these storages is public: S3 objects are private (no ACL) and their URLs carry a signature that expires
after SIGNED_URL_EXPIRE_SECONDS; Cloudinary assets are uploaded as "authenticated" and read through signed,
expiring download URLs; local files are only served through the owner-checked media view.
"""

from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from deepfake_site.env import env_choice, env_float, env_int, env_str

MEDIA_CHOICES = ("local", "s3")
RESULTS_CHOICES = ("local", "s3", "cloudinary")


def local_storage(location: Path) -> dict:
    return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": location}}


def s3_storage(*, expire: int, timeout: float) -> dict:
    """django-storages' S3 backend on the AWS_* variables; any S3-compatible service works through the endpoint."""
    from botocore.config import Config

    bucket = env_str("AWS_STORAGE_BUCKET_NAME")
    if not bucket:
        raise ImproperlyConfigured("AWS_STORAGE_BUCKET_NAME must be set when MEDIA_STORAGE or RESULTS_STORAGE is s3.")
    endpoint = env_str("AWS_S3_ENDPOINT_URL") or None
    if endpoint and urlparse(endpoint).scheme not in {"http", "https"}:
        raise ImproperlyConfigured(
            f"AWS_S3_ENDPOINT_URL={endpoint!r} is not an http(s) URL, e.g. https://s3.eu-central-1.amazonaws.com."
        )
    options = {
        "bucket_name": bucket,
        "endpoint_url": endpoint,
        "region_name": env_str("AWS_S3_REGION_NAME") or None,
        # Unset keys leave boto3 to its own chain (instance role, ~/.aws), the usual way on AWS itself.
        "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
        "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
        "location": env_str("AWS_LOCATION").strip("/"),
        "default_acl": None,  # private objects: the bucket's policy decides, and it should grant nothing public
        "querystring_auth": True,
        "querystring_expire": expire,
        "file_overwrite": True,  # names carry the analysis UUID, so an overwrite is the same analysis writing again
        # django-storages ignores its own addressing and signature options once a client config is given.
        "client_config": Config(
            s3={"addressing_style": env_choice("AWS_S3_ADDRESSING_STYLE", "auto", ("auto", "path", "virtual"))},
            signature_version="s3v4",
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    }
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


def cloudinary_credentials(url: str) -> dict:
    """cloud_name, api_key and api_secret from cloudinary://API_KEY:API_SECRET@CLOUD_NAME."""
    parsed = urlparse(url)
    if parsed.scheme != "cloudinary" or not (parsed.hostname and parsed.username and parsed.password):
        raise ImproperlyConfigured(
            "CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME "
            "(copy it from the Cloudinary console's API keys page)."
        )
    return {
        "cloud_name": parsed.hostname,
        "api_key": unquote(parsed.username),
        "api_secret": unquote(parsed.password),
    }


def cloudinary_storage(*, expire: int, timeout: float) -> dict:
    url = env_str("CLOUDINARY_URL")
    if not url:
        raise ImproperlyConfigured("CLOUDINARY_URL must be set when RESULTS_STORAGE is cloudinary.")
    options = {
        **cloudinary_credentials(url),
        "expire": expire,
        "timeout": timeout,
        "folder": env_str("CLOUDINARY_FOLDER").strip("/"),
    }
    return {"BACKEND": "detection.cloudinary_storage.CloudinaryStorage", "OPTIONS": options}


def storages_from_env(*, media_root: Path, debug: bool) -> dict:
    media = env_choice("MEDIA_STORAGE", "local", MEDIA_CHOICES)
    results = env_choice("RESULTS_STORAGE", media, RESULTS_CHOICES)
    expire = env_int("SIGNED_URL_EXPIRE_SECONDS", 300, minimum=10, maximum=7 * 24 * 3600)
    # A storage that is down must fail an upload within seconds, not hold a web process for minutes.
    timeout = env_float("STORAGE_TIMEOUT", 10.0, minimum=1.0, maximum=300.0)

    def build(choice: str) -> dict:
        if choice == "s3":
            return s3_storage(expire=expire, timeout=timeout)
        if choice == "cloudinary":
            return cloudinary_storage(expire=expire, timeout=timeout)
        return local_storage(media_root)

    return {
        "default": build(media),
        "results": build(results),
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
            if debug
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        },
    }
