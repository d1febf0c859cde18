"""The Cloudinary results storage, with the SDK's HTTP layer replaced by a recording fake (no account is reachable).

The fake answers like Cloudinary's Upload and Admin APIs and keeps the uploaded bytes, so the tests can assert the
exact requests the product makes and that a run, a read, a failure and a deletion leave Cloudinary as they should.
"""

import hashlib
import io
import json
import time
from urllib.parse import parse_qs, urlparse

import cloudinary.api_client.call_api
import cloudinary.uploader
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from detection import services
from detection.models import Analysis
from detection.storage import file_signed_url

pytestmark = pytest.mark.django_db

CLOUD, KEY, SECRET = "demo-cloud", "123456789012345", "s3cr3t-api-secret"
API = f"https://api.cloudinary.com/v1_1/{CLOUD}"


def signature(params: dict) -> str:
    """Cloudinary's request signature, computed independently of the SDK: SHA-1 of the sorted parameters and the
    API secret."""
    signed = {k: v for k, v in params.items() if k not in {"file", "api_key", "signature", "resource_type"}}
    return hashlib.sha1(("&".join(f"{k}={signed[k]}" for k in sorted(signed)) + SECRET).encode()).hexdigest()  # noqa: S324


class Response:
    def __init__(self, status: int, body):
        self.status = status
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"x-request-id": "req-1"}


