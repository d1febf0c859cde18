"""Choosing storages by environment: each choice builds the right backend, and a bad value stops start-up."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from deepfake_site.storage_config import storages_from_env

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = (
    "MEDIA_STORAGE",
    "RESULTS_STORAGE",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_S3_ENDPOINT_URL",
    "AWS_S3_REGION_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_S3_ADDRESSING_STYLE",
    "AWS_LOCATION",
    "CLOUDINARY_URL",
    "CLOUDINARY_FOLDER",
    "SIGNED_URL_EXPIRE_SECONDS",
    "STORAGE_TIMEOUT",
)


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def build(**variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return storages_from_env(media_root=tmp_path, debug=False)

    return build


def test_without_variables_everything_is_on_local_disk(env, tmp_path):
    storages = env()

    local = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path}}
    assert storages["default"] == storages["results"] == local
    assert storages["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"


def test_s3_for_everything_with_private_objects_and_expiring_urls(env):
    storages = env(
        MEDIA_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="detector-media",
        AWS_S3_ENDPOINT_URL="https://minio.internal:9000",
        AWS_S3_REGION_NAME="eu-central-1",
        AWS_ACCESS_KEY_ID="AKIA",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_S3_ADDRESSING_STYLE="path",
        AWS_LOCATION="/detector/",
        SIGNED_URL_EXPIRE_SECONDS="120",
        STORAGE_TIMEOUT="4",
    )

    def without_client(storage):
        return {**storage["OPTIONS"], "client_config": None}

    # Results follow MEDIA_STORAGE unless told otherwise.
    assert storages["results"]["BACKEND"] == storages["default"]["BACKEND"]
    assert without_client(storages["results"]) == without_client(storages["default"])
    s3 = storages["default"]
    assert s3["BACKEND"] == "storages.backends.s3.S3Storage"
    options = s3["OPTIONS"]
    assert options["bucket_name"] == "detector-media" and options["endpoint_url"] == "https://minio.internal:9000"
    assert (options["region_name"], options["access_key"], options["secret_key"]) == ("eu-central-1", "AKIA", "secret")
    assert options["location"] == "detector"
    assert options["default_acl"] is None and options["querystring_auth"] is True
    assert options["querystring_expire"] == 120
    config = options["client_config"]
    assert config.s3 == {"addressing_style": "path"} and config.signature_version == "s3v4"
    assert config.connect_timeout == config.read_timeout == 4.0


def test_without_keys_boto3_finds_its_own_credentials(env):
    options = env(MEDIA_STORAGE="s3", AWS_STORAGE_BUCKET_NAME="b")["default"]["OPTIONS"]

    assert options["access_key"] is None and options["secret_key"] is None and options["endpoint_url"] is None


def test_local_originals_with_cloudinary_results(env, tmp_path):
    storages = env(RESULTS_STORAGE="cloudinary", CLOUDINARY_URL="cloudinary://key:se%2Fcret@my-cloud")

    assert storages["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert storages["results"] == {
        "BACKEND": "detection.cloudinary_storage.CloudinaryStorage",
        "OPTIONS": {
            "cloud_name": "my-cloud",
            "api_key": "key",
            "api_secret": "se/cret",
            "expire": 300,
            "timeout": 10.0,
            "folder": "",
        },
    }


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"MEDIA_STORAGE": "ftp"}, "MEDIA_STORAGE='ftp' is not one of: local, s3"),
        ({"MEDIA_STORAGE": "cloudinary"}, "MEDIA_STORAGE='cloudinary' is not one of: local, s3"),
        ({"RESULTS_STORAGE": "gcs"}, "RESULTS_STORAGE='gcs' is not one of: local, s3, cloudinary"),
        ({"MEDIA_STORAGE": "s3"}, "AWS_STORAGE_BUCKET_NAME must be set"),
        ({"RESULTS_STORAGE": "s3"}, "AWS_STORAGE_BUCKET_NAME must be set"),
        (
            {"MEDIA_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ENDPOINT_URL": "minio:9000"},
            "AWS_S3_ENDPOINT_URL='minio:9000' is not an http(s) URL",
        ),
        (
            {"MEDIA_STORAGE": "s3", "AWS_STORAGE_BUCKET_NAME": "b", "AWS_S3_ADDRESSING_STYLE": "dns"},
            "AWS_S3_ADDRESSING_STYLE='dns' is not one of: auto, path, virtual",
        ),
        ({"RESULTS_STORAGE": "cloudinary"}, "CLOUDINARY_URL must be set"),
        ({"SIGNED_URL_EXPIRE_SECONDS": "forever"}, "SIGNED_URL_EXPIRE_SECONDS='forever' is not a whole number"),
        ({"SIGNED_URL_EXPIRE_SECONDS": "5"}, "SIGNED_URL_EXPIRE_SECONDS=5 is below the minimum of 10"),
        ({"STORAGE_TIMEOUT": "0"}, "STORAGE_TIMEOUT=0.0 is below the minimum of 1.0"),
    ],
)
def test_bad_values_are_refused_with_the_variables_name(env, variables, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        env(**variables)


def test_the_process_does_not_start_on_a_bad_storage_choice():
    environment = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**environment, "RESULTS_STORAGE": "dropbox"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured: RESULTS_STORAGE='dropbox' is not one of: local, s3, cloudinary." in result.stderr
