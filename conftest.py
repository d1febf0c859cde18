"""Project-wide test set-up: which real services this run has, and the fixtures every app uses.

Under CI=true the PostgreSQL, Redis and browser tests are required: a missing service stops the run with an error
instead of skipping. Without CI the suite runs on whatever DATABASE_URL says (SQLite by default) and skips the
tests whose service is missing, with the reason in the summary.
"""

import os
import shutil
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

IS_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _service_state() -> dict[str, str | None]:
    """For each marker, None when its service is here, else why not."""
    vendor = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return {
        "postgres": None
        if vendor == "postgresql"
        else f"needs PostgreSQL, this run uses {vendor} (set DATABASE_URL, or CI=true for the local server)",
        "redis": None if _reachable(REDIS_URL) else f"needs Redis at {REDIS_URL}, which does not answer",
        "browser": None if Path(CHROMIUM).exists() else f"needs Chromium at {CHROMIUM} (apt-get install chromium)",
    }


def pytest_report_header(config):
    lines = [f"CI={'true' if IS_CI else 'false'}; database: {settings.DATABASES['default']['ENGINE']}"]
    for marker, missing in _service_state().items():
        lines.append(f"{marker}: {'available' if missing is None else 'MISSING, ' + missing}")
    return lines


def pytest_collection_modifyitems(config, items):
    state = _service_state()
    if IS_CI:
        missing = {marker: why for marker, why in state.items() if why}
        if missing:
            details = "; ".join(f"{marker}: {why}" for marker, why in missing.items())
            raise pytest.UsageError(f"CI=true requires every real service, and some are missing: {details}")
        return
    for item in items:
        for marker, why in state.items():
            if why and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=f"[{marker}] {why}"))


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Every test writes media into its own temporary folder, never into the developer's data folder."""
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    local = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": media}}
    settings.STORAGES = {**settings.STORAGES, "default": local, "results": local}
    return media


@pytest.fixture(autouse=True)
def _fresh_request_limits():
    """Each test starts with no requests counted (the limits live in the cache, which outlives a test)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def password():
    return "correct-horse-battery-staple-42"


@pytest.fixture
def user(django_user_model, password):
    return django_user_model.objects.create_user(username="alice", email="alice@example.com", password=password)


@pytest.fixture
def other_user(django_user_model, password):
    return django_user_model.objects.create_user(username="mallory", email="mallory@example.com", password=password)


@pytest.fixture
def user_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def redis_url():
    return REDIS_URL


@pytest.fixture
def chromium_path():
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists()
    return CHROMIUM


def picture(width: int = 320, height: int = 240, *, seed: int = 0):
    """A synthetic photo-like RGB picture: smooth gradients, a few shapes and mild sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            128 + 100 * np.sin(x / (17 + 5 * seed % 7) + y / 43),
            128 + 90 * np.cos(y / (23 + seed % 5)),
            128 + 80 * np.sin((x + y) / 31),
        ],
        axis=-1,
    )
    image = Image.fromarray(np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        w, h = int(rng.integers(10, width // 2)), int(rng.integers(10, height // 2))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return image


def image_bytes(width: int = 320, height: int = 240, *, fmt: str = "JPEG", seed: int = 0, **save_options) -> bytes:
    import io

    buffer = io.BytesIO()
    picture(width, height, seed=seed).save(buffer, format=fmt, **save_options)
    return buffer.getvalue()


def astronaut_face(side: int = 160):
    """The astronaut's face (ml.probe.astronaut_face), side × side."""
    from ml.probe import astronaut_face as face

    return face().resize((side, side))


def faceless_photo(width: int = 1000, height: int = 660):
    """scikit-image's coffee-cup photo (no face), scaled to width × height."""
    import skimage.data
    from PIL import Image

    return Image.fromarray(skimage.data.coffee()).convert("RGB").resize((width, height))


def photo_with_faces(places: list[tuple[int, int, int]], *, width: int = 1000, height: int = 660):
    """A faceless photo with the astronaut's face pasted at each (left, top, side)."""
    photo = faceless_photo(width, height)
    for left, top, side in places:
        photo.paste(astronaut_face(side), (left, top))
    return photo


def png_bomb(side: int = 30_000) -> bytes:
    """A valid black-and-white PNG of side × side pixels: about 100 KB on disk, 900 megapixels once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte, then 1 bit per pixel
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row * 1000) for _ in range(side // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.fixture
def make_image_bytes():
    """Encoded image files made on the spot: make_image_bytes(width, height, fmt="PNG", seed=1)."""
    return image_bytes


@pytest.fixture(scope="session")
def detector_weights(tmp_path_factory) -> Path:
    """A resnet18 detector's weights as .safetensors: random, but calibrated to give spread-out probabilities."""
    from ml.tests.conftest import calibrated_model
    from ml.weights import save_weights

    path = tmp_path_factory.mktemp("weights") / "test-detector.safetensors"
    save_weights(calibrated_model("resnet18"), path)
    return path


@pytest.fixture
def active_model(db, settings, detector_weights):
    """An active resnet18 detector model, marked validated without loading it (test_detector_models covers that).

    Tests use the PyTorch backend: it loads in a fraction of a second, where OpenVINO compiles for seconds (the
    worker tests and the ml tests cover OpenVINO).
    """
    from detection import services
    from detection.models import DetectorModel

    settings.INFERENCE_BACKEND = "torch"
    settings.INFERENCE_PRECISION = "fp32"  # results comparable with fp32 references on any CPU, bf16-capable or not
    detector_model = DetectorModel(
        name="test-detector", version="1", architecture="resnet18", status=DetectorModel.Status.READY
    )
    services.detector_model_store_weights(detector_model=detector_model, path=detector_weights)
    detector_model.save()
    return services.detector_model_activate(detector_model=detector_model)


@pytest.fixture
def active_face_model(active_model):
    """The active test detector, as a face model: photos are analysed face by face, framed as ml.faces frames them."""
    from ml.faces import FRAMING

    active_model.face_framing = FRAMING
    active_model.save(update_fields=["face_framing"])
    return active_model


def jpeg_bytes(image, quality: int = 92) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


# --- S3 through a real (moto) server ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_s3_endpoint():
    """A moto S3 server on a free port of 127.0.0.1, shared by the run; each test gets a bucket of its own."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class S3Bucket:
    """A bucket on the moto server, read with plain boto3 to see what the product really stored."""

    def __init__(self, endpoint: str, name: str):
        import boto3

        self.endpoint, self.name = endpoint, name
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )
        self.client.create_bucket(Bucket=name)

    def object_keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


@pytest.fixture
def s3_bucket(settings, monkeypatch, tmp_path, moto_s3_endpoint):
    """Originals, results and model weights in a fresh S3 bucket, configured through the same environment
    variables as production (MEDIA_STORAGE=s3 and the AWS_* variables). Request it before `active_model`, so the
    model's weights are stored in the bucket too."""
    import uuid

    from deepfake_site.storage_config import storages_from_env

    bucket = S3Bucket(moto_s3_endpoint, f"test-{uuid.uuid4().hex[:16]}")
    for name, value in {
        "MEDIA_STORAGE": "s3",
        "RESULTS_STORAGE": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket.name,
        "AWS_S3_ENDPOINT_URL": moto_s3_endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_ADDRESSING_STYLE": "path",
    }.items():
        monkeypatch.setenv(name, value)
    storages = storages_from_env(media_root=settings.MEDIA_ROOT, debug=True)
    settings.STORAGES = {**settings.STORAGES, "default": storages["default"], "results": storages["results"]}
    settings.MODEL_CACHE_DIR = tmp_path / "model-cache"
    return bucket