class FakeCloudinary:
    """Stands in for the network: records every request and keeps uploaded assets by public ID."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict]] = []
        self.assets: dict[str, bytes] = {}
        self.fail_upload_after: int | None = None

    def request(self, method, url, fields=None, headers=None, **kwargs):
        fields = dict(fields or {})
        self.requests.append((method, url.split("?")[0], fields))
        path = urlparse(url).path
        if path.endswith("/image/upload"):
            uploads = sum(1 for m, u, _ in self.requests if u.endswith("/image/upload"))
            if self.fail_upload_after is not None and uploads > self.fail_upload_after:
                return Response(420, {"error": {"message": "Rate Limit Exceeded"}})
            _, data = fields["file"]
            self.assets[fields["public_id"]] = data
            return Response(200, {"public_id": fields["public_id"], "format": fields["format"], "version": 1})
        if path.endswith("/image/destroy"):
            found = self.assets.pop(fields["public_id"], None) is not None
            return Response(200, {"result": "ok" if found else "not found"})
        if path.endswith("/image/download"):
            query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
            if query["signature"] != signature(query) or int(query["expires_at"]) < time.time():
                return Response(401, b"")
            data = self.assets.get(query["public_id"])
            return Response(200, data) if data is not None else Response(404, b"")
        if "/resources/image/authenticated/" in path:
            public_id = path.split("/resources/image/authenticated/", 1)[1]
            if public_id in self.assets:
                return Response(200, {"public_id": public_id})
            return Response(404, {"error": {"message": f"Resource not found - {public_id}"}})
        raise AssertionError(f"unexpected request {method} {url}")

    def calls(self, action: str) -> list[dict]:
        return [fields for _, url, fields in self.requests if url == f"{API}/image/{action}"]


@pytest.fixture
def fake_cloudinary(settings, monkeypatch):
    """RESULTS_STORAGE=cloudinary from the production variables, with the HTTP layer faked."""
    from deepfake_site.storage_config import storages_from_env

    fake = FakeCloudinary()
    monkeypatch.setattr(cloudinary.uploader, "_http", fake)
    monkeypatch.setattr(cloudinary.api_client.call_api, "_http", fake)
    monkeypatch.setenv("RESULTS_STORAGE", "cloudinary")
    monkeypatch.setenv("CLOUDINARY_URL", f"cloudinary://{KEY}:{SECRET}@{CLOUD}")
    configured = storages_from_env(media_root=settings.MEDIA_ROOT, debug=True)
    settings.STORAGES = {**settings.STORAGES, "results": configured["results"]}
    storages["results"]._http = fake  # downloads go through the same fake
    return fake


def test_results_are_uploaded_privately_read_back_signed_and_destroyed_with_the_analysis(
    user, active_model, upload, run_inline, fake_cloudinary, _media_in_tmp
):
    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.DONE, analysis.error_message
    prefix = f"results/{analysis.public_id}"

    uploads = fake_cloudinary.calls("upload")
    assert [(u["public_id"], u["format"]) for u in uploads] == [
        (f"{prefix}-thumbnail", "webp"),
        (f"{prefix}-heatmap", "png"),
        (f"{prefix}-overlay", "webp"),
    ]
    for sent in uploads:
        assert set(sent) == {
            "public_id", "format", "type", "overwrite", "invalidate", "unique_filename", "use_filename",
            "timestamp", "api_key", "signature", "file",
        }  # fmt: skip
        assert (sent["type"], sent["overwrite"], sent["invalidate"]) == ("authenticated", "1", "1")
        assert (sent["unique_filename"], sent["use_filename"]) == ("0", "0")
        assert sent["api_key"] == KEY and sent["signature"] == signature(sent)
        assert sent["file"][0] == sent["public_id"].rsplit("/", 1)[1] + "." + sent["format"]
    # Saving overwrites, so no Admin API call asked first whether the files existed; the original stayed local.
    assert [url.rsplit("/", 2)[-2:] for _, url, _ in fake_cloudinary.requests] == [["image", "upload"]] * 3
    assert (_media_in_tmp / analysis.original.name).exists()

    # Reading goes through a signed download URL that expires.
    heatmap = Image.open(io.BytesIO(analysis.heatmap.open("rb").read()))
    assert heatmap.format == "PNG" and heatmap.size == (320, 240)
    url = file_signed_url(analysis.overlay)
    query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
    assert url.startswith(f"{API}/image/download?")
    assert query["public_id"] == f"{prefix}-overlay" and query["type"] == "authenticated"
    assert 290 <= int(query["expires_at"]) - time.time() <= 300 and query["signature"] == signature(query)

    with run_inline():
        services.analysis_delete(analysis=analysis)

    destroys = fake_cloudinary.calls("destroy")
    assert sorted(d["public_id"] for d in destroys) == sorted(
        [f"{prefix}-thumbnail", f"{prefix}-heatmap", f"{prefix}-overlay"]
    )
    for sent in destroys:
        assert set(sent) == {"public_id", "type", "invalidate", "timestamp", "api_key", "signature"}
        assert (sent["type"], sent["invalidate"]) == ("authenticated", "1") and sent["signature"] == signature(sent)
    assert fake_cloudinary.assets == {}
    assert not any(path.is_file() for path in _media_in_tmp.rglob("*") if "models" not in path.parts)


def test_cloudinary_refusing_an_upload_fails_the_analysis_and_leaves_no_asset(
    user, active_model, upload, fake_cloudinary
):
    fake_cloudinary.fail_upload_after = 1  # the thumbnail goes up, then the plan's limit is hit

    analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    services.analysis_run(analysis_id=analysis.pk)

    analysis.refresh_from_db()
    assert analysis.status == Analysis.Status.FAILED
    assert analysis.error_message == (
        f"The results could not be stored (CloudinaryError: Cloudinary did not store "
        f"results/{analysis.public_id}-heatmap.png: Rate Limit Exceeded). Please try again later."
    )
    assert not (analysis.thumbnail or analysis.heatmap or analysis.overlay)
    assert fake_cloudinary.assets == {}  # the thumbnail that made it was destroyed again
    assert [d["public_id"] for d in fake_cloudinary.calls("destroy")] == [f"results/{analysis.public_id}-thumbnail"]


def test_exists_asks_the_admin_api_and_missing_files_read_as_not_found(fake_cloudinary):
    storage = storages["results"]
    storage.save("results/a-heatmap.png", ContentFile(b"\x89PNG fake"))

    assert storage.exists("results/a-heatmap.png") and not storage.exists("results/b-heatmap.png")
    assert fake_cloudinary.requests[-1][1] == f"{API}/resources/image/authenticated/results/b-heatmap"
    with pytest.raises(FileNotFoundError):
        storage.open("results/b-heatmap.png")
    storage.delete("results/b-heatmap.png")  # deleting what is not there succeeds: deletions can be repeated
    with pytest.raises(ValueError, match="no file extension"):
        storage.save("results/no-extension", ContentFile(b"x"))


@pytest.mark.parametrize(
    "url",
    ["", "https://key:secret@cloud", "cloudinary://key@cloud", "cloudinary://key:secret@"],
    ids=["missing", "wrong-scheme", "no-secret", "no-cloud"],
)
def test_a_bad_cloudinary_url_stops_start_up_with_its_name(monkeypatch, settings, url):
    from django.core.exceptions import ImproperlyConfigured

    from deepfake_site.storage_config import storages_from_env

    monkeypatch.setenv("RESULTS_STORAGE", "cloudinary")
    monkeypatch.setenv("CLOUDINARY_URL", url)
    with pytest.raises(ImproperlyConfigured, match="CLOUDINARY_URL"):
        storages_from_env(media_root=settings.MEDIA_ROOT, debug=True)


def test_the_owner_checked_view_streams_pictures_from_cloudinary(
    user_client, user, other_user, active_model, upload, run_inline, fake_cloudinary, client
):
    from django.urls import reverse

    with run_inline():
        analysis = services.analysis_create(user=user, file=upload(), source="web").analysis
    analysis.refresh_from_db()
    url = reverse("detection:analysis_image", args=[analysis.public_id, "heatmap"])

    response = user_client.get(url)

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == fake_cloudinary.assets[f"results/{analysis.public_id}-heatmap"]
    client.force_login(other_user)
    assert client.get(url).status_code == 404
